/**
 * The state file (`run --state FILE`): the connection table (and its expectations) saved on
 * exit and periodically, restored at start so that established connections survive a
 * restart.
 *
 * Format (text, one JSON document per line):
 *   line 1   {"format":"nfqwall-state","version":1,"savedAt":EPOCH_MS,"entries":N,"expectations":M}
 *   N lines  ConntrackEntryData (src/conntrack/core.ts; timeoutMs = lifetime left at savedAt)
 *   M lines  ExpectationData
 *   last     {"end":true,"entries":N,"expectations":M}
 * Written to FILE.tmp-PID, fsync'ed, renamed over FILE (and the directory fsync'ed), so a
 * crash mid-write leaves the old file. A file that is corrupt, truncated (no matching end
 * line) or of a future version is logged and ignored: the daemon starts empty.
 *
 * At restore the wall-clock time since savedAt is taken off every timeout; entries and
 * expectations whose timeout has run out are not restored. TCP entries keep their state but
 * not their window tracking, and are window-liberal from then on (see forgetTcpWindows), as a
 * connection the kernel picks up in mid-stream.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Conntrack, ConntrackEntryData } from '../conntrack/core';
import { TUPLE_WORDS } from '../conntrack/tuple';
import { REC_SHIFT } from '../conntrack/table';
import { forgetTcpWindows } from '../conntrack/proto/tcp';
import type { Logger } from './log';

export const STATE_FORMAT = 'nfqwall-state';
export const STATE_VERSION = 1;
const CHUNK = 4096;

export interface ExpectationData {
  /** ORIG tuple of the master connection */
  master: number[];
  /** the expected tuple (masked parts zero) */
  tuple: number[];
  mask: number;
  cls: number;
  helper: number;
  flags: number;
  timeoutMs: number;
}

interface Header {
  format: string;
  version: number;
  savedAt: number;
  entries: number;
  expectations: number;
}

const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

/**
 * Writes the table to file atomically. With `chunked`, yields to the event loop every CHUNK
 * entries (periodic saves while packets flow). Returns the number of entries written.
 */
