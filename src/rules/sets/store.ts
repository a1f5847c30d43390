/**
 * The element store of one ipset, in SharedArrayBuffers so that every thread of the daemon
 * (the main thread and each worker of `run --queues`) reads and changes the same set: a
 * chained hash of fixed-width int32 keys, sized once for the set's maxelem, with the
 * extensions the kernel keeps per element (ip_set_ext: timeout, counters, comment) and the
 * nomatch flag. Every operation runs under the set's spin lock (Atomics on the header), as
 * the kernel's set->lock / RCU readers; the per-packet ones (find + counter update) allocate
 * nothing. Expiries are on the shared clock of src/rules/sets/clock.ts (milliseconds, Infinity =
 * permanent: IPSET_ELEM_PERMANENT); the methods take the thread's `now`.
 */
import { CLOCK_BASE } from './clock';

/** header words */
const H_LOCK = 0;
const H_COUNT = 1;
const H_FREE = 2; // free list head (entry + 1), 0 = none
const H_USED = 3; // entries ever handed out (the high-water mark)
const H_SEED = 4;
/** a count of elements per prefix length (0..128) for the set's net dimension */
const H_CIDR = 8;
const HEADER_WORDS = H_CIDR + 129;

/** per-entry int32 words before the key */
const E_NEXT = 0; // next in bucket (entry + 1), 0 = end; in the free list: next free
const E_FLAGS = 1;
const E_KEY = 2;
export const F_USED = 1;
export const F_NOMATCH = 2;
/** per-entry float64 words */
const X_EXPIRES = 0;
const X_PACKETS = 1;
const X_BYTES = 2;
const X_WORDS = 3;

/** ipset's comment: at most 255 bytes (IPSET_MAX_COMMENT_SIZE) */
export const MAX_COMMENT = 255;
const COMMENT_BYTES = 256;

export interface StoreBuffers {
  header: SharedArrayBuffer;
  buckets: SharedArrayBuffer;
  words: SharedArrayBuffer;
  ext: SharedArrayBuffer;
  comments: SharedArrayBuffer | null;
  keyWords: number;
  capacity: number;
}

export class SetStore {
  private readonly h: Int32Array;
  private readonly buckets: Int32Array;
  private readonly w: Int32Array;
  private readonly x: Float64Array;
  private readonly c: Uint8Array | null;
  readonly keyWords: number;
  readonly capacity: number;
  private readonly stride: number;
  private readonly mask: number;

  constructor(readonly buffers: StoreBuffers) {
    this.h = new Int32Array(buffers.header);
    this.buckets = new Int32Array(buffers.buckets);
    this.w = new Int32Array(buffers.words);
    this.x = new Float64Array(buffers.ext);
    this.c = buffers.comments ? new Uint8Array(buffers.comments) : null;
    this.keyWords = buffers.keyWords;
    this.capacity = buffers.capacity;
    this.stride = E_KEY + buffers.keyWords;
    this.mask = this.buckets.length - 1;
  }

  /** A new, empty store for `capacity` elements of `keyWords` words (with room for comments or not). */
  static create(keyWords: number, capacity: number, comments: boolean): SetStore {
    let nb = 1;
    while (nb < capacity / 2 && nb < 1 << 24) nb <<= 1;
    const s = new SetStore({
      header: new SharedArrayBuffer(HEADER_WORDS * 4),
      buckets: new SharedArrayBuffer(nb * 4),
      words: new SharedArrayBuffer(capacity * (E_KEY + keyWords) * 4),
      ext: new SharedArrayBuffer(capacity * X_WORDS * 8),
      comments: comments ? new SharedArrayBuffer(capacity * COMMENT_BYTES) : null,
      keyWords,
      capacity,
    });
    s.h[H_SEED] = (Math.random() * 0x100000000) | 0;
    return s;
  }

  lock(): void {
    const h = this.h;
    for (let spins = 0; Atomics.compareExchange(h, H_LOCK, 0, 1) !== 0; spins++) {
      // a thread holding the lock may have been preempted: sleep a little instead of spinning on
      if (spins > 200) Atomics.wait(h, H_LOCK, 1, 1);
    }
  }

  unlock(): void {
    Atomics.store(this.h, H_LOCK, 0);
    Atomics.notify(this.h, H_LOCK, 1);
  }

  get count(): number {
    return this.h[H_COUNT];
  }

  private hash(key: Int32Array): number {
    let h = this.h[H_SEED];
    for (let i = 0; i < this.keyWords; i++) {
      h = Math.imul(h ^ key[i], 0x9e3779b1);
      h ^= h >>> 15;
    }
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return h & this.mask;
  }

  /** The entry holding exactly this key (expired or not), or -1. Under the lock. */
  find(key: Int32Array): number {
    const w = this.w;
    const kw = this.keyWords;
    for (let e1 = this.buckets[this.hash(key)]; e1 !== 0; e1 = w[(e1 - 1) * this.stride + E_NEXT]) {
      const base = (e1 - 1) * this.stride + E_KEY;
      let i = 0;
      while (i < kw && w[base + i] === key[i]) i++;
      if (i === kw) return e1 - 1;
    }
    return -1;
  }

  /** ip_set_timeout_expired: the expiry is past (not reached) */
  expired(e: number, now: number): boolean {
    return this.x[e * X_WORDS + X_EXPIRES] < now + CLOCK_BASE[0];
  }

