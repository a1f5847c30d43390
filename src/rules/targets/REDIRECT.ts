/**
 * -j REDIRECT (libxt_REDIRECT / libxt_NAT.c, nf_nat_redirect.c): DNAT to the gateway itself,
 * the incoming interface's first address (127.0.0.1 / ::1 for locally generated packets), a
 * packet arriving on an interface without an address dropped; --to-ports, --random; nat
 * PREROUTING and OUTPUT.
 */
import { NatRange, NAT_MANIP_DST, NF_NAT_RANGE_MAP_IPS } from '../../conntrack/nat';
import type { PacketContext } from '../../conntrack/context';
import { NF_ACCEPT, NF_DROP, NF_INET_LOCAL_OUT } from '../../queue/layout';
import { toPortsOptions, toPortsRange, type ToPortsState } from '../nat-action';
import type { CompiledTarget, TargetModule, TargetServices } from '../types';

export const redirectTarget: TargetModule<ToPortsState> = {
  name: 'REDIRECT',
  tables: ['nat'],
  hooks: ['PREROUTING', 'OUTPUT'],
  ...toPortsOptions('REDIRECT', false),
  compile: (s, env) => new RedirectAction(toPortsRange(s), env.services),
};

const LOOPBACK4 = 0x7f000001;

class RedirectAction implements CompiledTarget {
  private readonly range = new NatRange();
  constructor(
    private readonly base: NatRange,
    private readonly services: TargetServices,
  ) {}

  run(ctx: PacketContext, now: number): number {
    const conn = ctx.conn;
    const e = ctx.entry;
    if (e < 0 || conn === null) return NF_ACCEPT;
    const r = this.range;
    r.copyFrom(this.base);
    const a = r.minAddr;
    if (ctx.natHook === NF_INET_LOCAL_OUT) {
      a.fill(0);
      if (ctx.family === 4) a[0] = LOOPBACK4;
      else a[3] = 1;
    } else if (!this.services.natAddress?.(ctx.indev, ctx.family, null, a)) return NF_DROP;
    r.maxAddr.set(a);
    r.flags |= NF_NAT_RANGE_MAP_IPS;
    return conn.natSetup(e, r, NAT_MANIP_DST, now) ? NF_ACCEPT : NF_DROP;
  }
}
