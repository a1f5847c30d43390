/**
 * IPv6 header parsing and the extension-header walk (the kernel's
 * ipv6_skip_exthdr, net/ipv6/exthdrs_core.c). Hot path: no allocation.
 */
import { Malformed, type PacketView } from './view';

/** Most extension headers walked before the packet is declared malformed (BAD_EXT_HEADER). */
export const MAX_EXT_HEADERS = 32;

export const NEXTHDR_HOP = 0;
export const NEXTHDR_ROUTING = 43;
export const NEXTHDR_FRAGMENT = 44;
export const NEXTHDR_AUTH = 51;
export const NEXTHDR_DEST = 60;

/** 1 for the extension headers ipv6_skip_exthdr walks over (59 is handled separately). */
export function isIpv6ExtHeader(nh: number): boolean {
  return nh === NEXTHDR_HOP || nh === NEXTHDR_ROUTING || nh === NEXTHDR_FRAGMENT || nh === NEXTHDR_AUTH || nh === NEXTHDR_DEST;
}

/**
 * Side results of walkExtHeaders (one shared object, so the walk returns a single
 * number and allocates nothing). Valid until the next call.
 */
export const extWalk = {
  /** Upper-layer protocol found (for a non-first fragment: the fragment header's next header). */
  proto: 0,
  /** Fragment header: 1 if present, offset in bytes, M flag, identification. */
  isFragment: 0,
  fragOffset: 0,
  moreFragments: 0,
  fragId: 0,
};

/**
 * Walks the extension headers starting at `start` with first next-header value
 * `nh`, up to `end` (exclusive). Returns the offset of the upper-layer header
 * (for a non-first fragment: the first byte after the fragment header), or
 * -Malformed.BAD_EXT_HEADER when a header is truncated or the chain is longer
 * than MAX_EXT_HEADERS. Stops at 59 (no next header): extWalk.proto = 59.
 */
export function walkExtHeaders(buf: Uint8Array, start: number, end: number, nh: number): number {
  extWalk.fragOffset = 0;
  extWalk.moreFragments = 0;
  extWalk.fragId = 0;
  extWalk.isFragment = 0;
  let n = 0;
  while (isIpv6ExtHeader(nh)) {
    if (++n > MAX_EXT_HEADERS) return -Malformed.BAD_EXT_HEADER;
    if (start + 2 > end) return -Malformed.BAD_EXT_HEADER;
    let hdrlen: number;
    if (nh === NEXTHDR_FRAGMENT) {
      if (start + 8 > end) return -Malformed.BAD_EXT_HEADER;
      const fo = (buf[start + 2] << 8) | buf[start + 3];
      extWalk.isFragment = 1;
      extWalk.fragOffset = fo & 0xfff8; // 13-bit offset in 8-byte units, already shifted by 3
      extWalk.moreFragments = fo & 1;
      extWalk.fragId = ((buf[start + 4] << 24) | (buf[start + 5] << 16) | (buf[start + 6] << 8) | buf[start + 7]) >>> 0;
      hdrlen = 8;
      if (extWalk.fragOffset !== 0) {
        // Non-first fragment: the upper-layer header is not in this packet.
        extWalk.proto = buf[start];
        return start + 8;
      }
    } else if (nh === NEXTHDR_AUTH) {
      hdrlen = (buf[start + 1] + 2) << 2;
    } else {
      hdrlen = (buf[start + 1] + 1) << 3;
    }
    if (start + hdrlen > end) return -Malformed.BAD_EXT_HEADER;
    nh = buf[start];
    start += hdrlen;
  }
  extWalk.proto = nh;
  return start;
}

/**
 * Parses the fixed IPv6 header at v.off and walks the extension headers.
 * On success sets the L3 fields, clips v.len to 40 + payload length, sets
 * v.proto, v.l4off and v.l4len and the fragment fields, and returns true.
 */
export function parseIp6(buf: Uint8Array, v: PacketView): boolean {
  const off = v.off;
  const len = v.len;
  v.ipVersion = 6;
  if (len < 40) {
    v.malformed = Malformed.TOO_SHORT;
    return false;
  }
  const w0 = ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
  v.tos = (w0 >>> 20) & 0xff;
  v.flowLabel = w0 & 0xfffff;
  const payloadLen = (buf[off + 4] << 8) | buf[off + 5];
  const nh = buf[off + 6];
  v.ttl = buf[off + 7];
  for (let i = 0; i < 4; i++) {
    const s = off + 8 + (i << 2);
    v.src[i] = ((buf[s] << 24) | (buf[s + 1] << 16) | (buf[s + 2] << 8) | buf[s + 3]) >>> 0;
    const d = s + 16;
    v.dst[i] = ((buf[d] << 24) | (buf[d + 1] << 16) | (buf[d + 2] << 8) | buf[d + 3]) >>> 0;
  }
  v.proto = nh;
  // payload_len 0 with a hop-by-hop header is a jumbogram (RFC 2675): the buffer length is used.
  let total = 40 + payloadLen;
  if (payloadLen === 0 && nh === NEXTHDR_HOP) total = len;
  v.ipTotalLen = total;
  if (total > len) {
    v.malformed = Malformed.BAD_TOTAL_LEN;
    return false;
  }
  v.len = total;
  const end = off + total;
  const r = walkExtHeaders(buf, off + 40, end, nh);
  v.isFragment = extWalk.isFragment;
  v.fragOffset = extWalk.fragOffset;
  v.moreFragments = extWalk.moreFragments;
  v.ipId = extWalk.fragId;
  if (r < 0) {
    v.malformed = -r;
    return false;
  }
  v.proto = extWalk.proto;
  v.l4off = r;
  v.l4len = end - r;
  return true;
}
