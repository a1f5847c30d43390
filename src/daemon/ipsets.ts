/**
 * The daemon's ipsets: loaded at start from an `ipset save` file (--ipsets FILE), changed at run
 * time by `nfqwall ipset …` in the main thread, expired by a periodic gc there, and kept across
 * rule reloads. The elements are in shared memory (src/rules/sets/store.ts), so the workers of
 * `--queues` match against the very sets the commands change; a command that changes which sets
 * exist (create, destroy, rename, swap, restore) sends the new list to every worker before it
 * answers.
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { runIpset, type IpsetResult } from '../rules/sets/command';
import { ipsets, type SetDescriptor } from '../rules/sets/registry';
import type { Logger } from './log';

/** ipset's commands that change which sets exist (and their names) */
const STRUCTURAL = new Set(['create', 'n', '-N', 'c', 'destroy', 'x', '-X', 'rename', 'e', '-E', 'swap', 'w', '-W', 'restore', 'r', '-R']);

/** The kernel's gc runs every few seconds for a set with timeouts; expired elements never match meanwhile. */
const GC_INTERVAL_MS = 1000;

/** Restores FILE into this thread's sets; returns error lines (`FILE: …`), none when loaded. */
export function loadIpsetFile(file: string, log: Logger): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return [`${file}: cannot read the ipset file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`];
  }
  const r = runIpset(['restore'], performance.now(), text);
  if (r.status !== 0) return [`${file}: ${r.err ?? 'restore failed'}`];
  const sets = ipsets().list();
  log.info({ file, sets: sets.length, elements: sets.reduce((n, s) => n + s.count(), 0) }, 'ipsets restored');
  return [];
}

export class DaemonIpsets {
  private readonly timer: NodeJS.Timeout;

  /** sync: gives the workers (if any) the current list of sets */
  constructor(private readonly sync: ((sets: SetDescriptor[]) => Promise<void>) | undefined) {
    this.timer = setInterval(() => ipsets().gc(performance.now()), GC_INTERVAL_MS);
    this.timer.unref();
  }

  async run(argv: string[], stdin: string): Promise<IpsetResult> {
    const r = runIpset(argv, performance.now(), stdin);
    const cmd = argv.find((w) => !w.startsWith('-') || STRUCTURAL.has(w));
    // a restore that stopped half-way changed the sets all the same
    if (cmd !== undefined && STRUCTURAL.has(cmd) && this.sync) await this.sync(ipsets().descriptors());
    return r;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
