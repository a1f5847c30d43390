/**
 * ICMP and ICMPv6 parsing, including the packet embedded in an error message
 * (nf_conntrack_icmpv4_error / nf_conntrack_icmpv6_error → nf_conntrack_inet_error
 * → nf_ct_get_tuplepr on the inner packet). Hot path: no allocation.
 */
import { extWalk, walkExtHeaders } from './ip6';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, Malformed, type PacketView } from './view';

/** NR_ICMP_TYPES (include/uapi/linux/icmp.h): the highest ICMPv4 type the kernel knows. */
export const NR_ICMP_TYPES = 18;

/** ICMPv4 error types (icmp_is_err): destination unreachable, source quench, redirect, time exceeded, parameter problem. */
export function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** ICMPv6 error types are those below 128. */
export function isIcmpv6Error(type: number): boolean {
  return type < 128;
}

/**
 * Parses the 8-byte ICMP/ICMPv6 header at v.l4off (TRUNCATED_L4 if shorter).
 * icmpId is bytes 4-5 for every type. For an error type of the packet's own
 * family (ICMP in IPv4, ICMPv6 in IPv6) the embedded packet is parsed too;
 * if it cannot be read, innerMalformed says why and the packet is BAD_INNER.
 */
export function parseIcmp(buf: Uint8Array, v: PacketView): boolean {
  const o = v.l4off;
  const l = v.l4len;
  if (l < 8) {
    if (l >= 1) v.icmpType = buf[o];
    if (l >= 2) v.icmpCode = buf[o + 1];
    v.malformed = Malformed.TRUNCATED_L4;
    return false;
  }
  const type = buf[o];
  v.icmpType = type;
  v.icmpCode = buf[o + 1];
  v.icmpId = (buf[o + 4] << 8) | buf[o + 5];
  v.payloadOff = o + 8;
  v.payloadLen = l - 8;
  let err = false;
  if (v.proto === IPPROTO_ICMP) err = v.ipVersion === 4 && isIcmpError(type);
  else err = v.ipVersion === 6 && isIcmpv6Error(type);
  if (!err) return true;
  v.hasInner = 1;
  const code = parseInner(buf, o + 8, o + l, v);
  if (code !== 0) {
    v.innerMalformed = code;
    v.malformed = Malformed.BAD_INNER;
    return false;
  }
  return true;
}

/**
 * Parses the embedded packet in [p, end): an IP header of the outer family
 * (a version nibble of the other family is BAD_VERSION), then the first bytes of
 * its L4 header. Returns 0 or a Malformed code. The inner tot_len is ignored
 * (the embedded packet is truncated by nature). An inner non-first fragment
 * sets innerFragOffset and has no inner L4 (the kernel cannot build a tuple for
 * it; conntrack decides). Inner TCP/UDP/UDP-Lite need 4 bytes (the ports, as
 * the kernel's nf_ct_get_tuple_ports), inner ICMP/ICMPv6 need 8 bytes.
 */
function parseInner(buf: Uint8Array, p: number, end: number, v: PacketView): number {
  const avail = end - p;
  if (avail < 1) return Malformed.TOO_SHORT;
  const ver = buf[p] >>> 4;
  v.innerVersion = ver;
  let l4: number;
  let proto: number;
  if (v.ipVersion === 4) {
    if (ver !== 4) return Malformed.BAD_VERSION;
    if (avail < 20) return Malformed.TOO_SHORT;
    const ihl = (buf[p] & 0x0f) << 2;
    proto = buf[p + 9];
    v.innerProto = proto;
    v.innerSrc[0] = ((buf[p + 12] << 24) | (buf[p + 13] << 16) | (buf[p + 14] << 8) | buf[p + 15]) >>> 0;
    v.innerDst[0] = ((buf[p + 16] << 24) | (buf[p + 17] << 16) | (buf[p + 18] << 8) | buf[p + 19]) >>> 0;
    if (ihl < 20 || ihl > avail) return Malformed.BAD_IHL;
    const fo = ((buf[p + 6] & 0x1f) << 8) | buf[p + 7];
    if (fo !== 0) {
      v.innerFragOffset = fo << 3;
      return 0;
    }
    l4 = p + ihl;
  } else {
    if (ver !== 6) return Malformed.BAD_VERSION;
    if (avail < 40) return Malformed.TOO_SHORT;
    for (let i = 0; i < 4; i++) {
      const s = p + 8 + (i << 2);
      v.innerSrc[i] = ((buf[s] << 24) | (buf[s + 1] << 16) | (buf[s + 2] << 8) | buf[s + 3]) >>> 0;
      const d = s + 16;
      v.innerDst[i] = ((buf[d] << 24) | (buf[d + 1] << 16) | (buf[d + 2] << 8) | buf[d + 3]) >>> 0;
    }
    v.innerProto = buf[p + 6];
    const r = walkExtHeaders(buf, p + 40, end, buf[p + 6]);
    if (r < 0) return -r;
    proto = extWalk.proto;
    v.innerProto = proto;
    if (extWalk.fragOffset !== 0) {
      v.innerFragOffset = extWalk.fragOffset;
      return 0;
    }
    l4 = r;
  }
  const l4len = end - l4;
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_SCTP) {
    if (l4len < 4) return Malformed.TRUNCATED_L4;
    v.innerSport = (buf[l4] << 8) | buf[l4 + 1];
    v.innerDport = (buf[l4 + 2] << 8) | buf[l4 + 3];
  } else if ((proto === IPPROTO_ICMP && v.ipVersion === 4) || (proto === IPPROTO_ICMPV6 && v.ipVersion === 6)) {
    if (l4len < 8) return Malformed.TRUNCATED_L4;
    v.innerIcmpType = buf[l4];
    v.innerIcmpCode = buf[l4 + 1];
    v.innerIcmpId = (buf[l4 + 4] << 8) | buf[l4 + 5];
  }
  return 0;
}
