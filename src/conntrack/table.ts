/**
 * The connection table: one 64-byte record per entry in one ArrayBuffer, plus a few
 * narrow columns (no object per entry).
 *
 * Entry e (a row id) holds the ORIG tuple; the REPLY tuple is derived when the entry is not
 * NATed (addresses swapped, ports word R_RPORTS), else it is in the NAT column `nat`
 * (TUPLE_WORDS words per row, written only for NATed entries, so a table without NAT commits
 * none of its pages). Both tuples are linked into the hash:
 * node 2e is the ORIG tuple, node 2e+1 the REPLY tuple. The record's words are described
 * in layout.ts.
 *
 * No hash is stored: chains compare tuples, and unlink / rehash (rare) recompute the
 * keyed hash from the tuple. `heads[bucket]` is the chain's first node + 1 (0 = empty).
 * "None" is 0 everywhere, so that the arrays need no fill: with nf_conntrack_max > 0
 * they are reserved at that size up front and the kernel commits their zero pages only
 * as rows are first used (no copy when the table fills up, no growth stall).
 *
 * Bytes per entry: 64 record + 4 created + 4 mark + 4 gen + 1 helper + 1 master helper +
 * 1 flags = 79 (+ 40 of NAT column address space, committed for NATed rows only), plus 4 per bucket, plus tracker state; expected entries (RELATED by an
 * expectation) also have a master in a side map.
 */
import * as os from 'node:os';
import { HashKey, scaleHash } from './hash';
import { NAT_MASQ_WORD, REC_WORDS, R_NEXT, R_RPORTS, R_STATUS, TUPLE_WORDS, nodeLink, nodeTuple, recBase, timeoutIndex } from './layout';

/** flags[] bits */
export const F_ALLOC = 1;
export const F_HASHED = 2;
/**
 * Hashed at the pre-routing crossing, its first packet not yet decided at the second one (a
 * drop there destroys it, as the kernel drops an unconfirmed entry with its packet).
 */
export const F_PENDING = 4;

/**
 * Records start this many bytes into their ArrayBuffer. A large buffer comes from mmap
 * through calloc, whose 16-byte chunk header puts the data at page + 16: with 48 more
 * the records are 64-byte aligned (one cache line each). Smaller buffers get no such
 * guarantee, but they fit in the CPU caches anyway.
 */
const REC_PAD_BYTES = 48;

const INITIAL_CAPACITY = 1024;
/**
 * Reserve at most this many rows up front: 8M (~670 MB of table address space), and no more
 * than a quarter of the machine's memory at ~240 bytes a row (table, NAT column and TCP records), so that
 * a large nf_conntrack_max on a small machine does not ask for more address space than the
 * kernel's overcommit heuristic grants at once. A larger nf_conntrack_max grows by doubling
 * from there, as the table fills.
 */
const RESERVE_MAX_ROWS = Math.max(INITIAL_CAPACITY, Math.min(1 << 23, Math.floor(os.totalmem() / 4 / 240)));

export class ConnTable {
  capacity = 0;
  /** Maximum capacity (0 = unlimited); growth stops there. */
  limit = 0;

  /** records, as u32 words */
  rec: Uint32Array = new Uint32Array(0);
  /** the same records, as float64 (timeouts) */
  recf: Float64Array = new Float64Array(0);
  /** creation time in ms, modulo 2^32 (ages up to 49.7 days are exact; see createdAge) */
  created: Uint32Array = new Uint32Array(0);
  mark: Uint32Array = new Uint32Array(0);
  /** NATed entries' REPLY tuples, TUPLE_WORDS words per row (layout.ts: storeNatReply) */
  nat: Uint32Array = new Uint32Array(0);
  /** a MASQUERADE has bound an entry to an interface (NAT_MASQ_WORD): freed rows clear it */
  masqUsed = false;
  /** entries both SNATed and DNATed: next entry + 1 in their chain of ConntrackNat's crossing index */
  mixNext: Uint32Array = new Uint32Array(0);
  helper: Uint8Array = new Uint8Array(0);
  masterHelper: Uint8Array = new Uint8Array(0);
  flags: Uint8Array = new Uint8Array(0);
  /** incremented each time the row is freed: (id, gen) names one entry for good */
  gen: Uint32Array = new Uint32Array(0);
  /** expected entries only: row → [master row, master's gen] */
  private readonly masters = new Map<number, [number, number]>();

  heads: Uint32Array;
  nbuckets: number;

  /** allocated rows (confirmed + unconfirmed) */
  count = 0;
  /** rows in the hash (confirmed) */
  hashed = 0;
  private freeHead = -1;
  private hiwater = 0;
  private readonly hkey: HashKey;
  private readonly scratch = new Uint32Array(TUPLE_WORDS);

  /** called after the capacity grew (trackers, helpers, expectations resize their arrays) */
  onResize: (capacity: number) => void = () => {};

