/**
 * Internet checksums (RFC 1071): verification of a parsed packet's L4 checksum
 * the way conntrack does it (nf_ip_checksum / nf_ip6_checksum: the sum runs
 * from the L4 header to the end of the IP packet, pseudo-header from the IP
 * header), and helpers to compute checksums when building packets (tests,
 * the REJECT target). Verification allocates nothing.
 */
import { verifySctpChecksum } from './sctp';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, type PacketView } from './view';

/** Unfolded one's-complement sum of buf[off, off+len) (odd trailing byte padded with zero), added to `sum`. */
export function sumBytes(buf: Uint8Array, off: number, len: number, sum: number): number {
  const end = off + len;
  let i = off;
  // Pairs of bytes; the sum stays exact in a double (< 2^53) for any IP packet.
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

/** Folds an unfolded sum to 16 bits (one's-complement addition of the carries). */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return sum;
}

/** Unfolded sum of the pseudo-header words (addresses as u32 words; IPv4 uses word 0). */
export function pseudoSum(ipVersion: number, src: ArrayLike<number>, dst: ArrayLike<number>, proto: number, l4len: number): number {
  let sum = proto;
  const n = ipVersion === 4 ? 1 : 4;
  for (let i = 0; i < n; i++) {
    const a = src[i] >>> 0;
    const b = dst[i] >>> 0;
    sum += (a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff);
  }
  // IPv4: 16-bit length; IPv6: 32-bit upper-layer packet length.
  sum += (l4len >>> 16) + (l4len & 0xffff);
  return sum;
}

/**
 * Verifies the L4 checksum of a parsed, well-formed packet over
 * [v.l4off, v.off + v.len) like the kernel's conntrack:
 *  - TCP, ICMPv6: pseudo-header + data must sum to 0xffff.
 *  - UDP: a zero checksum means "none" and is accepted on IPv4 and on IPv6
 *    (udp_error returns before checking: `if (!hdr->check) return false`).
 *  - UDP-Lite: zero is invalid ("checksum missing"); the coverage (0 = all)
 *    bounds the summed bytes, the pseudo-header carries the full length.
 *  - ICMP (IPv4): no pseudo-header.
 *  - SCTP: CRC32c over the whole SCTP packet, no pseudo-header (sctp_error: sctp_compute_cksum).
 * Returns true for packets that carry nothing to verify (other protocols,
 * fragments — their L4 checksum covers bytes not in this packet) and false for
 * a malformed packet.
 */
export function verifyL4Checksum(v: PacketView): boolean {
  if (v.malformed !== 0) return false;
  if (v.isFragment !== 0) return true;
  const proto = v.proto;
  const buf = v.buf;
  const o = v.l4off;
  const l = v.off + v.len - o;
  if (proto === IPPROTO_TCP || proto === IPPROTO_ICMPV6) {
    if (proto === IPPROTO_ICMPV6 && v.ipVersion !== 6) return true;
    return foldSum(sumBytes(buf, o, l, pseudoSum(v.ipVersion, v.src, v.dst, proto, l))) === 0xffff;
  }
  if (proto === IPPROTO_UDP) {
    if (buf[o + 6] === 0 && buf[o + 7] === 0) return true;
    return foldSum(sumBytes(buf, o, l, pseudoSum(v.ipVersion, v.src, v.dst, proto, l))) === 0xffff;
  }
  if (proto === IPPROTO_UDPLITE) {
    if (buf[o + 6] === 0 && buf[o + 7] === 0) return false;
    const cov = v.udpLen === 0 ? l : v.udpLen;
    return foldSum(sumBytes(buf, o, cov, pseudoSum(v.ipVersion, v.src, v.dst, proto, l))) === 0xffff;
  }
  if (proto === IPPROTO_ICMP) {
    if (v.ipVersion !== 4) return true;
    return foldSum(sumBytes(buf, o, l, 0)) === 0xffff;
  }
  if (proto === IPPROTO_SCTP) return verifySctpChecksum(buf, o, l);
  return true;
}

/** The RFC 1071 checksum of buf[off, off+len) (to store in a header whose checksum field is zero). */
export function internetChecksum(buf: Uint8Array, off: number, len: number): number {
  return ~foldSum(sumBytes(buf, off, len, 0)) & 0xffff;
}

