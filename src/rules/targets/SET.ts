/**
 * -j SET: libxt_SET.c revision 3 (--add-set NAME src|dst[,…], --del-set NAME src|dst[,…],
 * --exist, --timeout N) and xt_set.c set_target_v3: the packet is added to / deleted from the
 * thread's ipset (src/rules/sets/), which every worker shares; XT_CONTINUE. --map-set is refused:
 * it sets skb->priority and the tx queue besides the mark, which a queue verdict cannot carry.
 */
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { formatDirs, setUse, type SetUse } from '../matches/set';
import { ipsets, type SetRef } from '../sets/registry';
import { AdtOpt, FLAG_EXIST, ipSetAdd, ipSetDel } from '../sets/set';

export interface SetTargetState {
  add: SetUse | null;
  del: SetUse | null;
  exist: boolean;
  /** seconds, -1 = the set's default */
  timeout: number;
}

/** UINT_MAX / MSEC_PER_SEC: set_target_v3 normalises a larger timeout to it */
const MAX_KADT_TIMEOUT = Math.floor(0xffffffff / 1000);

export const setTarget: TargetModule<SetTargetState> = {
  name: 'SET',
  tables: ['raw', 'mangle', 'filter', 'nat', 'security'],
  options: [
    { name: 'add-set', invertible: false, args: 2 },
    { name: 'del-set', invertible: false, args: 2 },
    { name: 'map-set', invertible: false, args: 2 },
    { name: 'exist', invertible: false, args: 0 },
    { name: 'timeout', invertible: false, args: 1 },
  ],
  unsupported: ['map-mark', 'map-prio', 'map-queue'],
  create: () => ({ add: null, del: null, exist: false, timeout: -1 }),
  parse(s, opt, args, _inv, optTok, env) {
    switch (opt) {
      case 'add-set':
      case 'del-set': {
        const key = opt === 'add-set' ? 'add' : 'del';
        if (s[key]) return env.error(optTok, `--${opt} can be specified only once`);
        s[key] = setUse(args[0], args[1], env);
        return;
      }
      case 'map-set':
        return env.error(
          optTok,
          '--map-set is not supported: it sets the packet mark, skb->priority and the transmit queue from the set, and an NFQUEUE verdict can carry only the mark',
        );
      case 'exist':
        s.exist = true;
        return;
      case 'timeout': {
        const t = args[0].text;
        if (!/^[0-9]+$/.test(t) || Number(t) > 0xfffffffe) return env.error(args[0], `Invalid value for option --timeout or out of range 0-${0xfffffffe}`);
        s.timeout = Number(t);
        return;
      }
    }
  },
  finalize(s, _rule, at, env) {
    if (!s.add && !s.del) env.error(at, "You must specify either `--add-set' or `--del-set' or `--map-set'");
  },
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.add) out.push('--add-set', s.add.name, formatDirs(s.add));
    if (s.del) out.push('--del-set', s.del.name, formatDirs(s.del));
    if (s.exist) out.push('--exist');
    if (s.timeout >= 0) out.push('--timeout', String(s.timeout));
    return out;
  },
  compile(s) {
    const opt = (u: SetUse | null, add: boolean): [SetRef | null, AdtOpt] => {
      const o = new AdtOpt();
      if (!u) return [null, o];
      o.dim = u.dim;
      o.flags = u.flags;
      if (add) {
        if (s.exist) o.cmdflags |= FLAG_EXIST;
        o.timeout = s.timeout < 0 ? -1 : Math.min(s.timeout, MAX_KADT_TIMEOUT);
      }
      return [ipsets().ref(u.name), o];
    };
    return new SetAction(opt(s.add, true), opt(s.del, false));
  },
};

class SetAction implements CompiledTarget {
  private readonly addRef: SetRef | null;
  private readonly addOpt: AdtOpt;
  private readonly delRef: SetRef | null;
  private readonly delOpt: AdtOpt;
  constructor(add: [SetRef | null, AdtOpt], del: [SetRef | null, AdtOpt]) {
    [this.addRef, this.addOpt] = add;
    [this.delRef, this.delOpt] = del;
  }
  run(ctx: PacketContext, now: number): number {
    const a = this.addRef?.set;
    if (a) {
      this.addOpt.family = ctx.family;
      ipSetAdd(a, ctx, this.addOpt, now);
    }
    const d = this.delRef?.set;
    if (d) {
      this.delOpt.family = ctx.family;
      ipSetDel(d, ctx, this.delOpt, now);
    }
    return XT_CONTINUE;
  }
}
