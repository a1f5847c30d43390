/**
 * The address lists of -m recent (xt_recent.c recent_table / recent_entry), one registry
 * per thread (a worker thread of `run --queues` has its own). A list lives while a loaded
 * rule set names it: a reload keeps the lists its new rules still name (the kernel checks
 * the new rules before it frees the old ones), and drops the others.
 *
 * Per list at most IP_LIST_TOT addresses (the module parameter ip_list_tot), the least
 * recently updated one evicted for a new one; per address a ring of time stamps whose size
 * is the next power of two of the largest --hitcount (32 without one; ip_pkt_list_tot is 0).
 * Time stamps are jiffies at HZ = 1000 (whole milliseconds of the monotonic clock).
 * Nothing here allocates per packet.
 */
import { formatIp4, formatIp6Full, parseIp4, parseIp6 } from './addr';

export const IP_LIST_TOT = 100;
/** XT_RECENT_MAX_NSTAMPS of Linux 6.x: --hitcount at most 65535. */
export const XT_RECENT_MAX_NSTAMPS = 65536;
const HASH_SIZE = 1 << (32 - Math.clz32(IP_LIST_TOT)); // ip_list_hash_size = 1 << fls(ip_list_tot)

function roundupPow2(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

/** recent_mt_check: the stamp ring mask a rule with this --hitcount needs. */
export function nstampMaskFor(hitCount: number): number {
  return hitCount ? roundupPow2(hitCount) - 1 : 32 - 1;
}

export class RecentList {
  entries = 0;
  nstampsMask: number;
  /** the list's --mask (of the rule that created it), 4 words */
  readonly mask = new Uint32Array(4);
  /** the generation of the last rule set that named it */
  gen = 0;
  private readonly family = new Uint8Array(IP_LIST_TOT);
  private readonly addr = new Uint32Array(IP_LIST_TOT * 4);
  private readonly ttl = new Uint8Array(IP_LIST_TOT);
  private readonly index = new Int32Array(IP_LIST_TOT);
  private readonly nstamps = new Int32Array(IP_LIST_TOT);
  private stamps: Float64Array;
  private readonly lruPrev = new Int32Array(IP_LIST_TOT);
  private readonly lruNext = new Int32Array(IP_LIST_TOT);
  private lruHead = -1; // least recently updated
  private lruTail = -1;
  private readonly hashNext = new Int32Array(IP_LIST_TOT);
  private readonly buckets = new Int32Array(HASH_SIZE).fill(-1);
  private readonly bucketOf = new Int32Array(IP_LIST_TOT);
  private freeTop = IP_LIST_TOT;
  private readonly freeSlots = new Int32Array(IP_LIST_TOT);

  constructor(
    readonly name: string,
    nstampsMask: number,
    mask: ArrayLike<number>,
  ) {
    this.nstampsMask = nstampsMask;
    this.mask.set(mask);
    this.stamps = new Float64Array(IP_LIST_TOT * (nstampsMask + 1));
    for (let i = 0; i < IP_LIST_TOT; i++) this.freeSlots[i] = IP_LIST_TOT - 1 - i;
  }

  /** A rule set needs rings of this mask: a larger one flushes the list (recent_mt_check). */
  raiseStamps(nstampsMask: number): void {
    if (nstampsMask <= this.nstampsMask) return;
    this.flush();
    this.nstampsMask = nstampsMask;
    this.stamps = new Float64Array(IP_LIST_TOT * (nstampsMask + 1));
  }

  private hash(family: number, a: ArrayLike<number>): number {
    let h =
      family === 4
        ? Math.imul(a[0] | 0, 0x9e3779b1)
        : Math.imul((a[0] ^ Math.imul(a[1] | 0, 0x85ebca6b) ^ Math.imul(a[2] | 0, 0xc2b2ae35) ^ Math.imul(a[3] | 0, 0x27d4eb2f)) | 0, 0x9e3779b1);
    h ^= h >>> 15;
    return h & (HASH_SIZE - 1);
  }

  /** recent_entry_lookup: the slot of (family, address) whose TTL fits (0 = any), or -1. */
  lookup(family: number, a: ArrayLike<number>, ttl: number): number {
    const n = family === 4 ? 1 : 4;
    for (let e = this.buckets[this.hash(family, a)]; e >= 0; e = this.hashNext[e]) {
      if (this.family[e] !== family) continue;
      let same = true;
      for (let i = 0; i < n; i++) if (this.addr[e * 4 + i] !== a[i] >>> 0) same = false;
      if (same && (ttl === this.ttl[e] || ttl === 0 || this.ttl[e] === 0)) return e;
    }
    return -1;
  }

  private lruUnlink(e: number): void {
    const p = this.lruPrev[e];
    const q = this.lruNext[e];
    if (p >= 0) this.lruNext[p] = q;
    else this.lruHead = q;
    if (q >= 0) this.lruPrev[q] = p;
    else this.lruTail = p;
  }

  private lruAppend(e: number): void {
    this.lruPrev[e] = this.lruTail;
    this.lruNext[e] = -1;
    if (this.lruTail >= 0) this.lruNext[this.lruTail] = e;
    else this.lruHead = e;
    this.lruTail = e;
  }

  /** recent_entry_remove */
  remove(e: number): void {
    const b = this.bucketOf[e];
    if (this.buckets[b] === e) this.buckets[b] = this.hashNext[e];
    else {
      let p = this.buckets[b];
      while (this.hashNext[p] !== e) p = this.hashNext[p];
      this.hashNext[p] = this.hashNext[e];
    }
    this.lruUnlink(e);
    this.freeSlots[this.freeTop++] = e;
    this.entries--;
  }

  /** recent_entry_init: a new address with one stamp; evicts the least recently updated when full. */
  init(family: number, a: ArrayLike<number>, ttl: number, jiffies: number): number {
    if (this.entries >= IP_LIST_TOT) this.remove(this.lruHead);
    const e = this.freeSlots[--this.freeTop];
    this.family[e] = family;
    for (let i = 0; i < 4; i++) this.addr[e * 4 + i] = family === 4 && i > 0 ? 0 : a[i];
    this.ttl[e] = ttl;
    this.stamps[e * (this.nstampsMask + 1)] = jiffies;
    this.nstamps[e] = 1;
    this.index[e] = 1;
    const b = this.hash(family, a);
    this.bucketOf[e] = b;
    this.hashNext[e] = this.buckets[b];
    this.buckets[b] = e;
    this.lruAppend(e);
    this.entries++;
    return e;
  }

  /** recent_entry_update: one more stamp, and the address becomes the most recently updated. */
  update(e: number, jiffies: number): void {
    const idx = this.index[e] & this.nstampsMask;
    this.stamps[e * (this.nstampsMask + 1) + idx] = jiffies;
    this.index[e] = idx + 1;
    if (idx + 1 > this.nstamps[e]) this.nstamps[e] = idx + 1;
    this.lruUnlink(e);
    this.lruAppend(e);
  }

  setTtl(e: number, ttl: number): void {
    this.ttl[e] = ttl;
  }

  /** How many of e's stamps are not older than `since` (-Infinity: all), stopping at `enough`. */
  hits(e: number, since: number, enough: number): number {
    const base = e * (this.nstampsMask + 1);
    let hits = 0;
    for (let i = 0; i < this.nstamps[e]; i++) {
      if (this.stamps[base + i] < since) continue;
      if (++hits >= enough) break;
    }
    return hits;
  }

  /** recent_entry_reap: the least recently updated address goes when its last stamp is older than `since`. Returns the slot removed or -1. */
  reap(since: number): number {
    const e = this.lruHead;
    if (e < 0) return -1;
    const last = this.stamps[e * (this.nstampsMask + 1) + ((this.index[e] - 1) & this.nstampsMask)];
    if (last >= since) return -1;
    this.remove(e);
    return e;
  }

  flush(): void {
    while (this.lruHead >= 0) this.remove(this.lruHead);
  }

  /** The /proc/net/xt_recent/NAME lines (least recently updated first). */
  lines(): string[] {
    const out: string[] = [];
    for (let e = this.lruHead; e >= 0; e = this.lruNext[e]) {
      const base = e * (this.nstampsMask + 1);
      const a = this.addr.subarray(e * 4, e * 4 + 4);
      const addr = this.family[e] === 4 ? formatIp4(a[0]) : formatIp6Full(a);
      let s = `src=${addr} ttl: ${this.ttl[e]} last_seen: ${this.stamps[base + ((this.index[e] - 1) & this.nstampsMask)]} oldest_pkt: ${this.index[e]}`;
      for (let i = 0; i < this.nstamps[e]; i++) s += `${i ? ',' : ''} ${this.stamps[base + i]}`;
      out.push(s);
    }
    return out;
  }

  /**
   * A write to /proc/net/xt_recent/NAME (recent_mt_proc_write): "/" flushes, "+ADDR" adds
   * or updates, "-ADDR" removes. The list's --mask is not applied, as in the kernel.
   * Returns an error message or null.
   */
  write(cmd: string, jiffies: number): string | null {
    const c = cmd.replace(/\n$/, '');
    if (c.startsWith('/')) {
      this.flush();
      return null;
    }
    if (c[0] !== '+' && c[0] !== '-') return 'need "+ADDR", "-ADDR" or "/"';
    const text = c.slice(1);
    let family: number;
    let a: number[];
    if (text.includes(':')) {
      const w = parseIp6(text);
      if (!w) return `illegal address "${text}"`;
      family = 6;
      a = w;
    } else {
      const v = parseIp4(text);
      if (v < 0) return `illegal address "${text}"`;
      family = 4;
      a = [v, 0, 0, 0];
    }
    const e = this.lookup(family, a, 0);
    if (c[0] === '+') {
      if (e < 0) this.init(family, a, 0, jiffies);
      else this.update(e, jiffies);
    } else if (e >= 0) this.remove(e);
    return null;
  }
}

/** This thread's lists by name. */
const lists = new Map<string, RecentList>();
let generation = 0;

/** The list NAME for a rule being compiled: created with the rule's --mask, or the existing one (its own mask kept). */
export function acquireRecentList(name: string, nstampsMask: number, mask: ArrayLike<number>): RecentList {
  let l = lists.get(name);
  if (!l) {
    l = new RecentList(name, nstampsMask, mask);
    lists.set(name, l);
  } else l.raiseStamps(nstampsMask);
  l.gen = generation + 1;
  return l;
}

/** A rule set was compiled and is going into service: the lists it does not name are freed. */
export function commitRecentLists(): void {
  generation++;
  for (const [name, l] of lists) if (l.gen !== generation) lists.delete(name);
}

export function recentList(name: string): RecentList | undefined {
  return lists.get(name);
}

export function recentListNames(): string[] {
  return [...lists.keys()];
}

/**
 * The control request `recent` (`nfqwall recent [NAME [+ADDR|-ADDR|/]]`): without a name the
 * list names, with one its lines, with a write the change. Throws on an unknown list or a bad write.
 */
export function recentControl(name: unknown, write: unknown, jiffies: number): { names?: string[]; lines?: string[] } {
  if (name === undefined || name === null) return { names: recentListNames() };
  if (typeof name !== 'string') throw new Error('name must be a string');
  const l = lists.get(name);
  if (!l) throw new Error(`no recent list "${name}" (the loaded rules name: ${recentListNames().join(', ') || 'none'})`);
  if (write === undefined || write === null) return { lines: l.lines() };
  if (typeof write !== 'string') throw new Error('write must be a string');
  const err = l.write(write, jiffies);
  if (err) throw new Error(err);
  return {};
}
