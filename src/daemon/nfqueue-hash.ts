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
import { bswap32, jhash3words, reciprocalScale } from '../conntrack/jhash';

/** The kernel's jhash_3words and reciprocal_scale (src/conntrack/jhash.ts), re-exported for the tests. */
export { jhash3words, reciprocalScale };

/** hash_v4 / hash_v6. src, dst: address words in network order (1 for IPv4, 4 for IPv6). */
export function nfqueueFlowHash(family: 4 | 6, src: ArrayLike<number>, dst: ArrayLike<number>, proto: number, initval: number): number {
  if (family === 4) {
    const s = bswap32(src[0]);
    const d = bswap32(dst[0]);
    return s < d ? jhash3words(s, d, proto & 0xff, initval) : jhash3words(d, s, proto & 0xff, initval);
  }
  const s3 = bswap32(src[3]);
  const d3 = bswap32(dst[3]);
  const s1 = bswap32(src[1]);
  const d1 = bswap32(dst[1]);
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
