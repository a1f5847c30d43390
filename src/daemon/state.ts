/**
 * The state file (`run --state FILE`): the connection table (and its expectations) saved on
 * exit and periodically, restored at start so that established connections survive a
 * restart.
 *
 * Format (text, one JSON document per line):
 *   line 1   {"format":"nfqwall-state","version":1,"savedAt":EPOCH_MS,"entries":N,"expectations":M}
 *   N lines  ConntrackEntryData (src/conntrack/ops.ts; timeoutMs = lifetime left at savedAt)
 *   M lines  ExpectationData
 *   last     {"end":true,"entries":N,"expectations":M}
 * Written atomically (atomic-file.ts: an unpredictable temporary name opened O_EXCL|O_NOFOLLOW,
 * fsync, rename), so a crash mid-write leaves the old file. Only a file and directory nobody
 * but root can write are read or written (state-trust.ts); a file that is corrupt, truncated
 * (no matching end line) or of a future version is logged and ignored: the daemon starts empty.
 * The file is read twice in bounded chunks (line-reader.ts: once to check it whole, once to
 * restore), so memory is bounded by the table (nf_conntrack_max), not by the file's size.
 *
 * At restore the wall-clock time since savedAt is taken off every timeout; entries and
 * expectations whose timeout has run out are not restored. Every entry is checked as data from
 * outside (conntrack/restore-check.ts): one no tracker could have produced is refused, and no
 * timeout outlives what the entry's state allows under the current tunables. TCP entries keep
 * their state but not their window tracking, and are window-liberal from then on (see
 * forgetTcpWindows), as a connection the kernel picks up in mid-stream.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Conntrack } from '../conntrack/core';
import { checkRestoredEntry, checkTuple } from '../conntrack/restore-check';
import { TUPLE_WORDS, origTuple } from '../conntrack/layout';
import { forgetTcpWindows } from '../conntrack/proto/tcp';
import { AtomicFile } from './atomic-file';
import { forEachLine } from './line-reader';
import type { Logger } from './log';
import { openStateFile, stateDirProblem } from './state-trust';

export const STATE_FORMAT = 'nfqwall-state';
export const STATE_VERSION = 1;
const CHUNK = 4096;
/** far above any record this daemon writes (a TCP entry is ~300 bytes) */
const MAX_LINE = 1 << 16;

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

/** The temporary file for a save of `file`, once its directory is one only root can write. */
function openForSave(file: string): AtomicFile {
  const problem = stateDirProblem(path.dirname(path.resolve(file)));
  if (problem) throw new Error(`refusing to write the state file ${file}: ${problem}`);
  return new AtomicFile(file);
}

/**
 * Writes the table to file atomically (one StateFileWriter). With `chunked`, yields to the
 * event loop every CHUNK entries (periodic saves while packets flow). Returns what was written.
 */
export async function saveState(
  ct: Conntrack,
  file: string,
  opts: { now: number; wallNow?: number; chunked?: boolean },
): Promise<{ entries: number; expectations: number }> {
  const now = opts.now;
  const exps = exportExpectations(ct, now);
  const w = new StateFileWriter(file, opts.wallNow ?? Date.now(), ct.count, exps.length);
  try {
    await exportEntries(
      ct,
      async (lines) => {
        w.writeEntries(lines);
        if (opts.chunked) await yieldLoop();
      },
      opts.chunked ? () => performance.now() : () => now,
    );
    return w.finish(exps);
  } catch (err) {
    w.abort();
    throw err;
  }
}

/**
 * The table's entries as state-file lines (JSON of ConntrackEntryData, timeoutMs left at
 * now()), handed to `sink` CHUNK at a time; entries that vanish while the sink is awaited
 * (packets flow meanwhile) are skipped. Returns how many were written.
 */
