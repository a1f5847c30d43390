/**
 * ICMP (nf_conntrack_proto_icmp.c nf_conntrack_icmp_packet): only echo,
 * timestamp, information and address-mask requests create entries; every
 * accepted packet sets nf_conntrack_icmp_timeout; never ASSURED. ICMP errors
 * are handled by the core before normal tracking (§7).
 */
import type { PacketView } from '../../packet/view';
import { IPS_ASSURED, PKT_ACCEPT, PKT_INVALID } from '../constants';
import type { TunableValues } from '../sysctl';
import { T_META, T_PORTS } from '../tuple';
import { StatelessTracker, type TrackerHost } from './tracker';

/** valid_new[]: types that may create an entry */
const VALID_NEW = new Uint8Array(256);
VALID_NEW[8] = 1; // echo
VALID_NEW[13] = 1; // timestamp
VALID_NEW[15] = 1; // information request
VALID_NEW[17] = 1; // address mask request

/** NR_ICMP_TYPES: types above are "invalid icmp type" */
export const NR_ICMP_TYPES = 18;

/** icmp_is_err(): destination unreachable, source quench, redirect, time exceeded, parameter problem */
export function icmpIsError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

export class IcmpTracker extends StatelessTracker {
  readonly protonum = 1;
  readonly name = 'icmp';

  override newConnection(_host: TrackerHost, _e: number, pkt: PacketView, _now: number): boolean {
    // "icmp: can't create new conn with type N" (pr_debug only, no log_invalid)
    return pkt.ipVersion === 4 && VALID_NEW[pkt.icmpType] === 1;
  }

  /** IPv4, created by a request type (the ORIG tuple's type), never ASSURED. */
  protected statelessLimit(tun: TunableValues, tuple: Uint32Array, status: number): number {
    const ok = tuple[T_META] >>> 8 === 4 && VALID_NEW[(tuple[T_PORTS] >>> 8) & 0xff] === 1 && !(status & IPS_ASSURED);
    return ok ? tun.nf_conntrack_icmp_timeout : -1;
  }

  packet(host: TrackerHost, e: number, _dir: number, _ctinfo: number, pkt: PacketView, now: number): number {
    if (pkt.ipVersion !== 4) return PKT_INVALID;
    host.setTimeout(e, host.tun.nf_conntrack_icmp_timeout, now);
    return PKT_ACCEPT;
  }
}
