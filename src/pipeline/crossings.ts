/**
 * The packet path with a *nat table: what runs at each queue crossing (docs/ARCHITECTURE.md,
 * "Where packets are seen"). A destination rewrite must happen before the kernel routes the
 * packet and a source rewrite after it (a forwarded packet with a local source is a martian to
 * ip_route_input), so a packet may cross twice:
 *
 *   pre-routing crossing (hook PRE_ROUTING, queued from nfqwall's raw PREROUTING chain):
 *     raw PREROUTING → conntrack (tracker runs here) → mangle PREROUTING → nat PREROUTING for a
 *     connection's first packet (DST binding, else the null one) → DST rewrite (ORIG of DNAT,
 *     REPLY of SNAT) → the entry hashed (F_PENDING while its first packet is undecided) → ACCEPT
 *     with the crossing mark (CROSS_*) in the packet mark
 *   filter crossing (INPUT / FORWARD / OUTPUT, nfqwall's filter chain):
 *     crossing mark set: the entry found again (Conntrack.resume, no second tracker run), else
 *     raw + conntrack as without NAT; mangle INPUT/FORWARD/OUTPUT; OUTPUT: nat OUTPUT (DST) and
 *     its rewrite (the kernel re-routes the reinjected packet: nf_reroute) → filter → mangle
 *     POSTROUTING (FORWARD, OUTPUT) → nat POSTROUTING / INPUT for the
 *     first packet (SRC binding) → SRC rewrite (ORIG of SNAT, REPLY of DNAT) → confirm + helper
 *     → ACCEPT with the crossing mark cleared
 *
 * A rule set whose mangle PREROUTING has rules takes this path too, without a *nat table: every
 * packet crosses before routing (its marks steer policy routing), and no NAT binding is made.
 *
 * The crossing mark is the packet's only carrier between the two crossings: CROSS_MASK bits of
 * skb->mark, set by the first verdict and cleared by the second. No allocation per packet.
 */
import { IP_CT_NEW, IP_CT_RELATED } from '../conntrack/constants';
import type { PacketContext } from '../conntrack/context';
import { NAT_MANIP_DST, NAT_MANIP_SRC } from '../conntrack/nat';
import {
  NF_ACCEPT,
  NF_DROP,
  NF_INET_LOCAL_IN,
  NF_INET_LOCAL_OUT,
  NF_INET_POST_ROUTING,
  NF_INET_PRE_ROUTING,
  PKTF_CSUM_NOT_READY,
  PKTF_GSO,
  VERDICT_SET_MARK,
} from '../queue/layout';
import { DECIDED_BY_CONNTRACK, DECIDED_BY_FILTER, DECIDED_BY_HELPER, DECIDED_BY_NAT, DECIDED_BY_RAW } from './decided';
import type { Firewall } from './firewall';
import { CROSS_MASK, CROSS_SHIFT } from '../rules/prerouting';

/** The crossing mark's bits (src/rules/prerouting.ts, where rules touching them are refused). */
export { CROSS_MASK, CROSS_SHIFT };
/** the pre-routing crossing tracked the packet in the ORIGINAL direction of its entry */
export const CROSS_ORIG = 1;
/** … in the REPLY direction */
export const CROSS_REPLY = 2;
/** … and found no entry to carry (untracked, invalid, an ICMP error): the filter crossing tracks it again */
export const CROSS_OTHER = 3;

const REWRITE_DO = 0;
const REWRITE_DONE = 1;
const REWRITE_NONE = 2;

export class NatCrossings {
  constructor(private readonly fw: Firewall) {}

  /** One packet of a rule set with a *nat table (ctx filled and parsed by Firewall.decide). */
  decide(ctx: PacketContext, now: number): number {
    return ctx.hook === NF_INET_PRE_ROUTING ? this.preRouting(ctx, now) : this.filterCrossing(ctx, now);
  }

  private drop(ctx: PacketContext, by: number): number {
    const fw = this.fw;
    fw.ct.abort(ctx);
    fw.decidedBy = by;
    return fw.count(ctx.hook, NF_DROP, ctx.length);
  }

  /** The first packet of its connection, or of a RELATED one, not an ICMP error (those are natx's translation). */
  private firstPacket(ctx: PacketContext): boolean {
    const ci = ctx.ctinfo;
    return ci === IP_CT_NEW || (ci === IP_CT_RELATED && ctx.view.hasInner === 0);
  }

