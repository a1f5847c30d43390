/**
 * Number of tracked entries per source address (IPv6: per /64), for
 * nfqwall.per_source_max. Open addressing with linear probing in typed arrays,
 * keyed hash (flood resistant), backward-shift deletion; touched only when an
 * entry is created or destroyed, never for packets of existing entries.
 */
import { halfSipHash24i } from './hash';

const EMPTY = 0;

export class SourceCounter {
  private cap = 0; // slots, power of two
  private keys = new Uint32Array(0); // 3 words per slot: family, a, b
  private counts = new Int32Array(0); // 0 = free slot
  private used = 0;
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
    return this.used;
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

  private slotOf(): number {
    const s = this.scratch;
    const mask = this.cap - 1;
    let i = halfSipHash24i(this.k0, this.k1, s, 0, 3) & mask;
    for (;;) {
      if (this.counts[i] === EMPTY) return i;
      const k = i * 3;
      if (this.keys[k] === s[0] && this.keys[k + 1] === s[1] && this.keys[k + 2] === s[2]) return i;
      i = (i + 1) & mask;
    }
  }

  /** Current count for a source address (addr words at off). */
  get(family: number, addr: Uint32Array, off: number): number {
    this.key(family, addr, off);
    return this.counts[this.slotOf()];
  }

  inc(family: number, addr: Uint32Array, off: number): number {
    if ((this.used + 1) * 2 > this.cap) this.grow();
    this.key(family, addr, off);
    const i = this.slotOf();
    if (this.counts[i] === EMPTY) {
      const k = i * 3;
      this.keys[k] = this.scratch[0];
      this.keys[k + 1] = this.scratch[1];
      this.keys[k + 2] = this.scratch[2];
      this.used++;
    }
    return ++this.counts[i];
  }

  dec(family: number, addr: Uint32Array, off: number): void {
    this.key(family, addr, off);
    let i = this.slotOf();
    if (this.counts[i] === EMPTY) return;
    if (--this.counts[i] > 0) return;
    // backward-shift deletion keeps probe chains intact without tombstones
    this.used--;
    const mask = this.cap - 1;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (this.counts[j] === EMPTY) break;
      const kj = j * 3;
      this.scratch[0] = this.keys[kj];
      this.scratch[1] = this.keys[kj + 1];
      this.scratch[2] = this.keys[kj + 2];
      const home = halfSipHash24i(this.k0, this.k1, this.scratch, 0, 3) & mask;
      // move j into the hole at i if its home is not cyclically in (i, j]
      const inRange = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!inRange) {
        const ki = i * 3;
        this.keys[ki] = this.keys[kj];
        this.keys[ki + 1] = this.keys[kj + 1];
        this.keys[ki + 2] = this.keys[kj + 2];
        this.counts[i] = this.counts[j];
        this.counts[j] = EMPTY;
        i = j;
      }
    }
  }

  clear(): void {
    this.alloc(256);
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldCounts = this.counts;
    const oldCap = this.cap;
    this.alloc(oldCap * 2);
    for (let i = 0; i < oldCap; i++) {
      const c = oldCounts[i];
      if (c === EMPTY) continue;
      const k = i * 3;
      this.scratch[0] = oldKeys[k];
      this.scratch[1] = oldKeys[k + 1];
      this.scratch[2] = oldKeys[k + 2];
      const j = this.slotOf();
      this.keys[j * 3] = oldKeys[k];
      this.keys[j * 3 + 1] = oldKeys[k + 1];
      this.keys[j * 3 + 2] = oldKeys[k + 2];
      this.counts[j] = c;
      this.used++;
    }
  }
}