  /**
   * `limit` > 0: the columns are reserved at that size now (virtual memory: pages are
   * committed as rows are used). Each worker thread of a multi-queue daemon has its own
   * table, each reserving nf_conntrack_max rows, though all together hold at most that many.
   */
  constructor(nbuckets: number, limit: number, hkey: HashKey) {
    this.hkey = hkey;
    this.nbuckets = Math.max(1, nbuckets | 0);
    this.heads = new Uint32Array(this.nbuckets);
    this.limit = limit;
    if (!this.grow(limit > 0 ? Math.min(limit, RESERVE_MAX_ROWS) : INITIAL_CAPACITY) && !this.grow(INITIAL_CAPACITY)) {
      throw new RangeError(`cannot allocate a connection table of ${INITIAL_CAPACITY} entries`);
    }
  }

  bucketOf(h: number): number {
    return scaleHash(h, this.nbuckets);
  }

  isAlloc(e: number): boolean {
    return e >= 0 && e < this.hiwater && (this.flags[e] & F_ALLOC) !== 0;
  }

  isHashed(e: number): boolean {
    return (this.flags[e] & F_HASHED) !== 0;
  }

  /** Rows ever used (ids are below this). */
  get highWater(): number {
    return this.hiwater;
  }

  status(e: number): number {
    return this.rec[recBase(e) + R_STATUS];
  }

  setStatus(e: number, st: number): void {
    this.rec[recBase(e) + R_STATUS] = st;
  }

  timeout(e: number): number {
    return this.recf[timeoutIndex(e)];
  }

  setTimeout(e: number, t: number): void {
    this.recf[timeoutIndex(e)] = t;
  }

  rports(e: number): number {
    return this.rec[recBase(e) + R_RPORTS];
  }

  /** First node of bucket b, -1 if empty. */
  head(b: number): number {
    return this.heads[b] - 1;
  }

  /** Node after node n in its chain, -1 at the end. */
  next(n: number): number {
    return this.rec[nodeLink(n)] - 1;
  }

  /** Creation time in ms (the low 32 bits kept; exact while the entry is younger than 2^32 ms). */
  setCreated(e: number, now: number): void {
    this.created[e] = Math.floor(now) >>> 0;
  }

  /** Age in ms at `now` (modulo 2^32 ms = 49.7 days), whole ms. */
  createdAge(e: number, now: number): number {
    return (Math.floor(now) - this.created[e]) >>> 0;
  }

  /** e is expected: m (alive now) is its master. */
  setMaster(e: number, m: number): void {
    this.masters.set(e, [m, this.gen[m]]);
  }

  /** The master of e, -1 if none or already gone. */
  master(e: number): number {
    if (this.masters.size === 0) return -1;
    const x = this.masters.get(e);
    if (x === undefined) return -1;
    const m = x[0];
    return this.isAlloc(m) && this.gen[m] === x[1] ? m : -1;
  }

  /** Rows that have a master entry (tests, checker). */
  get masterCount(): number {
    return this.masters.size;
  }

  /** A free row, or -1 if the capacity cannot grow any more. */
  alloc(): number {
    let e = this.freeHead;
    if (e >= 0) {
      this.freeHead = this.rec[recBase(e) + R_NEXT] - 1;
    } else {
      if (this.hiwater === this.capacity) {
        let cap = this.capacity * 2;
        if (this.limit > 0 && cap > this.limit) cap = this.limit;
        if (cap <= this.capacity || !this.grow(cap)) return -1;
      }
      e = this.hiwater++;
    }
    this.flags[e] = F_ALLOC;
    const r = recBase(e);
    this.rec[r + R_NEXT] = 0;
    this.rec[r + R_NEXT + 1] = 0;
    this.count++;
    return e;
  }

  /** Return a row (must not be hashed). */
  free(e: number): void {
    this.flags[e] = 0;
    this.gen[e] = (this.gen[e] + 1) >>> 0;
    const r = recBase(e);
    this.rec[r + R_STATUS] = 0;
    // MASQUERADE's interface (NAT_MASQ_WORD), once a MASQUERADE has set any: a table without NAT never touches the column
    if (this.masqUsed) this.nat[e * TUPLE_WORDS + NAT_MASQ_WORD] = 0;
    this.rec[r + R_NEXT] = this.freeHead + 1;
    if (this.masters.size !== 0) this.masters.delete(e);
    this.freeHead = e;
    this.count--;
  }

  /**
   * Reserve the columns for `limit` rows now (nf_conntrack_max raised); 0 = unlimited. False
   * when the memory could not be had: the table then grows as it fills, as far as it can.
   */
  reserve(limit: number): boolean {
    this.limit = limit;
    if (limit > 0 && Math.min(limit, RESERVE_MAX_ROWS) > this.capacity) return this.grow(Math.min(limit, RESERVE_MAX_ROWS));
    return true;
  }

