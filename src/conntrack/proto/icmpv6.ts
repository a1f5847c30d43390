/**
 * ICMPv6 (nf_conntrack_proto_icmpv6.c).
 *
 * Icmpv6Tracker: echo request (128) and node information query (139) create entries.
 *
 * nf_conntrack_icmpv6_error (icmpv6Error): before normal tracking, neighbour discovery and
 * MLD messages are accepted untracked, errors (types < 128) are RELATED to the entry of the
 * packet they quote or INVALID (inetError, icmp.ts), other types go on to normal tracking.
 */
import { isIcmpv6Error } from '../../packet/icmp';
import type { PacketView } from '../../packet/view';
import { IPS_ASSURED, PKT_ACCEPT, PKT_INVALID } from '../constants';
import { T_META, T_PORTS } from '../layout';
import type { TunableValues } from '../sysctl';
import { ICMP_INVALID, ICMP_NOT_ERROR, ICMP_UNTRACKED, headerOk, inetError, type IcmpErrorHost } from './icmp';
import { StatelessTracker, type TrackerHost } from './tracker';

/** noct_valid_new[]: MLD query/report/done, RS, RA, NS, NA, MLDv2 report → accepted untracked */
const NOCT = new Uint8Array(256);
for (const t of [130, 131, 132, 133, 134, 135, 136, 143]) NOCT[t] = 1;

export class Icmpv6Tracker extends StatelessTracker {
  readonly protonum = 58;
  readonly name = 'icmpv6';

  override newConnection(host: TrackerHost, _e: number, pkt: PacketView, _now: number): boolean {
    if (pkt.ipVersion !== 6) return false;
    const t = pkt.icmpType;
    if (t !== 128 && t !== 139) {
      host.logInvalid(pkt, `invalid new with type ${t}`);
      return false;
    }
    return true;
  }

  /** IPv6, created by an echo request or node information query, never ASSURED. */
  protected statelessLimit(tun: TunableValues, tuple: Uint32Array, status: number): number {
    const type = (tuple[T_PORTS] >>> 8) & 0xff;
    const ok = tuple[T_META] >>> 8 === 6 && (type === 128 || type === 139) && !(status & IPS_ASSURED);
    return ok ? tun.nf_conntrack_icmpv6_timeout : -1;
  }

  packet(host: TrackerHost, e: number, _dir: number, _ctinfo: number, pkt: PacketView, now: number): number {
    if (pkt.ipVersion !== 6) return PKT_INVALID;
    host.setTimeout(e, host.tun.nf_conntrack_icmpv6_timeout, now);
    return PKT_ACCEPT;
  }
}

/** nf_conntrack_icmpv6_error for ICMPv6 in IPv6; `csumOk` and the result as icmpv4Error's (icmp.ts). */
export function icmpv6Error(host: IcmpErrorHost, v: PacketView, csumOk: boolean, now: number): number {
  if (!headerOk(host, v, csumOk, 'ICMPv6 checksum failed')) return ICMP_INVALID;
  const type = v.icmpType;
  if (NOCT[type] === 1) return ICMP_UNTRACKED;
  if (!isIcmpv6Error(type)) return ICMP_NOT_ERROR;
  return inetError(host, v, now);
}
