/**
 * The word layout of conntrack's integer data, in one place: the tuple and the table's
 * 64-byte record. Everything that reads or writes a tuple or a record uses these offsets
 * and accessors (small functions of plain integers that V8 inlines), not arithmetic of its own.
 *
 * Tuple (struct nf_conntrack_tuple without the direction): TUPLE_WORDS u32 words at some
 * offset of a Uint32Array (a lookup key, an expectation, a record's first words):
 *
 *   [T_META]      family << 8 | protonum      (family 4 or 6)
 *   [T_SRC..+3]   source address words (IPv4: word 0, rest 0)
 *   [T_DST..+3]   destination address words
 *   [T_PORTS]     src.u << 16 | dst.u          (TCP/UDP/UDP-Lite: sport, dport;
 *                                               ICMP/ICMPv6: id, type << 8 | code;
 *                                               generic: 0)
 *
 * Record of entry e (ConnTable.rec, u32 words from e << REC_SHIFT; the timeout through the
 * float64 view ConnTable.recf): the ORIG tuple, and what a chain walk needs next to it, so
 * that the walk, the expiry check and the tuple compare touch one cache line per node:
 *
 *   0..9   ORIG tuple (layout above)
 *   10     R_RPORTS   ports word of the REPLY tuple; without NAT its addresses are the ORIG ones
 *                     swapped. With IPS_SRC_NAT or IPS_DST_NAT in R_STATUS the whole REPLY tuple is
 *                     in the NAT column (ConnTable.nat, TUPLE_WORDS words at e * TUPLE_WORDS), as
 *                     nf_conntrack_alter_reply leaves it; R_RPORTS still holds its ports word
 *   11     R_NEXT     next link of node 2e   (node + 1; 0 = end of chain; the free list's link too)
 *   12     R_NEXT + 1 next link of node 2e+1 (node + 1; 0 = end of chain)
 *   13     R_STATUS   status (IPS_*)
 *   14..15 timeout, float64 R_TIMEOUT_F64: absolute expiry in ms when confirmed, relative ms
 *          while unconfirmed
 *
 * Node n = 2e + dir names the tuple of direction dir (0 ORIG, 1 REPLY) of entry e in a hash chain.
 */

import { IPS_NAT_MASK } from './constants';

export const TUPLE_WORDS = 10;
/**
 * Word 0 of an entry's NAT row (its T_META is the record's, never read from there): the
 * interface index a MASQUERADE bound the entry to (nf_conn_nat.masq_index), 0 = none.
 */
export const NAT_MASQ_WORD = 0;
export const T_META = 0;
export const T_SRC = 1;
export const T_DST = 5;
export const T_PORTS = 9;

/** u32 words per record (e << REC_SHIFT is the record's first word) */
export const REC_WORDS = 16;
export const REC_SHIFT = 4;
export const R_RPORTS = 10;
/** next link of the ORIG node; the REPLY node's is R_NEXT + 1 */
export const R_NEXT = 11;
export const R_STATUS = 13;
/** float64 index of the timeout in a record (words 14-15) */
export const R_TIMEOUT_F64 = 7;
const REC_SHIFT_F64 = REC_SHIFT - 1;

/** The record's first word. */
export function recBase(e: number): number {
  return e << REC_SHIFT;
}

/** Index of entry e's timeout in the float64 view. */
export function timeoutIndex(e: number): number {
  return (e << REC_SHIFT_F64) + R_TIMEOUT_F64;
}

/** The word holding node n's next link. */
export function nodeLink(n: number): number {
  return ((n >> 1) << REC_SHIFT) + R_NEXT + (n & 1);
}

/** Address family (4 or 6) of entry e. */
export function recFamily(rec: Uint32Array, e: number): number {
  return rec[(e << REC_SHIFT) + T_META] >>> 8;
}

/** Layer-4 protocol number of entry e. */
export function recProto(rec: Uint32Array, e: number): number {
  return rec[(e << REC_SHIFT) + T_META] & 0xff;
}

/** First word of the source (which = 0) or destination (which = 1) address of entry e's tuple of direction dir. */
export function addrWord(e: number, dir: number, which: number): number {
  return (e << REC_SHIFT) + ((dir === 0) === (which === 0) ? T_SRC : T_DST);
}

