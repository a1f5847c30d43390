/**
 * -j MARK (libxt_MARK.c revision 2, xt_MARK.c mark_tg): skb->mark = (skb->mark & ~mask) ^ value.
 * Revision 2 has no table restriction (raw, mangle, nat and filter alike; in nat it sees a
 * connection's first packet only, as the nat chains do). The new mark goes
 * back to the kernel with the verdict (VERDICT_SET_MARK); a locally generated packet whose
 * mark changed is routed again by nf_reinject (nf_ip_reroute / nf_ip6_reroute at LOCAL_OUT),
 * as iptable_mangle's OUTPUT hook re-routes it in the kernel.
 */
import { VERDICT_SET_MARK } from '../../queue/layout';
import type { PacketContext } from '../../conntrack/context';
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../types';
import { exclusive, formatXmark, MARK_OP_OPTIONS, MARK_OPS, parseMarkOp, type MarkOp } from './mark-ops';

export const markTarget: TargetModule<MarkOp> = {
  name: 'MARK',
  tables: ['raw', 'mangle', 'nat', 'filter'],
  options: MARK_OP_OPTIONS,
  create: () => ({ op: null, value: 0, mask: 0 }),
  parse(s, opt, args, _inv, optTok, env) {
    const clash = exclusive('MARK', s.op, opt, MARK_OPS);
    if (clash) return env.error(optTok, clash);
    parseMarkOp(s, 'MARK', opt, args[0], env);
  },
  finalize(s, _rule, at, env) {
    if (s.op === null) env.error(at, 'MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required');
  },
  familyOf: () => 0,
  save: (s) => ['--set-xmark', formatXmark(s.value, s.mask)],
  compile: (s) => new MarkAction(s.value | 0, ~s.mask | 0),
};

class MarkAction implements CompiledTarget {
  constructor(
    private readonly value: number,
    /** ~mask: the bits kept */
    private readonly keep: number,
  ) {}
  run(ctx: PacketContext): number {
    const m = ((ctx.mark & this.keep) ^ this.value) >>> 0;
    if (m !== ctx.mark) {
      ctx.mark = m;
      ctx.verdictFlags |= VERDICT_SET_MARK;
    }
    return XT_CONTINUE;
  }
}
