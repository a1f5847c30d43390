/**
 * ICMP (nf_conntrack_proto_icmp.c).
 *
 * nf_conntrack_icmp_packet (IcmpTracker): only echo, timestamp, information and address-mask
 * requests create entries; every accepted packet sets nf_conntrack_icmp_timeout; never ASSURED.
 *
 * nf_conntrack_icmpv4_error (icmpv4Error) and nf_conntrack_inet_error (inetError, shared with
 * ICMPv6): before normal tracking, an ICMP error is RELATED to the entry of the packet it
 * quotes, or INVALID (stat error); other types go on to normal tracking.
 */
import { NR_ICMP_TYPES, isIcmpError } from '../../packet/icmp';
import { Malformed, type PacketView } from '../../packet/view';
import { IPS_ASSURED, PKT_ACCEPT, PKT_INVALID } from '../constants';
import { TUPLE_WORDS, T_META, T_PORTS } from '../layout';
import type { ConntrackStats } from '../stats';
import type { TunableValues } from '../sysctl';
import { innerTupleFromView, invertTuple } from '../tuple';
import { addrToString } from '../../packet/format';
import { StatelessTracker, logsInvalid, type TrackerHost } from './tracker';

/** valid_new[]: types that may create an entry */
const VALID_NEW = new Uint8Array(256);
VALID_NEW[8] = 1; // echo
VALID_NEW[13] = 1; // timestamp
VALID_NEW[15] = 1; // information request
VALID_NEW[17] = 1; // address mask request

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

/** What the ICMP error path needs of the conntrack core. */
export interface IcmpErrorHost extends TrackerHost {
  readonly stats: ConntrackStats;
  /** The node (2e + dir) of the confirmed entry with tuple `key` (layout.ts), or -1. */
  findNode(key: Uint32Array, now: number): number;
  /** Source (which = 0) or destination (which = 1) address of the tuple of direction dir of entry e into out. */
  tupleAddr(e: number, dir: number, which: number, out: Uint32Array): void;
}

/*
 * What icmpv4Error / icmpv6Error return, besides a node (>= 0): the packet is RELATED to
 * that entry, in the node's direction.
 */
/** not an error type: normal tracking follows */
export const ICMP_NOT_ERROR = -1;
/** counted (stat error or invalid), no entry: the packet is INVALID */
export const ICMP_INVALID = -2;
/** accepted without an entry (ICMPv6 neighbour discovery and MLD): UNTRACKED */
export const ICMP_UNTRACKED = -3;

/**
 * nf_conntrack_icmpv4_error for ICMP in IPv4. `csumOk`: the checksum verified, or not to be
 * verified (nf_conntrack_checksum, hook, offload flags: the core decides).
 */
export function icmpv4Error(host: IcmpErrorHost, v: PacketView, csumOk: boolean, now: number): number {
  if (!headerOk(host, v, csumOk, 'bad hw icmp checksum')) return ICMP_INVALID;
  const type = v.icmpType;
  if (type > NR_ICMP_TYPES) {
    host.logInvalid(v, 'invalid icmp type');
    host.stats.error++;
    return ICMP_INVALID;
  }
  if (!isIcmpError(type)) return ICMP_NOT_ERROR;
  return inetError(host, v, now);
}

/**
 * The checks both error handlers start with; false when the packet is INVALID (counted). A
 * packet the parser marked malformed has a header shorter than 8 bytes ("short packet") or
 * quotes a packet that gives no tuple (stat error), or a defect of the IP layer (not tracked,
 * stat invalid); then the checksum (`csumMsg` when it fails).
 */
export function headerOk(host: IcmpErrorHost, v: PacketView, csumOk: boolean, csumMsg: string): boolean {
  if (v.malformed !== 0) {
    if (v.malformed === Malformed.TRUNCATED_L4 || v.malformed === Malformed.BAD_INNER) {
      host.logInvalid(v, v.malformed === Malformed.TRUNCATED_L4 ? 'short packet' : 'failed to get tuple');
      host.stats.error++;
    } else {
      host.stats.invalid++;
    }
    return false;
  }
  if (!csumOk) {
    host.logInvalid(v, csumMsg);
    host.stats.error++;
    return false;
  }
  return true;
}

const inner = new Uint32Array(TUPLE_WORDS);
const answer = new Uint32Array(TUPLE_WORDS);
const addr = new Uint32Array(4);

/**
 * nf_conntrack_inet_error: the error quotes a packet that travelled towards the error's
 * sender; the entry of that packet's answer is the one the error is RELATED to, provided the
 * error goes where that direction's packets go.
 */
export function inetError(host: IcmpErrorHost, v: PacketView, now: number): number {
  if (!innerTupleFromView(v, inner, 0) || v.innerVersion !== v.ipVersion) {
    host.logInvalid(v, 'failed to get tuple');
    host.stats.error++;
    return ICMP_INVALID;
  }
  if (!invertTuple(inner, 0, answer, 0)) {
    host.stats.error++;
    return ICMP_INVALID;
  }
  const node = host.findNode(answer, now);
  if (node < 0) {
    host.stats.error++;
    return ICMP_INVALID;
  }
  // the outer destination must be the destination of the matched tuple's direction
  host.tupleAddr(node >> 1, node & 1, 1, addr);
  for (let i = 0; i < 4; i++) {
    if (addr[i] !== v.dst[i]) {
      if (logsInvalid(host.tun, v.proto)) {
        host.logInvalid(v, `outer daddr ${addrToString(v.ipVersion, v.dst)} != inner ${addrToString(v.ipVersion, addr)}`);
      }
      host.stats.error++;
      return ICMP_INVALID;
    }
  }
  return node;
}
