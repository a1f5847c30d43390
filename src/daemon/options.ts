/**
 * What `nfqwall run` hands the daemon (src/cli/run.ts parses it; src/daemon/lifecycle.ts runs it),
 * and the start-up pieces derived from it: the queue range and the tunables.
 */
import * as fs from 'node:fs';
import { applySetting, parseSysctlText } from '../conntrack/settings';
import type { TunableValues } from '../conntrack/sysctl';
import type { QueueSpec } from './iptables';

export interface DaemonOptions {
  queues: QueueSpec;
  failOpen: boolean;
  iptables: 'auto' | 'off';
  kernelConntrack: 'keep' | 'notrack';
  copyRange: number;
  maxLen: number;
  batchSize: number;
  rcvbuf: number;
  gso: boolean;
  /** seconds a queue may hold packets for us while we receive none before it is reopened (0 = never) */
  stallChecks: number;
  rules?: string;
  /** every packet ACCEPT: no tracking, rules, control socket, metrics or state (a data-path diagnostic) */
  acceptAll: boolean;
  logLevel: string;
  /** --set NAME=VALUE, in order (applied after --sysctl FILE) */
  set: string[];
  sysctlFile?: string;
  control: string;
  /** control-socket connections served at once; more are refused with an error */
  controlMaxClients: number;
  metrics?: string;
  state?: string;
  stateIntervalSec: number;
  /** an `ipset save` file restored at start (before the rules that name its sets) */
  ipsets?: string;
  /** --sync FILE: state sync with a peer (src/sync/config.ts) */
  sync?: string;
}

/** Parses `N` or `A:B` (0..65535, A <= B). */
export function parseQueueSpec(s: string): QueueSpec {
  const m = /^(\d+)(?::(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`bad queue spec '${s}' (expected N or A:B)`);
  const first = Number(m[1]);
  const last = m[2] !== undefined ? Number(m[2]) : first;
  if (first > 65535 || last > 65535 || last < first) throw new Error(`bad queue spec '${s}' (0..65535, A <= B)`);
  return { first, last };
}

/** The fields of the "nfqwall started" log line. */
export function startedFields(opts: DaemonOptions, queues: number[], portids: number[], workers: number): Record<string, unknown> {
  return {
    queues,
    portids,
    workers,
    failOpen: opts.failOpen,
    copyRange: opts.copyRange,
    maxLen: opts.maxLen,
    batch: opts.batchSize,
    rcvbuf: opts.rcvbuf,
    gso: opts.gso,
    iptables: opts.iptables,
    kernelConntrack: opts.kernelConntrack,
    pid: process.pid,
  };
}

/**
 * Tunables at start: `--sysctl FILE` (sysctl.conf syntax) first, then every `--set`, applied to
 * tun before the table is created (so nf_conntrack_buckets / nf_conntrack_max take effect).
 * Returns error lines (`FILE:LINE: message`, `--set ARG: message`); empty when all applied.
 */
export function startTunables(tun: TunableValues, opts: Pick<DaemonOptions, 'set' | 'sysctlFile'>): string[] {
  const errors: string[] = [];
  if (opts.sysctlFile !== undefined) {
    let text: string | undefined;
    try {
      text = fs.readFileSync(opts.sysctlFile, 'utf8');
    } catch (err) {
      errors.push(`${opts.sysctlFile}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text !== undefined) {
      const r = parseSysctlText(text);
      for (const e of r.errors) errors.push(`${opts.sysctlFile}:${e.line}: ${e.message}`);
      if (r.errors.length === 0) for (const st of r.settings) tun[st.key] = st.value;
    }
  }
  for (const a of opts.set) {
    const err = applySetting(tun, a);
    if (err) errors.push(`--set ${a}: ${err}`);
  }
  return errors;
}
