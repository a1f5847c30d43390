/** Internet checksum helpers (RFC 1071) for building and verifying reject packets. */

/** One's-complement sum of buf[off, off+len) added to `sum` (not folded). */
export function csumAdd(buf: Uint8Array, off: number, len: number, sum: number): number {
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

export function csumFold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return ~sum & 0xffff;
}

/** Sum of the IPv4 pseudo header (addresses as u32 words). */
export function pseudo4(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/** Sum of the IPv6 pseudo header. */
export function pseudo6(src: ArrayLike<number>, dst: ArrayLike<number>, proto: number, len: number): number {
  let s = proto + (len >>> 16) + (len & 0xffff);
  for (let i = 0; i < 4; i++) s += (src[i] >>> 16) + (src[i] & 0xffff) + (dst[i] >>> 16) + (dst[i] & 0xffff);
  return s;
}

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

export function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
