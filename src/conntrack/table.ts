/**
 * The connection table as a struct of typed arrays (no object per entry).
 *
 * Entry e (a row id) holds the ORIG tuple; the REPLY tuple is derived (no NAT):
 * addresses swapped, ports word `rports[e]`. Both tuples are linked into the
 * hash: node 2e is the ORIG tuple, node 2e+1 the REPLY tuple; `heads[bucket]`
 * is the first node of a chain, `next[node]` the following one, `nhash[node]`
 * the node's 32-bit keyed hash (kept so chains can be re-bucketed without
 * rehashing tuples, and as a fast pre-check before comparing tuples).
 *
 * Bytes per entry: 40 tuple + 4 rports + 4 status + 8 timeout + 8 created +
 * 4 mark + 1 helper + 1 master helper + 1 flags + 4 master + 4 master gen +
 * 4 gen + 8 next + 8 hash = 99, plus 4 per bucket, plus tracker state.
 */
import { TUPLE_WORDS } from './tuple';
import { scaleHash } from './hash';

/** flags[] bits */
export const F_ALLOC = 1;
export const F_HASHED = 2;

const INITIAL_CAPACITY = 1024;

export class ConnTable {
  capacity = 0;
  /** Maximum capacity (0 = unlimited); growth stops there. */
  limit = 0;

  tuples: Uint32Array = new Uint32Array(0);
  rports: Uint32Array = new Uint32Array(0);
  status: Uint32Array = new Uint32Array(0);
  /** absolute expiry in ms when confirmed; relative ms while unconfirmed */
  timeout: Float64Array = new Float64Array(0);
  created: Float64Array = new Float64Array(0);
  mark: Uint32Array = new Uint32Array(0);
  helper: Uint8Array = new Uint8Array(0);
  masterHelper: Uint8Array = new Uint8Array(0);
  flags: Uint8Array = new Uint8Array(0);
  master: Int32Array = new Int32Array(0);
  masterGen: Uint32Array = new Uint32Array(0);
  /** incremented each time the row is freed: (id, gen) names one entry for good */
  gen: Uint32Array = new Uint32Array(0);
  next: Int32Array = new Int32Array(0);
  /** signed 32-bit hashes (HashKey.hashTuple) */
  nhash: Int32Array = new Int32Array(0);

  heads: Int32Array;
  nbuckets: number;

  /** allocated rows (confirmed + unconfirmed) */
  count = 0;
  /** rows in the hash (confirmed) */
  hashed = 0;
  private freeHead = -1;
  private hiwater = 0;

  /** called after the capacity grew (trackers, helpers, expectations resize their arrays) */
  onResize: (capacity: number) => void = () => {};

  constructor(nbuckets: number, limit: number) {
    this.nbuckets = Math.max(1, nbuckets | 0);
    this.heads = new Int32Array(this.nbuckets).fill(-1);
    this.limit = limit;
    this.grow(Math.max(1, limit > 0 ? Math.min(limit, INITIAL_CAPACITY) : INITIAL_CAPACITY));
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

  /** A free row, or -1 if the capacity cannot grow any more. */
  alloc(): number {
    let e = this.freeHead;
    if (e >= 0) {
      this.freeHead = this.next[2 * e];
    } else {
      if (this.hiwater === this.capacity) {
        let cap = this.capacity * 2;
        if (this.limit > 0 && cap > this.limit) cap = this.limit;
        if (cap <= this.capacity) return -1;
        this.grow(cap);
      }
      e = this.hiwater++;
    }
    this.flags[e] = F_ALLOC;
    this.next[2 * e] = -1;
    this.next[2 * e + 1] = -1;
    this.count++;
    return e;
  }

  /** Return a row (must not be hashed). */
  free(e: number): void {
    this.flags[e] = 0;
    this.gen[e] = (this.gen[e] + 1) >>> 0;
    this.status[e] = 0;
    this.next[2 * e] = this.freeHead;
    this.freeHead = e;
    this.count--;
  }

  /** Link both nodes of e; nhash[2e], nhash[2e+1] must be set. */
  insert(e: number): void {
    for (let d = 0; d < 2; d++) {
      const n = 2 * e + d;
      const b = scaleHash(this.nhash[n], this.nbuckets);
      this.next[n] = this.heads[b];
      this.heads[b] = n;
    }
    this.flags[e] |= F_HASHED;
    this.hashed++;
  }

  /** Unlink both nodes of e from their chains. */
  unlink(e: number): void {
    for (let d = 0; d < 2; d++) {
      const n = 2 * e + d;
      const b = scaleHash(this.nhash[n], this.nbuckets);
      let p = this.heads[b];
      if (p === n) {
        this.heads[b] = this.next[n];
      } else {
        while (p >= 0) {
          const q = this.next[p];
          if (q === n) {
            this.next[p] = this.next[n];
            break;
          }
          p = q;
        }
      }
      this.next[n] = -1;
    }
    this.flags[e] &= ~F_HASHED;
    this.hashed--;
  }

  /** Resize the bucket array and relink every hashed node (nf_conntrack_hash_resize). */
  rehash(nbuckets: number): void {
    nbuckets = Math.max(1, nbuckets | 0);
    const old = this.heads;
    const heads = new Int32Array(nbuckets).fill(-1);
    for (let b = 0; b < old.length; b++) {
      let n = old[b];
      while (n >= 0) {
        const nx = this.next[n];
        const nb = scaleHash(this.nhash[n], nbuckets);
        this.next[n] = heads[nb];
        heads[nb] = n;
        n = nx;
      }
    }
    this.heads = heads;
    this.nbuckets = nbuckets;
  }

  private grow(cap: number): void {
    const old = this.capacity;
    this.tuples = growU32(this.tuples, cap * TUPLE_WORDS);
    this.rports = growU32(this.rports, cap);
    this.status = growU32(this.status, cap);
    this.timeout = growF64(this.timeout, cap);
    this.created = growF64(this.created, cap);
    this.mark = growU32(this.mark, cap);
    this.helper = growU8(this.helper, cap);
    this.masterHelper = growU8(this.masterHelper, cap);
    this.flags = growU8(this.flags, cap);
    const master = new Int32Array(cap).fill(-1);
    master.set(this.master);
    this.master = master;
    this.masterGen = growU32(this.masterGen, cap);
    this.gen = growU32(this.gen, cap);
    const next = new Int32Array(cap * 2).fill(-1);
    next.set(this.next);
    this.next = next;
    const nhash = new Int32Array(cap * 2);
    nhash.set(this.nhash);
    this.nhash = nhash;
    this.capacity = cap;
    if (cap > old) this.onResize(cap);
  }
}

function growU32(a: Uint32Array, n: number): Uint32Array {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}
function growF64(a: Float64Array, n: number): Float64Array {
  const b = new Float64Array(n);
  b.set(a);
  return b;
}
function growU8(a: Uint8Array, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}