  /** Link both nodes of e; h0, h1 are the keyed hashes of its ORIG and REPLY tuples. */
  insert(e: number, h0: number, h1: number): void {
    const rec = this.rec;
    const r = recBase(e);
    let b = scaleHash(h0, this.nbuckets);
    rec[r + R_NEXT] = this.heads[b];
    this.heads[b] = 2 * e + 1;
    b = scaleHash(h1, this.nbuckets);
    rec[r + R_NEXT + 1] = this.heads[b];
    this.heads[b] = 2 * e + 2;
    this.flags[e] |= F_HASHED;
    this.hashed++;
  }

  /** The keyed hash of node n's tuple (ORIG for even n, REPLY for odd). */
  nodeHash(n: number): number {
    const k = this.scratch;
    nodeTuple(this.rec, this.nat, n, k, 0);
    return this.hkey.hashTuple(k, 0);
  }

  /** Unlink both nodes of e from their chains (their buckets from the tuples' hashes). */
  unlink(e: number): void {
    this.unlinkNode(2 * e);
    this.unlinkNode(2 * e + 1);
    this.flags[e] &= ~F_HASHED;
    this.hashed--;
  }

  /** Take node n out of its chain (its bucket from its tuple's hash); the entry stays counted as hashed. */
  unlinkNode(n: number): void {
    const rec = this.rec;
    const link = nodeLink(n);
    const b = scaleHash(this.nodeHash(n), this.nbuckets);
    let p = this.heads[b] - 1;
    if (p === n) {
      this.heads[b] = rec[link];
    } else {
      while (p >= 0) {
        const pl = nodeLink(p);
        const q = rec[pl] - 1;
        if (q === n) {
          rec[pl] = rec[link];
          break;
        }
        p = q;
      }
    }
    rec[link] = 0;
  }

  /** Put node n (unlinked by unlinkNode) back at the head of the chain of hash h. */
  linkNode(n: number, h: number): void {
    const b = scaleHash(h, this.nbuckets);
    this.rec[nodeLink(n)] = this.heads[b];
    this.heads[b] = n + 1;
  }

  /** Resize the bucket array and relink every hashed node (nf_conntrack_hash_resize). */
  rehash(nbuckets: number): void {
    nbuckets = Math.max(1, nbuckets | 0);
    const old = this.heads;
    const rec = this.rec;
    const heads = new Uint32Array(nbuckets);
    for (let b = 0; b < old.length; b++) {
      let n = old[b] - 1;
      while (n >= 0) {
        const link = nodeLink(n);
        const nx = rec[link] - 1;
        const nb = scaleHash(this.nodeHash(n), nbuckets);
        rec[link] = heads[nb];
        heads[nb] = n + 1;
        n = nx;
      }
    }
    this.heads = heads;
    this.nbuckets = nbuckets;
  }

  /**
   * Grows the columns to `cap` rows, and the trackers' and helpers' per-entry arrays through
   * onResize, all or nothing: false (and nothing changed in the table) when the memory could
   * not be had, so that a full machine refuses new entries instead of crashing the daemon.
   */
  private grow(cap: number): boolean {
    const old = this.capacity;
    let buf: ArrayBuffer, created: Uint32Array, mark: Uint32Array, gen: Uint32Array, nat: Uint32Array, mixNext: Uint32Array;
    let helper: Uint8Array, masterHelper: Uint8Array, flags: Uint8Array;
    try {
      buf = new ArrayBuffer(REC_PAD_BYTES + cap * REC_WORDS * 4);
      created = growU32(this.created, cap);
      mark = growU32(this.mark, cap);
      gen = growU32(this.gen, cap);
      nat = growU32(this.nat, cap * TUPLE_WORDS);
      mixNext = growU32(this.mixNext, cap);
      helper = growU8(this.helper, cap);
      masterHelper = growU8(this.masterHelper, cap);
      flags = growU8(this.flags, cap);
      if (cap > old) this.onResize(cap);
    } catch (err) {
      if (err instanceof RangeError) return false; // "Array buffer allocation failed"
      throw err;
    }
    const rec = new Uint32Array(buf, REC_PAD_BYTES, cap * REC_WORDS);
    rec.set(this.rec);
    this.rec = rec;
    this.recf = new Float64Array(buf, REC_PAD_BYTES, cap * (REC_WORDS >> 1));
    this.created = created;
    this.mark = mark;
    this.gen = gen;
    this.nat = nat;
    this.mixNext = mixNext;
    this.helper = helper;
    this.masterHelper = masterHelper;
    this.flags = flags;
    this.capacity = cap;
    return true;
  }
}

function growU32(a: Uint32Array, n: number): Uint32Array {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}
function growU8(a: Uint8Array, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}
