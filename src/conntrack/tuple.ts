/**
 * Connection tuples (struct nf_conntrack_tuple without the direction, word layout in
 * layout.ts): built from a parsed packet, inverted, compared.
 *
 * Sources: nf_conntrack_core.c nf_ct_get_tuple() / nf_ct_invert_tuple(),
 * nf_conntrack_proto_icmp.c / nf_conntrack_proto_icmpv6.c (invmap).
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/view';
import type { PacketView } from '../packet/view';
import { TUPLE_WORDS, T_DST, T_META, T_PORTS, T_SRC } from './layout';

/** ICMP (IPv4) inverse types: invmap[] of nf_conntrack_proto_icmp.c; -1 = no inverse. */
const ICMP_INV = new Int16Array(256).fill(-1);
ICMP_INV[8] = 0;
ICMP_INV[0] = 8;
ICMP_INV[13] = 14;
ICMP_INV[14] = 13;
ICMP_INV[15] = 16;
ICMP_INV[16] = 15;
ICMP_INV[17] = 18;
ICMP_INV[18] = 17;

/** ICMPv6 inverse types (nf_conntrack_proto_icmpv6.c invmap); -1 = no inverse. */
const ICMPV6_INV = new Int16Array(256).fill(-1);
ICMPV6_INV[128] = 129;
ICMPV6_INV[129] = 128;
ICMPV6_INV[139] = 140;
ICMPV6_INV[140] = 139;

export function icmpInverseType(type: number): number {
  return ICMP_INV[type & 0xff];
}
export function icmpv6InverseType(type: number): number {
  return ICMPV6_INV[type & 0xff];
}

/** Protocols whose tuple carries ports. */
export function hasPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_SCTP;
}

/**
 * The ports word of the inverted tuple, or -1 if the tuple cannot be inverted
 * (ICMP/ICMPv6 type without an inverse).
 */
export function invertPorts(proto: number, ports: number): number {
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    const type = (ports >>> 8) & 0xff;
    const inv = proto === IPPROTO_ICMP ? ICMP_INV[type] : ICMPV6_INV[type];
    if (inv < 0) return -1;
    return ((ports & 0xffff00ff) | (inv << 8)) >>> 0;
  }
  return ((ports >>> 16) | ((ports & 0xffff) << 16)) >>> 0;
}

/** Writes the inverse of tuple a@ao into b@bo. Returns false when the tuple has no inverse. */
export function invertTuple(a: Uint32Array, ao: number, b: Uint32Array, bo: number): boolean {
  const meta = a[ao + T_META];
  const ports = invertPorts(meta & 0xff, a[ao + T_PORTS]);
  if (ports < 0) return false;
  b[bo + T_META] = meta;
  for (let i = 0; i < 4; i++) {
    const s = a[ao + T_SRC + i];
    b[bo + T_SRC + i] = a[ao + T_DST + i];
    b[bo + T_DST + i] = s;
  }
  b[bo + T_PORTS] = ports;
  return true;
}

export function tupleEquals(a: Uint32Array, ao: number, b: Uint32Array, bo: number): boolean {
  for (let i = 0; i < TUPLE_WORDS; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

export function portsWord(srcU: number, dstU: number): number {
  return (((srcU & 0xffff) << 16) | (dstU & 0xffff)) >>> 0;
}

/**
 * The ORIG-direction tuple of a parsed packet (nf_ct_get_tuple). Returns false if
 * no tuple can be built (ports unreadable).
 */
export function tupleFromView(v: PacketView, out: Uint32Array, o: number): boolean {
  const proto = v.proto;
  out[o + T_META] = (v.ipVersion << 8) | proto;
  for (let i = 0; i < 4; i++) {
    out[o + T_SRC + i] = v.src[i];
    out[o + T_DST + i] = v.dst[i];
  }
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP) {
    out[o + T_PORTS] = portsWord(v.sport, v.dport);
  } else if (proto === IPPROTO_UDPLITE) {
    // the parser fills ports for TCP/UDP only; UDP-Lite has the same layout
    if (v.l4len < 4) return false;
    const b = v.buf;
    const p = v.l4off;
    out[o + T_PORTS] = portsWord((b[p] << 8) | b[p + 1], (b[p + 2] << 8) | b[p + 3]);
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    out[o + T_PORTS] = portsWord(v.icmpId, (v.icmpType << 8) | v.icmpCode);
  } else {
    out[o + T_PORTS] = 0;
  }
  return true;
}

/**
 * The tuple of the packet embedded in an ICMP error, as it travelled (not inverted).
 * Returns false when the embedded packet gives no tuple.
 */
export function innerTupleFromView(v: PacketView, out: Uint32Array, o: number): boolean {
  if (!v.hasInner || v.innerMalformed !== 0 || v.innerFragOffset !== 0) return false;
  const proto = v.innerProto;
  out[o + T_META] = (v.innerVersion << 8) | proto;
  for (let i = 0; i < 4; i++) {
    out[o + T_SRC + i] = v.innerSrc[i];
    out[o + T_DST + i] = v.innerDst[i];
  }
  if (hasPorts(proto)) {
    out[o + T_PORTS] = portsWord(v.innerSport, v.innerDport);
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    out[o + T_PORTS] = portsWord(v.innerIcmpId, (v.innerIcmpType << 8) | v.innerIcmpCode);
  } else {
    out[o + T_PORTS] = 0;
  }
  return true;
}