  nomatch(e: number): boolean {
    return (this.w[e * this.stride + E_FLAGS] & F_NOMATCH) !== 0;
  }

  /** ip_set_timeout_get: the seconds entry e has left, 0 = permanent (listings) */
  timeLeft(e: number, now: number): number {
    const x = this.x[e * X_WORDS + X_EXPIRES];
    if (x === Infinity) return 0;
    const t = Math.floor((x - now - CLOCK_BASE[0]) / 1000);
    return t <= 0 ? 1 : t;
  }

  packets(e: number): number {
    return this.x[e * X_WORDS + X_PACKETS];
  }

  bytes(e: number): number {
    return this.x[e * X_WORDS + X_BYTES];
  }

  count1(e: number, bytes: number): void {
    const b = e * X_WORDS;
    this.x[b + X_PACKETS] += 1;
    this.x[b + X_BYTES] += bytes;
  }

  /** A new entry for key (the caller checked there is none and that the set is not full). */
  insert(key: Int32Array, cidr: number): number {
    const h = this.h;
    let e: number;
    if (h[H_FREE] !== 0) {
      e = h[H_FREE] - 1;
      h[H_FREE] = this.w[e * this.stride + E_NEXT];
    } else e = h[H_USED]++;
    const base = e * this.stride;
    for (let i = 0; i < this.keyWords; i++) this.w[base + E_KEY + i] = key[i];
    this.w[base + E_FLAGS] = F_USED;
    const b = this.hash(key);
    this.w[base + E_NEXT] = this.buckets[b];
    this.buckets[b] = e + 1;
    h[H_COUNT]++;
    if (cidr >= 0) h[H_CIDR + cidr]++;
    this.x[e * X_WORDS + X_PACKETS] = 0;
    this.x[e * X_WORDS + X_BYTES] = 0;
    this.x[e * X_WORDS + X_EXPIRES] = Infinity;
    if (this.c) this.c[e * COMMENT_BYTES] = 0;
    return e;
  }

  /** The extensions of an entry as an add writes them (ip_set's overwrite_extensions); timeout in seconds, 0 = permanent. */
  setExt(e: number, nomatch: boolean, timeout: number, now: number, packets: number, bytes: number, comment: Uint8Array | null): void {
    const base = e * this.stride;
    this.w[base + E_FLAGS] = F_USED | (nomatch ? F_NOMATCH : 0);
    const b = e * X_WORDS;
    if (packets >= 0) this.x[b + X_PACKETS] = packets;
    if (bytes >= 0) this.x[b + X_BYTES] = bytes;
    // two stores, not one of a ?: whose Infinity arm made V8 box the sum (a heap number per add)
    if (timeout === 0) this.x[b + X_EXPIRES] = Infinity;
    else this.x[b + X_EXPIRES] = now + CLOCK_BASE[0] + timeout * 1000;
    if (this.c) {
      const o = e * COMMENT_BYTES;
      const n = comment ? Math.min(comment.length, MAX_COMMENT) : 0;
      this.c[o] = n;
      if (comment) this.c.set(comment.subarray(0, n), o + 1);
    }
  }

  comment(e: number): Uint8Array | null {
    if (!this.c) return null;
    const o = e * COMMENT_BYTES;
    const n = this.c[o];
    return n ? this.c.slice(o + 1, o + 1 + n) : null;
  }

  remove(e: number, cidr: number): void {
    const base = e * this.stride;
    const b = this.hash(this.w.subarray(base + E_KEY, base + E_KEY + this.keyWords));
    let p = this.buckets[b];
    if (p === e + 1) this.buckets[b] = this.w[base + E_NEXT];
    else {
      while (this.w[(p - 1) * this.stride + E_NEXT] !== e + 1) p = this.w[(p - 1) * this.stride + E_NEXT];
      this.w[(p - 1) * this.stride + E_NEXT] = this.w[base + E_NEXT];
    }
    this.w[base + E_FLAGS] = 0;
    this.w[base + E_NEXT] = this.h[H_FREE];
    this.h[H_FREE] = e + 1;
    this.h[H_COUNT]--;
    if (cidr >= 0) this.h[H_CIDR + cidr]--;
  }

  /** How many elements have this prefix length in the net dimension. */
  cidrCount(cidr: number): number {
    return this.h[H_CIDR + cidr];
  }

  keyWord(e: number, i: number): number {
    return this.w[e * this.stride + E_KEY + i];
  }

  /** The key words of entry e (a copy). */
  key(e: number): Int32Array {
    const base = e * this.stride + E_KEY;
    return this.w.slice(base, base + this.keyWords);
  }

  /** The entries in use, in the order they were handed out (for listings; under the lock). */
  entries(): number[] {
    const out: number[] = [];
    const used = this.h[H_USED];
    for (let e = 0; e < used; e++) if (this.w[e * this.stride + E_FLAGS] & F_USED) out.push(e);
    return out;
  }

  /** Forgets every element (ipset flush). Under the lock. */
  clear(): void {
    this.buckets.fill(0);
    const used = this.h[H_USED];
    for (let e = 0; e < used; e++) this.w[e * this.stride + E_FLAGS] = 0;
    this.h.fill(0, H_COUNT, H_SEED);
    this.h.fill(0, H_CIDR, HEADER_WORDS);
  }
}