export async function saveState(
  ct: Conntrack,
  file: string,
  opts: { now: number; wallNow?: number; chunked?: boolean },
): Promise<{ entries: number; expectations: number }> {
  const now = opts.now;
  const savedAt = opts.wallNow ?? Date.now();
  const ids: number[] = [];
  ct.forEach((e) => ids.push(e));
  const exps = exportExpectations(ct, now);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  let written = 0;
  try {
    // the header's count is a promise the end line confirms; entries that vanish while a
    // chunked save runs are skipped, so the header says how many ids were taken and the
    // end line how many were written
    const lines: string[] = [];
    const flush = () => {
      if (lines.length > 0) fs.writeSync(fd, lines.join('\n') + '\n');
      lines.length = 0;
    };
    const header: Header = { format: STATE_FORMAT, version: STATE_VERSION, savedAt, entries: ids.length, expectations: exps.length };
    lines.push(JSON.stringify(header));
    for (let i = 0; i < ids.length; i++) {
      const e = ids[i];
      if (ct.table.isAlloc(e) && ct.table.isHashed(e)) {
        lines.push(JSON.stringify(ct.exportEntry(e, opts.chunked ? performance.now() : now)));
        written++;
      }
      if (lines.length >= CHUNK) {
        flush();
        if (opts.chunked) await yieldLoop();
      }
    }
    for (const x of exps) lines.push(JSON.stringify(x));
    lines.push(JSON.stringify({ end: true, entries: written, expectations: exps.length }));
    flush();
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* ignore */
    }
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  try {
    const dfd = fs.openSync(path.dirname(path.resolve(file)), 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    /* directory fsync is best effort */
  }
  return { entries: written, expectations: exps.length };
}

/** The live expectations of ct as plain data (timeoutMs = left at `now`); `master` filters by master entry. */
export function exportExpectations(ct: Conntrack, now: number, master?: number): ExpectationData[] {
  const X = ct.expectations;
  const exps: ExpectationData[] = [];
  X.forEach((x) => {
    const m = X.master[x];
    if (!X.isLive(x) || X.timeout[x] <= now || m < 0 || !ct.table.isAlloc(m)) return;
    if (master !== undefined && m !== master) return;
    const b = x * TUPLE_WORDS;
    exps.push({
      master: Array.from(ct.table.rec.subarray(m << REC_SHIFT, (m << REC_SHIFT) + TUPLE_WORDS)),
      tuple: Array.from(X.tuples.subarray(b, b + TUPLE_WORDS)),
      mask: X.mask[x],
      cls: X.cls[x],
      helper: X.helper[x],
      flags: X.flags[x],
      timeoutMs: X.timeout[x] - now,
    });
  });
  return exps;
}

/**
 * A state file written from records gathered elsewhere (the worker threads' tables): header,
 * entry lines as they come, then the expectations and the end line; atomic like saveState.
 */
export class StateFileWriter {
  private readonly tmp: string;
  private readonly fd: number;
  private entries = 0;

  constructor(
    private readonly file: string,
    savedAt: number,
    expectedEntries: number,
  ) {
    this.tmp = `${file}.tmp-${process.pid}`;
    this.fd = fs.openSync(this.tmp, 'w', 0o600);
    const header: Header = { format: STATE_FORMAT, version: STATE_VERSION, savedAt, entries: expectedEntries, expectations: 0 };
    fs.writeSync(this.fd, JSON.stringify(header) + '\n');
  }

  /** Entry lines (JSON of ConntrackEntryData, timeoutMs left at savedAt). */
  writeEntries(lines: string[]): void {
    if (lines.length === 0) return;
    fs.writeSync(this.fd, lines.join('\n') + '\n');
    this.entries += lines.length;
  }

  finish(exps: ExpectationData[]): { entries: number; expectations: number } {
    const lines = exps.map((x) => JSON.stringify(x));
    lines.push(JSON.stringify({ end: true, entries: this.entries, expectations: exps.length }));
    fs.writeSync(this.fd, lines.join('\n') + '\n');
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    fs.renameSync(this.tmp, this.file);
    try {
      const dfd = fs.openSync(path.dirname(path.resolve(this.file)), 'r');
      fs.fsyncSync(dfd);
      fs.closeSync(dfd);
    } catch {
      /* directory fsync is best effort */
    }
    return { entries: this.entries, expectations: exps.length };
  }

  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* closed */
    }
    try {
      fs.unlinkSync(this.tmp);
    } catch {
      /* gone */
    }
  }
}

/** Restores one expectation under its master (looked up by the master's ORIG tuple); false when it cannot. */
export function importExpectation(ct: Conntrack, d: ExpectationData, leftMs: number, now: number): boolean {
  const key = new Uint32Array(TUPLE_WORDS);
  const t = new Uint32Array(TUPLE_WORDS);
  const words = (a: unknown, out: Uint32Array): boolean => {
    if (!Array.isArray(a) || a.length !== TUPLE_WORDS) return false;
    for (let i = 0; i < TUPLE_WORDS; i++) {
      const w = a[i];
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 0xffffffff) return false;
      out[i] = w;
    }
    return true;
  };
  if (!d || typeof d !== 'object' || !words(d.master, key) || !words(d.tuple, t)) return false;
  if (!(leftMs > 0)) return false;
  const node = ct.lookup(key, now);
  if (node < 0 || (node & 1) !== 0) return false;
  const master = node >> 1;
  return ct.expectations.add(master, t, 0, d.mask & 0xff, d.cls & 0xff, d.helper & 0xff, d.flags & 0xff, 0, leftMs, ct.tun.nf_conntrack_expect_max, now) === 0;
}

export interface RestoreResult {
  restored: number;
  expired: number;
  refused: number;
  expectations: number;
  /** why the file was ignored (then nothing was restored) */
  ignored?: string;
}

/**
 * Restores entries from file into ct (normally empty). A missing file restores nothing
 * silently; a bad one is reported in `ignored` and restores nothing.
 */
