/**
 * -j CONNMARK (libxt_CONNMARK.c revision 1, xt_connmark.c connmark_tg_shift without a shift):
 *   set:     ct->mark = (ct->mark & ~ctmask) ^ ctmark           (--set-xmark/--set-mark/--and/--or/--xor-mark)
 *   save:    ct->mark = (ct->mark & ~ctmask) ^ (skb->mark & nfmask)
 *   restore: skb->mark = (skb->mark & ~nfmask) ^ (ct->mark & ctmask)
 * on the packet's connection (nf_ct_get); without one (untracked, invalid) nothing happens.
 * The connection mark lives in nfqwall's own entry (`mark=` in `conntrack -L`, the state
 * file); a restored packet mark goes back with the verdict (VERDICT_SET_MARK).
 */
import { VERDICT_SET_MARK } from '../../queue/layout';
import type { PacketContext } from '../../conntrack/context';
import { IP_CT_RELATED_REPLY } from '../../conntrack/constants';
import { parseUint } from '../matches/util';
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../types';
import { exclusive, formatXmark, MARK_OP_OPTIONS, MARK_OPS, parseMarkOp } from './mark-ops';

const MODE_SET = 0;
const MODE_SAVE = 1;
const MODE_RESTORE = 2;

/** libxt_CONNMARK's option table order (its exclusion messages follow it) */
const OPS = [...MARK_OPS, 'save-mark', 'restore-mark'];
const MASKS = ['ctmask', 'nfmask', 'mask'];

export interface ConnmarkState {
  /** the operation option given (one of OPS), null before */
  op: string | null;
  /** the mask options given, in order */
  masks: string[];
  mode: number;
  ctmark: number;
  ctmask: number;
  nfmask: number;
}

export const connmarkTarget: TargetModule<ConnmarkState> = {
  name: 'CONNMARK',
  tables: ['raw', 'mangle', 'nat', 'filter'],
  options: [
    ...MARK_OP_OPTIONS,
    { name: 'save-mark', invertible: false, args: 0 },
    { name: 'restore-mark', invertible: false, args: 0 },
    ...MASKS.map((name) => ({ name, invertible: false, args: 1 as const })),
  ],
  unsupported: ['left-shift-mark', 'right-shift-mark'],
  // connmark_tg_init: both masks all ones until an option says otherwise
  create: () => ({ op: null, masks: [], mode: MODE_SET, ctmark: 0, ctmask: 0xffffffff, nfmask: 0xffffffff }),
  parse(s, opt, args, _inv, optTok, env) {
    if (MASKS.includes(opt)) {
      // ctmask and nfmask go together; mask excludes both
      const clash = s.masks.find((m) => m === opt || m === 'mask' || opt === 'mask') ?? null;
      const msg = exclusive('CONNMARK', clash, opt, MASKS);
      if (msg) return env.error(optTok, msg);
      const v = parseUint(args[0].text);
      if (v < 0) return env.error(args[0], `CONNMARK: bad value for option "--${opt}", or out of range (0-4294967295)`);
      s.masks.push(opt);
      if (opt !== 'nfmask') s.ctmask = v;
      if (opt !== 'ctmask') s.nfmask = v;
      return;
    }
    const msg = exclusive('CONNMARK', s.op, opt, OPS);
    if (msg) return env.error(optTok, msg);
    if (opt === 'save-mark' || opt === 'restore-mark') {
      s.op = opt;
      s.mode = opt === 'save-mark' ? MODE_SAVE : MODE_RESTORE;
      return;
    }
    const m = { op: null as string | null, value: 0, mask: 0 };
    parseMarkOp(m, 'CONNMARK', opt, args[0], env);
    if (m.op === null) return;
    s.op = opt;
    s.mode = MODE_SET;
    s.ctmark = m.value;
    s.ctmask = m.mask;
  },
  finalize(s, rule, at, env) {
    if (s.op === null) return env.error(at, 'CONNMARK target: No operation specified');
    // raw runs before conntrack: the packet has at most a CT template there, whose mark (0) a
    // restore would copy; nfqwall keeps no template for a plain -j CT, so it cannot tell
    if (s.mode === MODE_RESTORE && rule.table === 'raw')
      env.error(
        at,
        'CONNMARK --restore-mark in the raw table is not supported: the packet has no connection yet there (only a CT template, which nfqwall does not keep)',
      );
  },
  familyOf: () => 0,
  save(s) {
    if (s.mode === MODE_SET) return ['--set-xmark', formatXmark(s.ctmark, s.ctmask)];
    return [s.mode === MODE_SAVE ? '--save-mark' : '--restore-mark', '--nfmask', `0x${s.nfmask.toString(16)}`, '--ctmask', `0x${s.ctmask.toString(16)}`];
  },
  compile: (s) => new ConnmarkAction(s.mode, s.ctmark | 0, s.ctmask | 0, s.nfmask | 0),
};

class ConnmarkAction implements CompiledTarget {
  constructor(
    private readonly mode: number,
    private readonly ctmark: number,
    private readonly ctmask: number,
    private readonly nfmask: number,
  ) {}
  run(ctx: PacketContext): number {
    // a packet with a connection: ctinfo 0..4 (the entry may be gone already, an RST before any
    // reply, and the kernel's skb still holds it: a restore reads its mark, a write is lost with it)
    if (ctx.ctinfo > IP_CT_RELATED_REPLY) return XT_CONTINUE;
    if (this.mode === MODE_RESTORE) {
      const m = ((ctx.mark & ~this.nfmask) ^ (ctx.ctmark & this.ctmask)) >>> 0;
      if (m !== ctx.mark) {
        ctx.mark = m;
        ctx.verdictFlags |= VERDICT_SET_MARK;
      }
      return XT_CONTINUE;
    }
    const bits = this.mode === MODE_SET ? this.ctmark : ctx.mark & this.nfmask;
    const m = (ctx.ctmark & ~this.ctmask) ^ bits;
    if (m >>> 0 !== ctx.ctmark) {
      if (ctx.entry >= 0 && ctx.conn !== null) ctx.conn.setMark(ctx.entry, m | 0);
      ctx.ctmark = m >>> 0;
    }
    return XT_CONTINUE;
  }
}
