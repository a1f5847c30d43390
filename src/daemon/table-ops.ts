/**
 * The control requests one connection table answers (src/daemon/control-ops.ts asks every
 * table of the daemon and merges): listing, deleting and counting entries and expectations,
 * its statistics, its rule counters, and setting a tunable on it. The daemon's own table runs
 * them in this thread; each worker thread runs them on its table (src/daemon/worker.ts).
 */
import { performance } from 'node:perf_hooks';
import type { Conntrack } from '../conntrack/core';
import { formatConntrack, formatExpect, formatProcConntrack } from '../conntrack/format';
import { applySetting } from '../conntrack/settings';
import type { TunableValues } from '../conntrack/sysctl';
import type { Counters } from '../rules';
import { localRoutes } from '../rules/local-routes';
import type { NamedSets } from '../rules/nft/named-sets';
import { recentControl } from '../rules/recent-lists';
import { compileFilter, type CtFilter } from './ct-filter';

/** Entries formatted per chunk before yielding to the event loop. */
export const CHUNK_ENTRIES = 2048;

/** Where a request's streamed lines go (a client session, or a worker thread's port). */
export interface ControlOutput {
  readonly alive: boolean;
  /** Sends lines; resolves when they may be followed by more; throws ControlAborted when the reader is gone. */
  sendLines(lines: string[]): Promise<void>;
}

/** The reader of a streamed answer went away. */
export class ControlAborted extends Error {}

export type Res = Record<string, unknown>;

export const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

/** What a table's requests read and change. */
export interface TableSource {
  readonly tun: TunableValues;
  readonly fw: { readonly ct: Conntrack };
  /** the rules in force on this table (for `rules -L -v` counters), when it has any */
  readonly rules?: { readonly counters?: Counters; readonly nftSets?: NamedSets };
}

export class TableOps {
  private readonly now: () => number;
  private readonly chunk: number;

  constructor(
    private readonly src: TableSource,
    now?: () => number,
    chunk?: number,
  ) {
    this.now = now ?? (() => performance.now());
    this.chunk = chunk ?? CHUNK_ENTRIES;
  }

  /** Answers one table request; undefined when `r.op` is not one (the caller says so). */
  async handle(r: Res, out: ControlOutput): Promise<Res | undefined> {
    const ct = this.src.fw.ct;
    switch (r.op) {
      case 'ct.list': {
        const filter = compileFilter(ct, r.filter as CtFilter);
        const extended = r.extended === true;
        const proc = r.proc === true;
        const n = await this.walk(out, filter, (e, now) => (proc ? formatProcConntrack(ct, e, now) : formatConntrack(ct, e, now, extended)), false);
        return { ok: true, count: n };
      }
      case 'ct.delete': {
        const filter = compileFilter(ct, r.filter as CtFilter);
        return { ok: true, count: await this.walk(out, filter, (e, now) => formatConntrack(ct, e, now, false), true) };
      }
      case 'ct.flush':
        return { ok: true, count: await this.walk(out, () => true, null, true) };
      case 'ct.count':
        return { ok: true, count: ct.count };
      case 'ct.stats':
        return { ok: true, stats: { ...ct.stats }, count: ct.count };
      case 'expect.list':
        return { ok: true, count: await this.expectations(out) };
      case 'expect.flush':
        return { ok: true, count: ct.expectations.flush() };
      case 'sysctl.set': {
        const err = applySetting(this.src.tun, `${String(r.name)}=${String(r.value)}`, (key, value) => ct.setTunable(key, value));
        return err ? { ok: false, error: err } : { ok: true };
      }
      case 'routes.local': {
        // the local routing table -m addrtype reads in this thread
        const lines = localRoutes().lines();
        for (let i = 0; i < lines.length; i += this.chunk) await out.sendLines(lines.slice(i, i + this.chunk));
        return { ok: true, count: lines.length };
      }
      case 'recent': {
        // this thread's xt_recent lists (each worker thread has its own)
        const res = recentControl(r.name, r.write, Math.floor(this.now()));
        if (res.lines) for (let i = 0; i < res.lines.length; i += this.chunk) await out.sendLines(res.lines.slice(i, i + this.chunk));
        return { ok: true, names: res.names, count: res.lines?.length };
      }
      case 'nft.set': {
        // a named set's new element list (`nfqwall nft add/delete element`, checked by the daemon)
        const named = this.src.rules?.nftSets?.get(String(r.key));
        if (!named || !Array.isArray(r.elems)) return { ok: false, error: 'No such file or directory' };
        named.replace(r.elems);
        return { ok: true };
      }
      case 'rules.counters': {
        const c = this.src.rules?.counters;
        if (!c) return { ok: false, error: 'no rule counters' };
        return {
          ok: true,
          rulePkts: Array.from(c.rulePkts),
          ruleBytes: Array.from(c.ruleBytes),
          chainPkts: Array.from(c.chainPkts),
          chainBytes: Array.from(c.chainBytes),
        };
      }
      default:
        return undefined;
    }
  }

  private async expectations(out: ControlOutput): Promise<number> {
    const ct = this.src.fw.ct;
    const now = this.now();
    const lines: string[] = [];
    const X = ct.expectations;
    const ids: number[] = [];
    X.forEach((x) => ids.push(x));
    let n = 0;
    for (const x of ids) {
      if (!X.isLive(x) || X.timeout[x] <= now) continue;
      lines.push(formatExpect(ct, x, now));
      n++;
      if (lines.length >= this.chunk) {
        await out.sendLines(lines.splice(0));
        await yieldLoop();
      }
    }
    await out.sendLines(lines);
    return n;
  }

  /**
   * Walks the confirmed entries bucket by bucket in chunks, yielding to the event loop
   * between chunks. format: the streamed line per selected entry (null: none); del: destroy
   * each selected entry. Returns how many were selected. A rehash between chunks (sysctl
   * nf_conntrack_buckets) restarts the bucket cursor on the new table; entries seen already
   * may then be listed again, as a kernel dump interrupted by a resize may.
   */
  private async walk(out: ControlOutput, filter: (e: number) => boolean, format: ((e: number, now: number) => string) | null, del: boolean): Promise<number> {
    const ct = this.src.fw.ct;
    const tb = ct.table;
    let n = 0;
    let b = 0;
    let nb = tb.nbuckets;
    const ids: number[] = [];
    const lines: string[] = [];
    while (b < tb.nbuckets) {
      if (tb.nbuckets !== nb) {
        nb = tb.nbuckets;
        b = 0;
      }
      const now = this.now();
      let work = 0;
      for (; b < tb.nbuckets && work < this.chunk; b++) {
        ids.length = 0;
        for (let node = tb.head(b); node >= 0; node = tb.next(node)) if ((node & 1) === 0) ids.push(node >> 1);
        work += 1 + ids.length;
        for (const e of ids) {
          if (!tb.isAlloc(e) || !tb.isHashed(e) || tb.timeout(e) <= now) continue;
          if (!filter(e)) continue;
          if (format) lines.push(format(e, now));
          if (del) ct.destroy(e);
          n++;
        }
      }
      if (lines.length > 0) await out.sendLines(lines.splice(0));
      else if (!out.alive) throw new ControlAborted();
      await yieldLoop();
    }
    return n;
  }
}
