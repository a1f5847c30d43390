/**
 * The main thread's side of restored entries no worker has claimed yet (restore-store.ts):
 * they stay in a private table here so that `conntrack -L/-D/-F/-C`, the metrics and the
 * state file still see them, and they count against nf_conntrack_max until a worker takes
 * them over or they run out.
 */
import { performance } from 'node:perf_hooks';
import type { Conntrack } from '../conntrack/core';
import { formatExpect } from '../conntrack/format';
import { RestoreStore, type RestoreRecord } from './restore-store';
import { exportExpectations, type ExpectationData } from './state';
import type { RestorePayload } from './worker';

export class ParkedEntries {
  readonly store: RestoreStore;
  /** wall clock when the store was built (payload timeouts are relative to it) */
  readonly builtAt: number;
  /** record index → entry id in ct */
  private readonly ids: number[];
  private readonly byEntry = new Map<number, number>();

  /** Takes every entry of ct (a table restoreState filled); adds them to the shared count. */
  constructor(
    readonly ct: Conntrack,
    private readonly shared: Int32Array,
  ) {
    const now = performance.now();
    this.builtAt = Date.now();
    const exps = new Map<string, ExpectationData[]>();
    for (const x of exportExpectations(ct, now)) {
      const k = x.master.join(',');
      const list = exps.get(k);
      if (list) list.push(x);
      else exps.set(k, [x]);
    }
    const records: RestoreRecord[] = [];
    this.ids = [];
    for (const e of ct.entries(now)) {
      const entry = ct.exportEntry(e, now);
      const payload: RestorePayload = { entry, exps: exps.get(entry.tuple.join(',')) ?? [] };
      records.push({ tuple: entry.tuple, rports: ct.portsWord(e, 1), expiresAt: this.builtAt + entry.timeoutMs, payload: JSON.stringify(payload) });
      this.byEntry.set(e, this.ids.length);
      this.ids.push(e);
    }
    this.store = RestoreStore.build(records);
    Atomics.add(shared, 0, records.length);
  }

  private open(i: number, wall: number): boolean {
    return this.store.isOpen(i) && this.store.expiresAt(i) > wall;
  }

  /** Open entries (neither claimed, deleted nor run out). */
  count(): number {
    if (this.store.unclaimed() === 0) return 0;
    const wall = Date.now();
    let n = 0;
    for (let i = 0; i < this.ids.length; i++) if (this.open(i, wall)) n++;
    return n;
  }

  /** Open entries' ids in ct that the filter selects. */
  select(filter: (e: number) => boolean): number[] {
    const out: number[] = [];
    if (this.store.unclaimed() === 0) return out;
    const wall = Date.now();
    for (let i = 0; i < this.ids.length; i++) if (this.open(i, wall) && filter(this.ids[i])) out.push(this.ids[i]);
    return out;
  }

  /** Deletes open entries (conntrack -D/-F); returns those it took before a worker did. */
  delete(entries: number[]): Set<number> {
    const gone = new Set<number>();
    for (const e of entries) {
      const i = this.byEntry.get(e);
      if (i !== undefined && this.store.retire(i)) {
        Atomics.sub(this.shared, 0, 1);
        gone.add(e);
      }
    }
    return gone;
  }

  /** Retires the entries that ran out unclaimed (their share of the count goes). */
  sweep(): number {
    if (this.store.unclaimed() === 0) return 0;
    const wall = Date.now();
    let n = 0;
    for (let i = 0; i < this.ids.length; i++) {
      if (this.store.isOpen(i) && this.store.expiresAt(i) <= wall && this.store.retire(i)) {
        Atomics.sub(this.shared, 0, 1);
        n++;
      }
    }
    return n;
  }

  /** conntrack -L expect lines of the open entries' expectations. */
  expectLines(): string[] {
    const out: string[] = [];
    if (this.store.unclaimed() === 0) return out;
    const now = performance.now();
    const wall = Date.now();
    const X = this.ct.expectations;
    X.forEach((x) => {
      const i = this.byEntry.get(X.master[x]);
      if (i !== undefined && this.open(i, wall) && X.isLive(x) && X.timeout[x] > now) out.push(formatExpect(this.ct, x, now));
    });
    return out;
  }

  /** The open entries for a state file saved at `savedAt` (wall clock): entry lines and expectations. */
  exportForSave(savedAt: number): { lines: string[]; exps: ExpectationData[] } {
    const lines: string[] = [];
    const exps: ExpectationData[] = [];
    if (this.store.unclaimed() === 0) return { lines, exps };
    const since = savedAt - this.builtAt;
    for (let i = 0; i < this.ids.length; i++) {
      if (!this.open(i, savedAt)) continue;
      const p = JSON.parse(this.store.payload(i)) as RestorePayload;
      lines.push(JSON.stringify({ ...p.entry, timeoutMs: this.store.expiresAt(i) - savedAt, ageMs: (Number(p.entry.ageMs) || 0) + since }));
      for (const x of p.exps) if (x.timeoutMs - since > 0) exps.push({ ...x, timeoutMs: x.timeoutMs - since });
    }
    return { lines, exps };
  }
}
