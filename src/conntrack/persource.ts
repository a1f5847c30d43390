/**
 * Number of tracked entries per source address (IPv6: per /64), for
 * nfqwall.per_source_max. Open addressing with linear probing in typed arrays,
 * keyed hash (flood resistant), backward-shift deletion; touched only when an
 * entry is created or destroyed, never for packets of existing entries.
 */
import { halfSipHash24i } from './hash';

const EMPTY = 0;
/** old slots moved per inc()/dec() while growing (at least 2 keep ahead of the new table's load) */
const MIGRATE_STEP = 8;

export class SourceCounter {
  private cap = 0; // slots, power of two
  private keys = new Uint32Array(0); // 3 words per slot: family, a, b
  private counts = new Int32Array(0); // 0 = free slot
  private used = 0;
  /**
   * While growing: the previous table, moved into the new one a few slots per inc()/dec()
   * (no stall rehashing every source at once). Slots below `cursor` are empty; a source is
   * in exactly one of the two tables.
   */
  private oldCap = 0;
  private oldKeys = new Uint32Array(0);
  private oldCounts = new Int32Array(0);
  private oldUsed = 0;
  private cursor = 0;
  private readonly scratch = new Uint32Array(3);

  constructor(
    private readonly k0: number,
    private readonly k1: number,
    initial = 256,
  ) {
    this.alloc(initial);
  }

  /** Distinct sources currently counted. */
  get size(): number {
    return this.used + this.oldUsed;
  }

  private alloc(cap: number): void {
    this.cap = cap;
    this.keys = new Uint32Array(cap * 3);
    this.counts = new Int32Array(cap);
    this.used = 0;
  }

  private key(family: number, addr: Uint32Array, off: number): void {
    const s = this.scratch;
    s[0] = family;
    s[1] = addr[off];
    s[2] = family === 6 ? addr[off + 1] : 0; // IPv6: the /64 prefix (words 0 and 1)
  }

  /** The slot of the scratch key in a table: its own, or the free slot that ends its probe. */
  private slotIn(keys: Uint32Array, counts: Int32Array, cap: number): number {
    const s = this.scratch;
    const mask = cap - 1;
    let i = halfSipHash24i(this.k0, this.k1, s, 0, 3) & mask;
    for (;;) {
      if (counts[i] === EMPTY) return i;
      const k = i * 3;
      if (keys[k] === s[0] && keys[k + 1] === s[1] && keys[k + 2] === s[2]) return i;
      i = (i + 1) & mask;
    }
  }

  private slotOf(): number {
    return this.slotIn(this.keys, this.counts, this.cap);
  }

  /** Current count for a source address (addr words at off). */
  get(family: number, addr: Uint32Array, off: number): number {
    this.key(family, addr, off);
    const c = this.counts[this.slotOf()];
    if (c !== EMPTY || this.oldCap === 0) return c;
    return this.oldCounts[this.slotIn(this.oldKeys, this.oldCounts, this.oldCap)];
  }

  inc(family: number, addr: Uint32Array, off: number): number {
    this.migrate(MIGRATE_STEP);
    if ((this.size + 1) * 2 > this.cap) this.grow();
    this.key(family, addr, off);
    let moved = EMPTY;
    if (this.oldCap !== 0) {
      const o = this.slotIn(this.oldKeys, this.oldCounts, this.oldCap);
      moved = this.oldCounts[o];
      if (moved !== EMPTY) {
        this.removeAt(this.oldKeys, this.oldCounts, this.oldCap, o);
        this.oldUsed--;
        this.key(family, addr, off); // removeAt used the scratch
      }
    }
    const i = this.slotOf();
    if (this.counts[i] === EMPTY) {
      const k = i * 3;
      this.keys[k] = this.scratch[0];
      this.keys[k + 1] = this.scratch[1];
      this.keys[k + 2] = this.scratch[2];
      this.counts[i] = moved;
      this.used++;
    }
    return ++this.counts[i];
  }

  dec(family: number, addr: Uint32Array, off: number): void {
    this.migrate(MIGRATE_STEP);
    this.key(family, addr, off);
    const i = this.slotOf();
    if (this.counts[i] !== EMPTY) {
      if (--this.counts[i] > 0) return;
      this.used--;
      this.removeAt(this.keys, this.counts, this.cap, i);
      return;
    }
    if (this.oldCap === 0) return;
    const o = this.slotIn(this.oldKeys, this.oldCounts, this.oldCap);
    if (this.oldCounts[o] === EMPTY) return;
    if (--this.oldCounts[o] > 0) return;
    this.oldUsed--;
    this.removeAt(this.oldKeys, this.oldCounts, this.oldCap, o);
  }

  /**
   * Empties slot i (count already 0 or being moved): backward-shift deletion keeps probe
   * chains intact without tombstones. Uses the scratch.
   */
  private removeAt(keys: Uint32Array, counts: Int32Array, cap: number, i: number): void {
    counts[i] = EMPTY;
    const mask = cap - 1;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (counts[j] === EMPTY) break;
      const kj = j * 3;
      this.scratch[0] = keys[kj];
      this.scratch[1] = keys[kj + 1];
      this.scratch[2] = keys[kj + 2];
      const home = halfSipHash24i(this.k0, this.k1, this.scratch, 0, 3) & mask;
      // move j into the hole at i if its home is not cyclically in (i, j]
      const inRange = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!inRange) {
        const ki = i * 3;
        keys[ki] = keys[kj];
        keys[ki + 1] = keys[kj + 1];
        keys[ki + 2] = keys[kj + 2];
        counts[i] = counts[j];
        counts[j] = EMPTY;
        i = j;
      }
    }
  }

  clear(): void {
    this.dropOld();
    this.alloc(256);
  }

  /** Finish a pending growth now (tests, the checker). */
  settle(): void {
    this.migrate(Infinity);
  }

  private dropOld(): void {
    this.oldCap = 0;
    this.oldKeys = new Uint32Array(0);
    this.oldCounts = new Int32Array(0);
    this.oldUsed = 0;
    this.cursor = 0;
  }

  /** Move up to `steps` slots of the old table into the new one. */
  private migrate(steps: number): void {
    if (this.oldCap === 0) return;
    const ok = this.oldKeys;
    const oc = this.oldCounts;
    for (let n = 0; n < steps; n++) {
      const i = this.cursor;
      if (i >= this.oldCap) {
        this.dropOld();
        return;
      }
      const c = oc[i];
      if (c === EMPTY) {
        this.cursor++;
        continue;
      }
      const k = i * 3;
      this.scratch[0] = ok[k];
      this.scratch[1] = ok[k + 1];
      this.scratch[2] = ok[k + 2];
      const j = this.slotOf();
      this.keys[j * 3] = ok[k];
      this.keys[j * 3 + 1] = ok[k + 1];
      this.keys[j * 3 + 2] = ok[k + 2];
      this.counts[j] = c;
      this.used++;
      this.oldUsed--;
      // may shift a later entry into slot i: look at i again
      this.removeAt(ok, oc, this.oldCap, i);
    }
  }

  /** Double the slots; the current table becomes the old one, moved over incrementally. */
  private grow(): void {
    this.settle(); // a growth still pending (cannot happen at MIGRATE_STEP >= 2) completes first
    this.oldCap = this.cap;
    this.oldKeys = this.keys;
    this.oldCounts = this.counts;
    this.oldUsed = this.used;
    this.cursor = 0;
    this.alloc(this.cap * 2);
  }
}
