/**
 * Keyed hashing of tuples: HalfSipHash-2-4 (32-bit output) over u32 words,
 * pure 32-bit integer arithmetic, no allocation. The kernel hashes conntrack
 * tuples with (h)siphash under a random boot-time key so that nobody can choose
 * tuples that pile up in one bucket; every Conntrack instance draws its own key.
 *
 * Message words are read as little-endian 32-bit words, so hashing the words
 * [0x03020100, 0x07060504] equals hashing the bytes 00..07 (the reference
 * test vectors use that).
 */

/**
 * HalfSipHash-2-4, 32-bit output as a signed int32 (the hot path's form: a uint32 at or above
 * 2^31 is not a small integer in V8 and would be boxed — allocated — whenever it crosses a
 * call), key (k0, k1), message = n u32 words of `words` from `off`. The SipRounds are
 * written out (no inner loops): this runs for every packet.
 */
export function halfSipHash24i(k0: number, k1: number, words: Uint32Array, off: number, n: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = (0x6c796765 ^ k0) | 0;
  let v3 = (0x74656462 ^ k1) | 0;
  for (let i = 0; i <= n; i++) {
    // the last block: the length in the top byte (message is whole words: no tail bytes)
    const m = i < n ? words[off + i] | 0 : ((n * 4) & 0xff) << 24;
    v3 ^= m;
    // 2 compression rounds
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  v2 ^= 0xff;
  // 4 finalisation rounds
  for (let r = 0; r < 2; r++) {
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
  }
  return v1 ^ v3;
}

/**
 * HalfSipHash-2-4 (signed int32 output, as halfSipHash24i) of the 4-word message (m0, m1, m2, m3) — the compact encoding of an
 * IPv4 connection tuple (see HashKey.hashTuple).
 */
export function halfSipHash24x4i(k0: number, k1: number, m0: number, m1: number, m2: number, m3: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = (0x6c796765 ^ k0) | 0;
  let v3 = (0x74656462 ^ k1) | 0;
  for (let i = 0; i < 5; i++) {
    const m = (i === 0 ? m0 : i === 1 ? m1 : i === 2 ? m2 : i === 3 ? m3 : 16 << 24) | 0;
    v3 ^= m;
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  v2 ^= 0xff;
  for (let r = 0; r < 2; r++) {
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 = (v0 + v1) | 0;
    v1 = (v1 << 5) | (v1 >>> 27);
    v1 ^= v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = (v3 << 8) | (v3 >>> 24);
    v3 ^= v2;
    v0 = (v0 + v3) | 0;
    v3 = (v3 << 7) | (v3 >>> 25);
    v3 ^= v0;
    v2 = (v2 + v1) | 0;
    v1 = (v1 << 13) | (v1 >>> 19);
    v1 ^= v2;
    v2 = (v2 << 16) | (v2 >>> 16);
  }
  return v1 ^ v3;
}

/** HalfSipHash-2-4 as the reference defines its output: unsigned 32-bit. */
export function halfSipHash24(k0: number, k1: number, words: Uint32Array, off: number, n: number): number {
  return halfSipHash24i(k0, k1, words, off, n) >>> 0;
}

/** A 64-bit HalfSipHash key drawn from `random` (crypto.randomFillSync by default). */
export class HashKey {
  readonly k0: number;
  readonly k1: number;
  constructor(random: (buf: Uint8Array) => void) {
    const b = new Uint8Array(8);
    random(b);
    // kept as int32 (the same bits): a uint32 at or above 2^31 would be a boxed double in V8
    this.k0 = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24);
    this.k1 = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24);
  }
  /** Signed 32-bit hash (halfSipHash24i). */
  hash(words: Uint32Array, off: number, n: number): number {
    return halfSipHash24i(this.k0, this.k1, words, off, n);
  }
  /**
   * The hash of a connection tuple (tuple.ts layout, 10 words at `off`). IPv4 tuples are
   * hashed as the 4 words that can be non-zero (meta, src, dst, ports): 14 SipRounds instead
   * of 26. The encoding stays injective: the meta word carries the family, and the length
   * byte of the last block differs between the two encodings.
   */
  hashTuple(t: Uint32Array, off: number): number {
    const meta = t[off];
    // words as int32 (| 0): addresses and port words at or above 2^31 would be boxed as call arguments
    if (meta >>> 8 === 4) return halfSipHash24x4i(this.k0, this.k1, meta | 0, t[off + 1] | 0, t[off + 5] | 0, t[off + 9] | 0);
    return halfSipHash24i(this.k0, this.k1, t, off, 10);
  }
}

/** Bucket of a 32-bit hash in a table of n buckets: (hash * n) >> 32, as the kernel's reciprocal_scale(). */
export function scaleHash(h: number, n: number): number {
  // (h * n) can exceed 2^53 for big tables: split h into halves to stay exact
  const hi = (h >>> 16) * n;
  const lo = (h & 0xffff) * n;
  return Math.floor((hi + lo / 65536) / 65536);
}