/**
 * The IPv4 header checksum of the header at buf[off, off+hdrLen), the checksum
 * field (bytes 10-11) counted as zero whatever it holds. hdrLen defaults to ihl*4.
 */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number, hdrLen?: number): number {
  const n = hdrLen === undefined ? (buf[off] & 0x0f) << 2 : hdrLen;
  let sum = sumBytes(buf, off, n, 0);
  sum -= (buf[off + 10] << 8) | buf[off + 11];
  return ~foldSum(sum) & 0xffff;
}

/** True if the IPv4 header at buf[off] has a correct header checksum. */
export function verifyIpv4HeaderChecksum(buf: Uint8Array, off: number): boolean {
  const n = (buf[off] & 0x0f) << 2;
  return foldSum(sumBytes(buf, off, n, 0)) === 0xffff;
}

/**
 * The checksum to store in an L4 header at buf[off, off+len) whose checksum
 * field currently holds zero. family: 4 or 6 (2 / 10 accepted). `proto` is the
 * L4 protocol; ICMP (1) on IPv4 uses no pseudo-header. For UDP the caller
 * stores 0xffff when the result is 0 (0 means "no checksum"). For UDP-Lite pass
 * `coverage` (bytes summed; the pseudo-header still carries len).
 */
export function l4Checksum(
  family: number,
  src: ArrayLike<number>,
  dst: ArrayLike<number>,
  proto: number,
  buf: Uint8Array,
  off: number,
  len: number,
  coverage?: number,
): number {
  const ver = family === 6 || family === 10 ? 6 : 4;
  const start = proto === IPPROTO_ICMP && ver === 4 ? 0 : pseudoSum(ver, src, dst, proto, len);
  const n = coverage === undefined || coverage === 0 ? len : coverage;
  return ~foldSum(sumBytes(buf, off, n, start)) & 0xffff;
}

/**
 * Updates the 16-bit checksum at buf[at] for a 32-bit word of the summed data changing from
 * `from` to `to` (RFC 1624 eqn 3, as the kernel's csum_replace4 / inet_proto_csum_replace4
 * on a packet whose checksum is complete).
 */
export function updateChecksum32(buf: Uint8Array, at: number, from: number, to: number): void {
  let sum = ~((buf[at] << 8) | buf[at + 1]) & 0xffff;
  sum += (~from >>> 16) & 0xffff;
  sum += ~from & 0xffff;
  sum += (to >>> 16) & 0xffff;
  sum += to & 0xffff;
  sum = foldSum(sum);
  const c = ~sum & 0xffff;
  buf[at] = c >>> 8;
  buf[at + 1] = c & 0xff;
}

/**
 * The kernel's csum_replace2: the 16-bit checksum at buf[at] after a 16-bit word of what it
 * covers changed from `from` to `to` (RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m')).
 */
export function replaceChecksum16(buf: Uint8Array, at: number, from: number, to: number): void {
  let s = (~((buf[at] << 8) | buf[at + 1]) & 0xffff) + (~from & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s += to & 0xffff;
  s = (s & 0xffff) + (s >>> 16);
  s = ~s & 0xffff;
  buf[at] = s >>> 8;
  buf[at + 1] = s & 0xff;
}

/**
 * Writes the complete L4 checksum of the parsed, well-formed, unfragmented packet v into its
 * header (TCP, UDP, UDP-Lite, ICMP, ICMPv6; others have none): what skb_checksum_help does to
 * a CHECKSUM_PARTIAL packet. A UDP checksum that comes out 0 is stored as 0xffff.
 */
export function fillL4Checksum(v: PacketView): void {
  if (v.isFragment !== 0 || v.malformed !== 0) return;
  const proto = v.proto;
  const at =
    proto === IPPROTO_TCP
      ? 16
      : proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE
        ? 6
        : (proto === IPPROTO_ICMP && v.ipVersion === 4) || (proto === IPPROTO_ICMPV6 && v.ipVersion === 6)
          ? 2
          : -1;
  const l4 = v.l4off;
  const len = v.off + v.len - l4;
  if (at < 0 || len < at + 2) return;
  const buf = v.buf;
  buf[l4 + at] = 0;
  buf[l4 + at + 1] = 0;
  const cov = proto === IPPROTO_UDPLITE && v.udpLen !== 0 ? v.udpLen : len;
  let c = l4Checksum(v.ipVersion, v.src, v.dst, proto, buf, l4, len, cov);
  if (c === 0 && (proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE)) c = 0xffff;
  buf[l4 + at] = c >>> 8;
  buf[l4 + at + 1] = c & 0xff;
}