/** The word holding the ports of entry e's tuple of direction dir. */
export function portsIndex(e: number, dir: number): number {
  return (e << REC_SHIFT) + (dir === 0 ? T_PORTS : R_RPORTS);
}

/** Entry e's ORIG tuple, as a view into the record (listings and export: it allocates the view). */
export function origTuple(rec: Uint32Array, e: number): Uint32Array {
  const r = e << REC_SHIFT;
  return rec.subarray(r, r + TUPLE_WORDS);
}

/** Whether entry e's REPLY tuple is stored in the NAT column (it differs from the inverted ORIG tuple). */
export function hasNatReply(rec: Uint32Array, e: number): boolean {
  return (rec[(e << REC_SHIFT) + R_STATUS] & IPS_NAT_MASK) !== 0;
}

/** The tuple of node n into out@o (nat: ConnTable.nat, where NATed entries' REPLY tuples are). */
export function nodeTuple(rec: Uint32Array, nat: Uint32Array, n: number, out: Uint32Array, o: number): void {
  const e = n >> 1;
  const r = e << REC_SHIFT;
  out[o + T_META] = rec[r + T_META];
  if ((n & 1) === 0) {
    for (let i = 1; i < TUPLE_WORDS; i++) out[o + i] = rec[r + i];
  } else if ((rec[r + R_STATUS] & IPS_NAT_MASK) !== 0) {
    const t = e * TUPLE_WORDS;
    for (let i = 1; i < TUPLE_WORDS; i++) out[o + i] = nat[t + i];
  } else {
    for (let i = 0; i < 4; i++) {
      out[o + T_SRC + i] = rec[r + T_DST + i];
      out[o + T_DST + i] = rec[r + T_SRC + i];
    }
    out[o + T_PORTS] = rec[r + R_RPORTS];
  }
}

/**
 * Does node n's tuple equal tuple k? The words that differ most between flows first. A NATed
 * entry's REPLY node compares the NAT column (its status word is on the record's cache line).
 */
export function nodeEquals(rec: Uint32Array, nat: Uint32Array, n: number, k: Uint32Array): boolean {
  const r = (n >> 1) << REC_SHIFT;
  if (rec[r + T_META] !== k[T_META]) return false;
  if ((n & 1) === 0) {
    if (rec[r + T_PORTS] !== k[T_PORTS] || rec[r + T_SRC] !== k[T_SRC] || rec[r + T_DST] !== k[T_DST]) return false;
    for (let i = 1; i < 4; i++) if (rec[r + T_SRC + i] !== k[T_SRC + i] || rec[r + T_DST + i] !== k[T_DST + i]) return false;
    return true;
  }
  if (rec[r + R_RPORTS] !== k[T_PORTS]) return false;
  if ((rec[r + R_STATUS] & IPS_NAT_MASK) !== 0) {
    const t = (n >> 1) * TUPLE_WORDS;
    for (let i = 1; i < 9; i++) if (nat[t + i] !== k[i]) return false;
    return true;
  }
  if (rec[r + T_DST] !== k[T_SRC] || rec[r + T_SRC] !== k[T_DST]) return false;
  for (let i = 1; i < 4; i++) if (rec[r + T_DST + i] !== k[T_SRC + i] || rec[r + T_SRC + i] !== k[T_DST + i]) return false;
  return true;
}

/** Writes entry e's ORIG tuple (from key@0) and its reply ports word into its record. */
export function storeTuple(rec: Uint32Array, e: number, key: Uint32Array, rports: number): void {
  const r = e << REC_SHIFT;
  for (let i = 0; i < TUPLE_WORDS; i++) rec[r + i] = key[i];
  rec[r + R_RPORTS] = rports;
}

/**
 * Entry e's REPLY tuple becomes k@ko (nf_conntrack_alter_reply): stored in the NAT column with
 * its ports in R_RPORTS. The caller sets IPS_SRC_NAT / IPS_DST_NAT in the status (and unlinks and
 * relinks the REPLY node of a hashed entry around this).
 */
export function storeNatReply(rec: Uint32Array, nat: Uint32Array, e: number, k: Uint32Array, ko: number): void {
  const t = e * TUPLE_WORDS;
  for (let i = 1; i < TUPLE_WORDS; i++) nat[t + i] = k[ko + i];
  rec[(e << REC_SHIFT) + R_RPORTS] = k[ko + T_PORTS];
}
