/**
 * parsePacket: fills a reused PacketView from the IP packet at buf[off, off+len).
 * Never throws and allocates nothing; every field is reset first, so a view
 * reused across packets never carries stale values.
 */
import { parseIcmp } from './icmp';
import { parseIp4 } from './ip4';
import { parseIp6 } from './ip6';
import { parseSctp } from './sctp';
import { parseTcp } from './tcp';
import { parseUdp } from './udp';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, Malformed, type PacketView } from './view';

/** Puts every field of the view back to its initial value (buf/off/len excepted). */
export function resetView(v: PacketView): void {
  v.malformed = 0;
  v.ipVersion = 0;
  v.ipTotalLen = 0;
  v.ttl = 0;
  v.tos = 0;
  v.ipId = 0;
  v.flowLabel = 0;
  v.dontFragment = 0;
  v.fragOffset = 0;
  v.moreFragments = 0;
  v.isFragment = 0;
  v.proto = 0;
  const s = v.src;
  s[0] = 0;
  s[1] = 0;
  s[2] = 0;
  s[3] = 0;
  const d = v.dst;
  d[0] = 0;
  d[1] = 0;
  d[2] = 0;
  d[3] = 0;
  v.l4off = 0;
  v.l4len = 0;
  v.sport = 0;
  v.dport = 0;
  v.tcpFlags = 0;
  v.seq = 0;
  v.ack = 0;
  v.window = 0;
  v.tcpHeaderLen = 0;
  v.optWscale = -1;
  v.optSackPerm = 0;
  v.optMss = 0;
  v.hasSack = 0;
  v.sackRight = 0;
  v.payloadOff = 0;
  v.payloadLen = 0;
  v.udpLen = 0;
  v.icmpType = 0;
  v.icmpCode = 0;
  v.icmpId = 0;
  v.hasInner = 0;
  v.innerMalformed = 0;
  v.innerVersion = 0;
  v.innerProto = 0;
  const is = v.innerSrc;
  is[0] = 0;
  is[1] = 0;
  is[2] = 0;
  is[3] = 0;
  const id = v.innerDst;
  id[0] = 0;
  id[1] = 0;
  id[2] = 0;
  id[3] = 0;
  v.innerSport = 0;
  v.innerDport = 0;
  v.innerIcmpType = 0;
  v.innerIcmpCode = 0;
  v.innerIcmpId = 0;
  v.innerFragOffset = 0;
}

/**
 * Parses the IP packet at buf[off, off+len) into v. `expectedFamily` is the
 * family the queue reported: 0/undefined = either, 4 or 2 (AF_INET) = IPv4,
 * 6 or 10 (AF_INET6) = IPv6; a different version nibble is BAD_VERSION.
 * `len` is clipped to the bytes the buffer holds, then to the IP total length.
 *
 * Returns true when the packet is well formed (v.malformed = 0). A non-first
 * fragment (fragOffset ≠ 0) is well formed but has no L4 fields; for other
 * packets the L4 header of TCP, UDP, UDP-Lite, SCTP, ICMP (IPv4) and ICMPv6 (IPv6)
 * is parsed; other protocols (and 59, no next header) get only l4off/l4len and
 * payloadOff/payloadLen = the whole L4 area.
 */
export function parsePacket(buf: Uint8Array, off: number, len: number, v: PacketView, expectedFamily?: number): boolean {
  resetView(v);
  v.buf = buf;
  // Defensive clamping: a bad offset/length must not make us read outside the buffer.
  if (!(off >= 0) || off > buf.length) off = buf.length;
  off = off | 0;
  if (!(len >= 0)) len = 0;
  if (len > buf.length - off) len = buf.length - off;
  len = len | 0;
  v.off = off;
  v.len = len;
  if (len < 1) {
    v.malformed = Malformed.TOO_SHORT;
    return false;
  }
  const ver = buf[off] >>> 4;
  const fam = expectedFamily === undefined ? 0 : expectedFamily;
  let ok: boolean;
  if (ver === 4 && (fam === 0 || fam === 4 || fam === 2)) {
    ok = parseIp4(buf, v);
  } else if (ver === 6 && (fam === 0 || fam === 6 || fam === 10)) {
    ok = parseIp6(buf, v);
  } else {
    if (ver === 4 || ver === 6) v.ipVersion = ver;
    v.malformed = Malformed.BAD_VERSION;
    return false;
  }
  if (!ok) return false;
  if (v.fragOffset !== 0) {
    // Non-first fragment: no L4 header here (not trackable by conntrack).
    v.payloadOff = v.l4off;
    v.payloadLen = v.l4len;
    return true;
  }
  const proto = v.proto;
  if (proto === IPPROTO_TCP) return parseTcp(buf, v);
  if (proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE) return parseUdp(buf, v);
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) return parseIcmp(buf, v);
  if (proto === IPPROTO_SCTP) return parseSctp(buf, v);
  v.payloadOff = v.l4off;
  v.payloadLen = v.l4len;
  return true;
}
