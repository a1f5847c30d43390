/**
 * -j CT (libxt_CT.c / xt_CT.c) and -j NOTRACK, raw table only. Non-terminal like the
 * kernel's CT target (XT_CONTINUE): --notrack marks the packet untracked, --helper NAME
 * attaches a helper template to the connection conntrack will create.
 */
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { quoteArg } from '../matches/util';

export interface CtState {
  notrack: boolean;
  helper: string | null;
}

export const ctTarget: TargetModule<CtState> = {
  name: 'CT',
  tables: ['raw'],
  options: [
    { name: 'notrack', invertible: false, args: 0 },
    { name: 'helper', invertible: false, args: 1 },
  ],
  unsupported: ['ctevents', 'expevents', 'zone', 'zone-orig', 'zone-reply', 'timeout', 'notrack-zone'],
  create: () => ({ notrack: false, helper: null }),
  parse(s, opt, args, _inv, optTok, env) {
    if (opt === 'notrack') {
      if (s.notrack) return env.error(optTok, '--notrack given twice');
      s.notrack = true;
    } else {
      if (s.helper !== null) return env.error(optTok, '--helper given twice');
      const n = args[0].text;
      if (n === '' || n.length > 15) return env.error(args[0], `bad helper name "${n}"`);
      if (env.helperId && env.helperId(n) === 0) return env.error(args[0], `no such helper "${n}"`);
      s.helper = n;
    }
  },
  finalize(s, _rule, at, env) {
    if (s.notrack && s.helper !== null) env.error(at, 'CT --notrack cannot be combined with --helper');
  },
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.notrack) out.push('--notrack');
    if (s.helper !== null) out.push('--helper', quoteArg(s.helper));
    return out;
  },
  compile: (s, env) => new CtAction(s.notrack, s.helper !== null ? env.helperId(s.helper) : 0),
};

/**
 * xt_CT / NOTRACK: marks the packet untracked, or attaches the helper (id 0: no such helper,
 * or a plain -j CT: nothing); a packet that already has a conntrack (template) is left alone.
 */
class CtAction implements CompiledTarget {
  constructor(
    private readonly notrack: boolean,
    private readonly helper: number,
  ) {}
  run(ctx: PacketContext): number {
    if (ctx.notrack === 0 && ctx.helper === 0) {
      if (this.notrack) ctx.notrack = 1;
      else if (this.helper !== 0) ctx.helper = this.helper;
    }
    return XT_CONTINUE;
  }
}

export const notrackTarget: TargetModule<Record<string, never>> = {
  name: 'NOTRACK',
  tables: ['raw'],
  options: [],
  create: () => ({}),
  parse() {},
  finalize() {},
  familyOf: () => 0,
  save: () => [],
  compile: () => new CtAction(true, 0),
};
