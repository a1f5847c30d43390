/**
 * Restored entries waiting for their worker thread (`run --queues A:B --state FILE`).
 *
 * The kernel picks a flow's queue with jhash over its addresses and a random seed drawn at
 * boot (xt_NFQUEUE's jhash_initval, see src/daemon/nfqueue-hash.ts), so nfqwall cannot know
 * in advance which worker will see a restored connection. The restored entries therefore
 * wait in this store, in SharedArrayBuffers every worker reads: a worker whose lookup misses
 * (a flow it has no entry for) looks the tuple up here (either direction) and, if it wins the
 * compare-and-swap on the entry's claim word, imports it into its own table. Each entry ends
 * up in exactly one table: the one of the queue the kernel sends that flow to. Entries nobody
 * claims run out at their timeout; the main thread lists, counts, deletes and saves them
 * meanwhile, so `conntrack -L` and the state file still show them.
 */
import { TUPLE_WORDS, T_DST, T_META, T_PORTS, T_SRC } from '../conntrack/layout';

const H_UNCLAIMED = 0;
const H_COUNT = 1;
/** claim word: 0 open, >0 claimed by worker (n-1), -1 gone (deleted, expired) */
const GONE = -1;

export interface RestoreStoreBuffers {
  hdr: SharedArrayBuffer;
  tuples: SharedArrayBuffer;
  rports: SharedArrayBuffer;
  index: SharedArrayBuffer;
  claims: SharedArrayBuffer;
  expiry: SharedArrayBuffer;
  offsets: SharedArrayBuffer;
  payload: SharedArrayBuffer;
}

export interface RestoreRecord {
  /** ORIG tuple (tuple.ts layout) and the REPLY ports word */
  tuple: ArrayLike<number>;
  rports: number;
  /** wall-clock ms when the entry runs out */
  expiresAt: number;
  /** what the claiming worker imports (JSON) */
  payload: string;
}

function hashWords(t: ArrayLike<number>, o: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < TUPLE_WORDS; i++) {
    h = Math.imul(h ^ t[o + i], 0x01000193);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

export class RestoreStore {
  readonly n: number;
  private readonly hdr: Int32Array;
  private readonly tuples: Uint32Array;
  private readonly rports: Uint32Array;
  private readonly index: Int32Array;
  private readonly mask: number;
  private readonly claims: Int32Array;
  private readonly expiry: Float64Array;
  private readonly offsets: Uint32Array;
  private readonly payloadBytes: Uint8Array;
  private readonly scratch = new Uint32Array(TUPLE_WORDS);

  private constructor(readonly buffers: RestoreStoreBuffers) {
    this.hdr = new Int32Array(buffers.hdr);
    this.tuples = new Uint32Array(buffers.tuples);
    this.rports = new Uint32Array(buffers.rports);
    this.index = new Int32Array(buffers.index);
    this.mask = this.index.length - 1;
    this.claims = new Int32Array(buffers.claims);
    this.expiry = new Float64Array(buffers.expiry);
    this.offsets = new Uint32Array(buffers.offsets);
    this.payloadBytes = new Uint8Array(buffers.payload);
    this.n = this.hdr[H_COUNT];
  }

  static attach(b: RestoreStoreBuffers): RestoreStore {
    return new RestoreStore(b);
  }

  static build(records: readonly RestoreRecord[]): RestoreStore {
    const n = records.length;
    let size = 16;
    while (size < 4 * n) size *= 2;
    const enc = records.map((r) => Buffer.from(r.payload, 'utf8'));
    const total = enc.reduce((a, b) => a + b.length, 0);
    const sab = (bytes: number) => new SharedArrayBuffer(Math.max(8, bytes));
    const b: RestoreStoreBuffers = {
      hdr: sab(8),
      tuples: sab(4 * n * TUPLE_WORDS),
      rports: sab(4 * n),
      index: sab(4 * size),
      claims: sab(4 * n),
      expiry: sab(8 * n),
      offsets: sab(4 * (n + 1)),
      payload: sab(total),
    };
    new Int32Array(b.hdr)[H_COUNT] = n;
    const s = new RestoreStore(b);
    s.index.fill(-1);
    let off = 0;
    for (let i = 0; i < n; i++) {
      const r = records[i];
      for (let w = 0; w < TUPLE_WORDS; w++) s.tuples[i * TUPLE_WORDS + w] = r.tuple[w] >>> 0;
      s.rports[i] = r.rports >>> 0;
      s.expiry[i] = r.expiresAt;
      s.offsets[i] = off;
      s.payloadBytes.set(enc[i], off);
      off += enc[i].length;
      for (let dir = 0; dir < 2; dir++) s.link(i, dir);
    }
    s.offsets[n] = off;
    s.hdr[H_UNCLAIMED] = n;
    return s;
  }

  /** the tuple of record i in direction dir, into this.scratch */
  private tupleOf(i: number, dir: number): Uint32Array {
    const t = this.scratch;
    const b = i * TUPLE_WORDS;
    t[T_META] = this.tuples[b + T_META];
    for (let w = 0; w < 4; w++) {
      t[T_SRC + w] = this.tuples[b + (dir === 0 ? T_SRC : T_DST) + w];
      t[T_DST + w] = this.tuples[b + (dir === 0 ? T_DST : T_SRC) + w];
    }
    t[T_PORTS] = dir === 0 ? this.tuples[b + T_PORTS] : this.rports[i];
    return t;
  }

  private link(i: number, dir: number): void {
    let slot = hashWords(this.tupleOf(i, dir), 0) & this.mask;
    while (this.index[slot] >= 0) slot = (slot + 1) & this.mask;
    this.index[slot] = 2 * i + dir;
  }

  /** Entries neither claimed nor gone (a fast check before any lookup). */
  unclaimed(): number {
    return Atomics.load(this.hdr, H_UNCLAIMED);
  }

  /** The record whose ORIG or REPLY tuple equals key (tuple.ts layout), or -1. */
  find(key: Uint32Array): number {
    let slot = hashWords(key, 0) & this.mask;
    for (;;) {
      const node = this.index[slot];
      if (node < 0) return -1;
      const t = this.tupleOf(node >> 1, node & 1);
      let eq = true;
      for (let w = 0; w < TUPLE_WORDS && eq; w++) eq = t[w] === key[w];
      if (eq) return node >> 1;
      slot = (slot + 1) & this.mask;
    }
  }

  isOpen(i: number): boolean {
    return Atomics.load(this.claims, i) === 0;
  }

  expiresAt(i: number): number {
    return this.expiry[i];
  }

  /** Takes record i for worker `who` (0-based); false when someone else took it or it is gone. */
  claim(i: number, who: number): boolean {
    if (Atomics.compareExchange(this.claims, i, 0, who + 1) !== 0) return false;
    Atomics.sub(this.hdr, H_UNCLAIMED, 1);
    return true;
  }

  /** Marks an open record gone (deleted, expired); false when it was not open any more. */
  retire(i: number): boolean {
    if (Atomics.compareExchange(this.claims, i, 0, GONE) !== 0) return false;
    Atomics.sub(this.hdr, H_UNCLAIMED, 1);
    return true;
  }

  payload(i: number): string {
    const a = this.offsets[i];
    const b = this.offsets[i + 1];
    const copy = this.payloadBytes.slice(a, b);
    return Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength).toString('utf8');
  }
}
