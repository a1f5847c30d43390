/**
 * The kernel's queue choice for `-j NFQUEUE --queue-balance A:B` (xt_NFQUEUE.c nfqueue_tg_v1
 * → nfqueue_hash in include/net/netfilter/nf_queue.h), ported exactly:
 *
 *   IPv4: jhash_3words(min(saddr, daddr), max(saddr, daddr), protocol, initval)
 *   IPv6: jhash_3words(min(s[3], d[3]), max(s[3], d[3]), min(s[1], d[1]), initval)  (no protocol)
 *   queue = A + reciprocal_scale(hash, B - A + 1)
 *
 * with the address words loaded as the kernel loads them (network-order bytes read as a native
 * u32; little-endian here). What it tells nfqwall: both directions of a flow land on the same
 * queue, and so do all flows between the same two addresses with the same protocol (an FTP
 * control connection and its data connections), while ICMP errors about a TCP/UDP flow (another
 * protocol, often another sender) may land on another queue. What it cannot tell: which queue,
 * because `initval` is jhash_initval, drawn with get_random_u32() the first time a rule with the
 * target is checked (init_hashrandom) and never exported. Restored state is therefore handed out
 * by claim (src/daemon/restore-store.ts), not by computing the queue.
 */

const JHASH_INITVAL = 0xdeadbeef;

const rol32 = (w: number, s: number) => ((w << s) | (w >>> (32 - s))) >>> 0;

/** include/linux/jhash.h jhash_3words (u32 arithmetic). */
export function jhash3words(a: number, b: number, c: number, initval: number): number {
  const iv = (initval + JHASH_INITVAL + (3 << 2)) >>> 0;
  a = (a + iv) >>> 0;
  b = (b + iv) >>> 0;
  c = (c + iv) >>> 0;
  // __jhash_final
  c = ((c ^ b) - rol32(b, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  b = ((b ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ b) - rol32(b, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  b = ((b ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ b) - rol32(b, 24)) >>> 0;
  return c;
}

/** include/linux/kernel.h reciprocal_scale: val * n >> 32. */
export function reciprocalScale(val: number, n: number): number {
  return Number((BigInt(val >>> 0) * BigInt(n >>> 0)) >> 32n);
}

/** A network-order word (0xc612010a for 198.18.1.10) as a little-endian CPU loads it. */
const load = (w: number) => (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0;

/** hash_v4 / hash_v6. src, dst: address words in network order (1 for IPv4, 4 for IPv6). */
export function nfqueueFlowHash(family: 4 | 6, src: ArrayLike<number>, dst: ArrayLike<number>, proto: number, initval: number): number {
  if (family === 4) {
    const s = load(src[0]);
    const d = load(dst[0]);
    return s < d ? jhash3words(s, d, proto & 0xff, initval) : jhash3words(d, s, proto & 0xff, initval);
  }
  const s3 = load(src[3]);
  const d3 = load(dst[3]);
  const s1 = load(src[1]);
  const d1 = load(dst[1]);
  const [a, b] = s3 < d3 ? [s3, d3] : [d3, s3];
  return jhash3words(a, b, s1 < d1 ? s1 : d1, initval);
}

/** nfqueue_hash: the queue of `--queue-balance first:first+total-1` for this packet. */
export function nfqueueHash(
  family: 4 | 6,
  src: ArrayLike<number>,
  dst: ArrayLike<number>,
  proto: number,
  first: number,
  total: number,
  initval: number,
): number {
  return first + reciprocalScale(nfqueueFlowHash(family, src, dst, proto, initval), total);
}