export function restoreState(ct: Conntrack, file: string, opts: { now: number; wallNow?: number }): RestoreResult {
  const res: RestoreResult = { restored: 0, expired: 0, refused: 0, expectations: 0 };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return res;
    res.ignored = `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    return res;
  }
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const parsed: unknown[] = [];
  for (let i = 0; i < lines.length; i++) {
    try {
      parsed.push(JSON.parse(lines[i]));
    } catch {
      res.ignored = `line ${i + 1} is not valid JSON (corrupt or truncated file)`;
      return res;
    }
  }
  const h = parsed[0] as Header | undefined;
  if (!h || typeof h !== 'object' || h.format !== STATE_FORMAT) {
    res.ignored = 'not an nfqwall state file';
    return res;
  }
  if (typeof h.version !== 'number' || h.version > STATE_VERSION || h.version < 1) {
    res.ignored = `unsupported state file version ${String(h.version)} (this nfqwall reads version ${STATE_VERSION})`;
    return res;
  }
  const end = parsed[parsed.length - 1] as { end?: boolean; entries?: number; expectations?: number } | undefined;
  if (parsed.length < 2 || !end || end.end !== true || typeof end.entries !== 'number' || typeof end.expectations !== 'number') {
    res.ignored = 'truncated (no end line)';
    return res;
  }
  if (parsed.length !== 2 + end.entries + end.expectations) {
    res.ignored = `truncated or corrupt (${parsed.length - 2} records, the end line says ${end.entries + end.expectations})`;
    return res;
  }
  if (typeof h.savedAt !== 'number' || !Number.isFinite(h.savedAt)) {
    res.ignored = 'bad header (savedAt)';
    return res;
  }
  const wallNow = opts.wallNow ?? Date.now();
  const elapsed = Math.max(0, wallNow - h.savedAt);
  const now = opts.now;
  for (let i = 1; i <= end.entries; i++) {
    const d = parsed[i] as ConntrackEntryData;
    if (!d || typeof d !== 'object' || typeof d.timeoutMs !== 'number') {
      res.refused++;
      continue;
    }
    const left = d.timeoutMs - elapsed;
    if (!(left > 0)) {
      res.expired++;
      continue;
    }
    // TCP: the connection has moved on since the save; no windows from the file, liberal
    // window checks (as the kernel's mid-stream pickup and conntrackd's injected entries)
    const tcp = Array.isArray(d.tuple) && (Number(d.tuple[0]) & 0xff) === 6 && Array.isArray(d.proto);
    const e = ct.importEntry({ ...d, proto: tcp ? forgetTcpWindows(d.proto) : d.proto, timeoutMs: left, ageMs: (Number(d.ageMs) || 0) + elapsed }, now);
    if (e < 0) res.refused++;
    else res.restored++;
  }
  for (let i = 1 + end.entries; i < parsed.length - 1; i++) {
    const d = parsed[i] as ExpectationData;
    if (d && typeof d === 'object' && importExpectation(ct, d, Number(d.timeoutMs) - elapsed, now)) res.expectations++;
  }
  return res;
}

/** Periodic saves while the daemon runs, and the final save on exit. */
export class StateKeeper {
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<unknown> | undefined;

  constructor(
    private readonly ct: Conntrack,
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  /** Restores at start; logs what happened (an ignored file is a warning, never fatal). */
  restore(): RestoreResult {
    const r = restoreState(this.ct, this.file, { now: performance.now() });
    if (r.ignored) this.log.warn({ file: this.file, reason: r.ignored }, `state file ignored: ${r.ignored}; starting with an empty table`);
    else this.log.info({ file: this.file, restored: r.restored, expired: r.expired, refused: r.refused, expectations: r.expectations }, 'state restored');
    return r;
  }

  start(intervalSec: number): void {
    if (intervalSec <= 0) return;
    this.timer = setInterval(() => void this.save(true), intervalSec * 1000);
    this.timer.unref();
  }

  async save(chunked: boolean): Promise<void> {
    if (this.saving) await this.saving.catch(() => undefined);
    const p = saveState(this.ct, this.file, { now: performance.now(), chunked }).then(
      (r) => this.log.info({ file: this.file, ...r }, 'state saved'),
      (err: Error) => this.log.error({ file: this.file, err }, `state save failed: ${err.message}`),
    );
    this.saving = p;
    await p;
    this.saving = undefined;
  }

  /** Stops the timer and writes the final state. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.save(false);
  }
}