  /**
   * nf_nat_inet_fn for manip type `manip` at nat hook natHook: the nat chain (walk) for a first
   * packet, else or then the null binding; the rewrite when `rewrite` is REWRITE_DO, none with
   * REWRITE_DONE (the pre-routing crossing did it), and with REWRITE_NONE a packet that would
   * need one is refused (a destination rewrite after routing: the packet missed its
   * pre-routing crossing). False: drop the packet.
   */
  private natHook(ctx: PacketContext, natHook: number, manip: number, walk: boolean, rewrite: number, now: number): boolean {
    const fw = this.fw;
    const ct = fw.ct;
    const e = ctx.entry;
    // crossing for mangle PREROUTING only: no NAT bindings without a *nat table (no nf_nat hooks)
    if (fw.rules.natTable !== true) return true;
    if (e < 0 || ctx.view.hasInner !== 0) return true;
    if (this.firstPacket(ctx) && !ct.natInitialized(e, manip)) {
      if (walk) {
        ctx.natHook = natHook;
        if (fw.rules.evalNat!(ctx, now) !== NF_ACCEPT) return false;
      }
      if (!ct.natInitialized(e, manip) && !ct.natNullBinding(e, manip, now)) return false;
      ctx.ctstatus = ct.table.status(e);
    }
    if (rewrite === REWRITE_DONE) return true;
    const dir = ctx.ctinfo >= 3 ? 1 : 0; // IP_CT_IS_REPLY
    if (rewrite === REWRITE_NONE) {
      if (!ct.natRewrites(e, dir, manip)) return true;
      ct.stats.nat_drop++;
      return false;
    }
    return ct.natPacket(ctx, e, dir, manip, (ctx.pktFlags & (PKTF_CSUM_NOT_READY | PKTF_GSO)) !== 0);
  }

  private preRouting(ctx: PacketContext, now: number): number {
    const fw = this.fw;
    const ct = fw.ct;
    if (fw.rules.evalRaw(ctx, now) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_RAW);
    if (ct.in(ctx, now) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_CONNTRACK);
    // mangle PREROUTING (priority -150) before nat's destination hook (-100): its marks reach routing with the verdict
    if (fw.rules.evalMangle!(ctx, now, NF_INET_PRE_ROUTING) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_FILTER);
    if (!this.natHook(ctx, NF_INET_PRE_ROUTING, NAT_MANIP_DST, true, REWRITE_DO, now)) return this.drop(ctx, DECIDED_BY_NAT);
    let cross = CROSS_OTHER;
    if (ctx.entry >= 0 && ctx.view.hasInner === 0) {
      if (ct.confirmEarly(ctx, now) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_CONNTRACK);
      cross = ctx.ctinfo >= 3 ? CROSS_REPLY : CROSS_ORIG;
    }
    ctx.mark = ((ctx.mark & ~CROSS_MASK) | (cross << CROSS_SHIFT)) >>> 0;
    fw.decidedBy = DECIDED_BY_FILTER;
    return fw.count(ctx.hook, NF_ACCEPT, ctx.length) | ctx.verdictFlags | VERDICT_SET_MARK;
  }

  private filterCrossing(ctx: PacketContext, now: number): number {
    const fw = this.fw;
    const ct = fw.ct;
    const hook = ctx.hook;
    const cross = (ctx.mark & CROSS_MASK) >>> CROSS_SHIFT;
    if (cross !== 0) {
      ctx.mark = (ctx.mark & ~CROSS_MASK) >>> 0;
      ctx.verdictFlags |= VERDICT_SET_MARK;
    }
    if (cross === CROSS_ORIG || cross === CROSS_REPLY) {
      ct.resume(ctx, cross === CROSS_REPLY ? 1 : 0, now);
      if (ctx.entry < 0) return this.drop(ctx, DECIDED_BY_NAT);
    } else {
      if (fw.rules.evalRaw(ctx, now) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_RAW);
      if (ct.in(ctx, now) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_CONNTRACK);
    }
    const rules = fw.rules;
    // mangle PREROUTING ran at the pre-routing crossing; a packet that skipped it (iptables.ts queues
    // only what nat needs there, and mangle PREROUTING then has no rules) walks its policy here
    if (cross === 0 && hook !== NF_INET_LOCAL_OUT && rules.evalMangle!(ctx, now, NF_INET_PRE_ROUTING) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_FILTER);
    // the kernel's order: mangle INPUT/FORWARD/OUTPUT (-150), nat's destination hook (OUTPUT, -100), filter (0), mangle POSTROUTING
    if (rules.evalMangle!(ctx, now, hook) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_FILTER);
    // the DST binding: nat OUTPUT for local packets; for a packet that skipped the pre-routing
    // crossing (nat PREROUTING cannot match it, iptables.ts) the null binding
    const dstRewrite = hook === NF_INET_LOCAL_OUT ? REWRITE_DO : cross !== 0 ? REWRITE_DONE : REWRITE_NONE;
    if (!this.natHook(ctx, NF_INET_LOCAL_OUT, NAT_MANIP_DST, hook === NF_INET_LOCAL_OUT, dstRewrite, now)) return this.drop(ctx, DECIDED_BY_NAT);
    if (rules.evalAfterMangle!(ctx, now) !== NF_ACCEPT) return this.drop(ctx, DECIDED_BY_FILTER);
    const srcHook = hook === NF_INET_LOCAL_IN ? NF_INET_LOCAL_IN : NF_INET_POST_ROUTING;
    if (!this.natHook(ctx, srcHook, NAT_MANIP_SRC, true, REWRITE_DO, now)) return this.drop(ctx, DECIDED_BY_NAT);
    const verdict = ct.confirm(ctx, now);
    if (verdict !== NF_ACCEPT) {
      fw.decidedBy = DECIDED_BY_HELPER;
      return fw.count(hook, verdict, ctx.length);
    }
    fw.decidedBy = DECIDED_BY_FILTER;
    return fw.count(hook, NF_ACCEPT, ctx.length) | ctx.verdictFlags;
  }
}
