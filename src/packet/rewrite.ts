/**
 * In-place rewrite of a packet's source or destination endpoint (address and port, or the
 * ICMP/ICMPv6 echo id), as nf_nat_proto.c's l3/l4 manip functions do, keeping every checksum
 * valid: the IPv4 header checksum and the TCP / UDP / UDP-Lite / ICMPv6 checksums (whose
 * pseudo-header holds the addresses) are updated incrementally (RFC 1624: HC' = ~(~HC + ~m + m'));
 * an IPv4 UDP checksum of 0 ("none") stays 0, and an updated one that comes out 0 is stored as
 * 0xffff (CSUM_MANGLED_0). With `full` (a PKTF_CSUM_NOT_READY or GSO packet, whose checksum
 * field holds only a partial sum: the kernel sets CHECKSUM_NONE on a packet whose payload the
 * verdict replaced, so the field must hold the complete checksum) the L4 checksum is
 * computed over the whole datagram instead. The view's fields follow the bytes. No allocation.
 */
import { foldSum, l4Checksum } from './checksum';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, type PacketView } from './view';

/** Unfolded RFC 1624 difference of replacing the 32-bit word a by b. */
function wordDelta(a: number, b: number): number {
  return (~a >>> 16) + (~a & 0xffff) + (b >>> 16) + (b & 0xffff);
}

/** The 16-bit checksum at buf[at] adjusted by an unfolded difference. */
function adjust(buf: Uint8Array, at: number, delta: number): void {
  const old = (buf[at] << 8) | buf[at + 1];
  const sum = ~foldSum((~old & 0xffff) + foldSum(delta)) & 0xffff;
  buf[at] = sum >>> 8;
  buf[at + 1] = sum & 0xff;
}

/** Offset of the L4 checksum field from the L4 header, -1 for a protocol without one nfqwall rewrites. */
function l4CsumOffset(proto: number, ipVersion: number): number {
  if (proto === IPPROTO_TCP) return 16;
  if (proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE) return 6;
  if (proto === IPPROTO_ICMP && ipVersion === 4) return 2;
  if (proto === IPPROTO_ICMPV6 && ipVersion === 6) return 2;
  return -1;
}

/**
 * Writes the source (which = 0) or destination (which = 1) address (4 words at addr@ao; IPv4:
 * word 0) and port (TCP/UDP/UDP-Lite: that side's port; ICMP/ICMPv6: the id, whichever side) of
 * the parsed, well-formed packet v. The L4 part is left alone for a non-first fragment.
 * Returns whether a byte changed.
 */
export function rewriteEndpoint(v: PacketView, which: number, addr: Uint32Array, ao: number, port: number, full: boolean): boolean {
  const buf = v.buf;
  const proto = v.proto;
  const v4 = v.ipVersion === 4;
  const cur = which === 0 ? v.src : v.dst;
  const nw = v4 ? 1 : 4;
  // the address bytes: IPv4 src at 12, dst at 16; IPv6 src at 8, dst at 24
  const aoff = v.off + (v4 ? (which === 0 ? 12 : 16) : which === 0 ? 8 : 24);
  let addrDelta = 0;
  for (let i = 0; i < nw; i++) {
    const a = cur[i] >>> 0;
    const b = addr[ao + i] >>> 0;
    if (a === b) continue;
    addrDelta += wordDelta(a, b);
    const p = aoff + 4 * i;
    buf[p] = b >>> 24;
    buf[p + 1] = (b >>> 16) & 0xff;
    buf[p + 2] = (b >>> 8) & 0xff;
    buf[p + 3] = b & 0xff;
    cur[i] = b;
  }
  if (v4 && addrDelta !== 0) adjust(buf, v.off + 10, addrDelta);

  const changed = addrDelta !== 0;
  if (v.fragOffset !== 0) return changed;
  const co = l4CsumOffset(proto, v.ipVersion);
  if (co < 0 || v.l4len < co + 2) return changed;
  const l4 = v.l4off;
  const isIcmp = proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6;
  let portDelta = 0;
  if (port >= 0) {
    // ICMP: the echo id at bytes 4-5; TCP/UDP: the port at 0 (source) or 2 (destination)
    const po = isIcmp ? l4 + 4 : l4 + (which === 0 ? 0 : 2);
    const old = (buf[po] << 8) | buf[po + 1];
    if (old !== port && (!isIcmp || v.l4len >= 6)) {
      portDelta = (~old & 0xffff) + port;
      buf[po] = port >>> 8;
      buf[po + 1] = port & 0xff;
      if (isIcmp) v.icmpId = port;
      else if (which === 0) v.sport = port;
      else v.dport = port;
    }
  }
  // ICMP (IPv4) has no pseudo-header
  const delta = portDelta + (proto === IPPROTO_ICMP ? 0 : addrDelta);
  if (delta === 0 && !(full && changed)) return changed;
  const ca = l4 + co;
  if (full && v.isFragment === 0) {
    buf[ca] = 0;
    buf[ca + 1] = 0;
    const len = v.off + v.len - l4;
    const cov = proto === IPPROTO_UDPLITE && v.udpLen !== 0 ? v.udpLen : len;
    let c = l4Checksum(v.ipVersion, v.src, v.dst, proto, buf, l4, len, cov);
    if (c === 0 && (proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE)) c = 0xffff;
    buf[ca] = c >>> 8;
    buf[ca + 1] = c & 0xff;
    return true;
  }
  if (proto === IPPROTO_UDP && v4 && buf[ca] === 0 && buf[ca + 1] === 0) return true; // no checksum: stays none
  adjust(buf, ca, delta);
  if ((proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE) && buf[ca] === 0 && buf[ca + 1] === 0) {
    buf[ca] = 0xff;
    buf[ca + 1] = 0xff;
  }
  return true;
}