export async function exportEntries(ct: Conntrack, sink: (lines: string[]) => void | Promise<void>, now: () => number): Promise<number> {
  const ids: number[] = [];
  ct.forEach((e) => ids.push(e));
  const lines: string[] = [];
  let written = 0;
  for (const e of ids) {
    if (ct.table.isAlloc(e) && ct.table.isHashed(e)) {
      lines.push(JSON.stringify(ct.exportEntry(e, now())));
      written++;
    }
    if (lines.length >= CHUNK) await sink(lines.splice(0));
  }
  if (lines.length > 0) await sink(lines);
  return written;
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
      master: Array.from(origTuple(ct.table.rec, m)),
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
 * The one writer of state files: header, entry lines as they come (from this thread's table
 * or the worker threads'), then the expectations and the end line, through an AtomicFile.
 * The header's counts are what the writer expected; the end line says what was written.
 */
export class StateFileWriter {
  private readonly out: AtomicFile;
  private entries = 0;

  constructor(file: string, savedAt: number, expectedEntries: number, expectedExpectations = 0) {
    this.out = openForSave(file);
    const header: Header = { format: STATE_FORMAT, version: STATE_VERSION, savedAt, entries: expectedEntries, expectations: expectedExpectations };
    this.out.write(JSON.stringify(header) + '\n');
  }

  /** Entry lines (JSON of ConntrackEntryData, timeoutMs left at savedAt). */
  writeEntries(lines: string[]): void {
    if (lines.length === 0) return;
    this.out.write(lines.join('\n') + '\n');
    this.entries += lines.length;
  }

  finish(exps: ExpectationData[]): { entries: number; expectations: number } {
    const lines = exps.map((x) => JSON.stringify(x));
    lines.push(JSON.stringify({ end: true, entries: this.entries, expectations: exps.length }));
    this.out.write(lines.join('\n') + '\n');
    this.out.commit();
    return { entries: this.entries, expectations: exps.length };
  }

  abort(): void {
    this.out.abort();
  }
}

/** Restores one expectation under its master (looked up by the master's ORIG tuple); false when it cannot. */
export function importExpectation(ct: Conntrack, d: ExpectationData, leftMs: number, now: number): boolean {
  if (!d || typeof d !== 'object') return false;
  const key = checkTuple(d.master);
  const t = checkTuple(d.tuple);
  if (typeof key === 'string' || typeof t === 'string') return false;
  const u8 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xff;
  if (!u8(d.mask) || !u8(d.cls) || !u8(d.helper) || !u8(d.flags) || !(leftMs > 0)) return false;
  const node = ct.lookup(key, now);
  if (node < 0 || (node & 1) !== 0) return false;
  const master = node >> 1;
  // only a master's helper creates expectations, and for no longer than its policy says
  const limitSec = ct.helper(ct.table.helper[master])?.expectTimeout(ct.tun) ?? -1;
  if (limitSec < 0) return false;
  const left = Math.min(leftMs, limitSec * 1000);
  return ct.expectations.add(master, t, 0, d.mask, d.cls, d.helper, d.flags, 0, left, ct.tun.nf_conntrack_expect_max, now) === 0;
}

export interface RestoreResult {
  restored: number;
  expired: number;
  refused: number;
  expectations: number;
  /** why the file was ignored (then nothing was restored) */
  ignored?: string;
  /** why the first refused entry was refused (line number and reason) */
  firstRefusal?: string;
}

/**
 * Restores entries from file into ct (normally empty). A missing file restores nothing
 * silently; a bad one is reported in `ignored` and restores nothing.
 */
export function restoreState(ct: Conntrack, file: string, opts: { now: number; wallNow?: number }): RestoreResult {
  const res: RestoreResult = { restored: 0, expired: 0, refused: 0, expectations: 0 };
  let fd: number | string;
  try {
    fd = openStateFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return res;
    res.ignored = code === 'ELOOP' ? `not trusted: ${file} is a symbolic link` : `cannot read: ${code ?? (err as Error).message}`;
    return res;
  }
  if (typeof fd === 'string') {
    res.ignored = `not trusted: ${fd}`;
    return res;
  }
  try {
    const check = checkWhole(fd);
    if (typeof check === 'string') res.ignored = check;
    else restoreRecords(ct, fd, check, opts, res);
  } catch (err) {
    res.ignored = `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  } finally {
    fs.closeSync(fd);
  }
  return res;
}

/** The first pass: every line JSON, the header ours, the end line matching the count; the header, or why not. */
function checkWhole(fd: number): Header | string {
  let header: Header | undefined;
  let last: unknown;
  let lines = 0;
  let bad: string | undefined;
  const stopped = forEachLine(fd, MAX_LINE, (line, n) => {
    lines = n;
    try {
      last = JSON.parse(line);
    } catch {
      bad = `line ${n} is not valid JSON (corrupt or truncated file)`;
      return false;
    }
    if (n === 1) {
      const h = last as Header | null;
      if (!h || typeof h !== 'object' || h.format !== STATE_FORMAT) bad = 'not an nfqwall state file';
      else if (typeof h.version !== 'number' || h.version > STATE_VERSION || h.version < 1)
        bad = `unsupported state file version ${String(h.version)} (this nfqwall reads version ${STATE_VERSION})`;
      else if (typeof h.savedAt !== 'number' || !Number.isFinite(h.savedAt)) bad = 'bad header (savedAt)';
      else header = h;
      return bad === undefined;
    }
    return true;
  });
  if (stopped) return `${stopped} (corrupt file)`;
  if (bad) return bad;
  if (!header) return 'not an nfqwall state file';
  const end = last as { end?: boolean; entries?: number; expectations?: number } | null;
  if (lines < 2 || !end || typeof end !== 'object' || end.end !== true || !Number.isInteger(end.entries) || !Number.isInteger(end.expectations))
    return 'truncated (no end line)';
  if (lines !== 2 + end.entries! + end.expectations!)
    return `truncated or corrupt (${lines - 2} records, the end line says ${end.entries! + end.expectations!})`;
  return { ...header, entries: end.entries!, expectations: end.expectations! };
}

/** The second pass: entries then expectations into ct. */
function restoreRecords(ct: Conntrack, fd: number, h: Header, opts: { now: number; wallNow?: number }, res: RestoreResult): void {
  const elapsed = Math.max(0, (opts.wallNow ?? Date.now()) - h.savedAt);
  const now = opts.now;
  forEachLine(fd, MAX_LINE, (line, n) => {
    if (n === 1 || n > 1 + h.entries + h.expectations) return true;
    const d: unknown = JSON.parse(line);
    if (n > 1 + h.entries) {
      const x = d as ExpectationData;
      if (x && typeof x === 'object' && importExpectation(ct, x, Number(x.timeoutMs) - elapsed, now)) res.expectations++;
      return true;
    }
    const e = checkRestoredEntry(ct, d, elapsed);
    if (typeof e === 'string') {
      res.refused++;
      res.firstRefusal ??= `line ${n}: ${e}`;
      return true;
    }
    if (!(e.timeoutMs > 0)) {
      res.expired++;
      return true;
    }
    // TCP: the connection has moved on since the save; no windows from the file, liberal
    // window checks (as the kernel's mid-stream pickup and conntrackd's injected entries)
    if ((e.tuple[0] & 0xff) === 6) e.proto = forgetTcpWindows(e.proto);
    if (ct.importEntry(e, now) < 0) {
      res.refused++;
      res.firstRefusal ??= `line ${n}: a duplicate or the table is full`;
    } else res.restored++;
    return true;
  });
}

/** Restores file into ct at start and logs what happened (an ignored file is a warning, never fatal). */
export function restoreStateFile(ct: Conntrack, file: string, log: Logger): RestoreResult {
  const r = restoreState(ct, file, { now: performance.now() });
  if (r.ignored) log.warn({ file, reason: r.ignored }, `state file ignored: ${r.ignored}; starting with an empty table`);
  else {
    log.info({ file, restored: r.restored, expired: r.expired, refused: r.refused, expectations: r.expectations }, 'state restored');
    if (r.firstRefusal) log.warn({ file, refused: r.refused, first: r.firstRefusal }, `state file: ${r.refused} entries refused (first: ${r.firstRefusal})`);
  }
  return r;
}
