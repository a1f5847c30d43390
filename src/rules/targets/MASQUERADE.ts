/**
 * -j MASQUERADE (libxt_MASQUERADE / libxt_NAT.c, nf_nat_masquerade.c): SNAT to the address
 * the output interface would choose as source toward the packet's destination
 * (inet_select_addr / ipv6_dev_get_saddr, as TargetServices.natAddress approximates it), the
 * entry bound to that interface (its entries die when the address goes or the link goes down).
 * --to-ports, --random, --random-fully; nat POSTROUTING only.
 */
import { NatRange, NAT_MANIP_SRC, NF_NAT_RANGE_MAP_IPS } from '../../conntrack/nat';
import type { PacketContext } from '../../conntrack/context';
import { NF_ACCEPT, NF_DROP } from '../../queue/layout';
import { toPortsOptions, toPortsRange, type ToPortsState } from '../nat-action';
import type { CompiledTarget, TargetModule, TargetServices } from '../types';

export const masqueradeTarget: TargetModule<ToPortsState> = {
  name: 'MASQUERADE',
  tables: ['nat'],
  hooks: ['POSTROUTING'],
  ...toPortsOptions('MASQUERADE', true),
  compile: (s, env) => new MasqueradeAction(toPortsRange(s), env.services),
};

class MasqueradeAction implements CompiledTarget {
  private readonly range = new NatRange();
  constructor(
    private readonly base: NatRange,
    private readonly services: TargetServices,
  ) {}

  run(ctx: PacketContext, now: number): number {
    const conn = ctx.conn;
    const e = ctx.entry;
    if (e < 0 || conn === null) return NF_ACCEPT;
    const v = ctx.view;
    // a source of 0.0.0.0: a local packet not meant to be masqueraded (nf_nat_masquerade_ipv4)
    if (ctx.family === 4 && v.src[0] === 0) return NF_ACCEPT;
    const r = this.range;
    r.copyFrom(this.base);
    if (!this.services.natAddress?.(ctx.outdev, ctx.family, v.dst, r.minAddr)) return NF_DROP; // "ate my IP address"
    r.maxAddr.set(r.minAddr);
    r.flags |= NF_NAT_RANGE_MAP_IPS;
    conn.setMasqIndex(e, ctx.outdev);
    return conn.natSetup(e, r, NAT_MANIP_SRC, now) ? NF_ACCEPT : NF_DROP;
  }
}
