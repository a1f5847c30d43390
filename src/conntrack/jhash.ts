/**
 * The kernel's Bob Jenkins hash (include/linux/jhash.h) and reciprocal_scale
 * (include/linux/kernel.h), once for every user: NAT's address choice (nat.ts, jhash2 over an
 * address) and the queue-balance port of nfqueue_hash (src/daemon/nfqueue-hash.ts,
 * jhash_3words). The arithmetic is int32 (`| 0`) so the per-packet callers make no heap
 * numbers; results are returned as u32.
 */

const JHASH_INITVAL = 0xdeadbeef;

function rol32(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A network-order word (0xc612010a for 198.18.1.10) as a little-endian CPU loads it. */
export function bswap32(x: number): number {
  return ((x >>> 24) | ((x >>> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24)) >>> 0;
}

/** __jhash_final(a, b, c): the final c (int32). */
function jhashFinal(a: number, b: number, c: number): number {
  c ^= b;
  c = (c - rol32(b, 14)) | 0;
  a ^= c;
  a = (a - rol32(c, 11)) | 0;
  b ^= a;
  b = (b - rol32(a, 25)) | 0;
  c ^= b;
  c = (c - rol32(b, 16)) | 0;
  a ^= c;
  a = (a - rol32(c, 4)) | 0;
  b ^= a;
  b = (b - rol32(a, 14)) | 0;
  c ^= b;
  return (c - rol32(b, 24)) | 0;
}

/** jhash_3words(a, b, c, initval). */
export function jhash3words(a: number, b: number, c: number, initval: number): number {
  const iv = (initval + JHASH_INITVAL + (3 << 2)) | 0;
  return jhashFinal((a + iv) | 0, (b + iv) | 0, (c + iv) | 0) >>> 0;
}

/**
 * jhash2 over the 4 words of an address at words[o] as the kernel sees them in memory (network
 * order words read as little-endian u32, so each of our big-endian words byte-swapped).
 */
export function jhashAddr(words: Uint32Array, o: number, initval: number): number {
  let a = (JHASH_INITVAL + (4 << 2) + initval) | 0;
  let b = a;
  let c = a;
  a = (a + bswap32(words[o])) | 0;
  b = (b + bswap32(words[o + 1])) | 0;
  c = (c + bswap32(words[o + 2])) | 0;
  // __jhash_mix
  a = (a - c) | 0;
  a ^= rol32(c, 4);
  c = (c + b) | 0;
  b = (b - a) | 0;
  b ^= rol32(a, 6);
  a = (a + c) | 0;
  c = (c - b) | 0;
  c ^= rol32(b, 8);
  b = (b + a) | 0;
  a = (a - c) | 0;
  a ^= rol32(c, 16);
  c = (c + b) | 0;
  b = (b - a) | 0;
  b ^= rol32(a, 19);
  a = (a + c) | 0;
  c = (c - b) | 0;
  c ^= rol32(b, 4);
  b = (b + a) | 0;
  a = (a + bswap32(words[o + 3])) | 0;
  return jhashFinal(a, b, c) >>> 0;
}

/**
 * reciprocal_scale(val, n): (u64)val * n >> 32, exact for every u32 val and n (the product
 * can pass 2^53, so it is taken in two 48-bit halves: val = hi * 2^16 + lo).
 */
export function reciprocalScale(val: number, n: number): number {
  val >>>= 0;
  n >>>= 0;
  const lo = (val & 0xffff) * n;
  const hi = (val >>> 16) * n + Math.floor(lo / 65536);
  return Math.floor(hi / 65536);
}
