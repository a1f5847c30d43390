/**
 * The run loop: opens the queue(s), installs nfqwall's iptables rules when asked, hands each
 * batch to the caller's handler, and shuts down cleanly on SIGTERM/SIGINT (close the queues so
 * every packet gets its verdict, remove the iptables rules, exit 0).
 */
import type { Queue, Batch } from '../queue/queue';
import { QueueRunner } from './queue-runner';
import { IptablesRules, QueueSpec } from './iptables';
import type { Logger } from './log';

export type BatchHandler = (batch: Batch) => void;

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
  /** Seconds without a received packet while the kernel holds packets for the queue before it is reopened (0 = never; default 5). */
  stallChecks?: number;
}

export interface Daemon {
  readonly queues: Queue[];
  /** Resolves with the exit code once the daemon has stopped. */
  readonly done: Promise<number>;
  /** Stops as on SIGTERM. */
  stop(reason?: string): Promise<number>;
}

/**
 * Starts the daemon. `handlerFor(queue)` supplies the batch handler of each queue (called once
 * per queue at start). Throws (nothing left behind) when a queue cannot be bound or the
 * iptables rules cannot be installed.
 */
export async function startDaemon(opts: DaemonOptions, handlerFor: (queue: number) => BatchHandler, log: Logger, installSignals = true): Promise<Daemon> {
  const queues: QueueRunner[] = [];
  let rules: IptablesRules | undefined;
  try {
    for (let q = opts.queues.first; q <= opts.queues.last; q++) {
      queues.push(new QueueRunner({ ...opts, queue: q, stallChecks: opts.stallChecks }, handlerFor(q), log));
    }
    if (opts.iptables === 'auto') {
      rules = new IptablesRules({ queues: opts.queues, failOpen: opts.failOpen, kernelConntrack: opts.kernelConntrack, log });
      await rules.install();
    }
  } catch (err) {
    for (const q of queues) q.close();
    throw err;
  }
  for (const q of queues) q.start();

  log.info(
    startedFields(
      opts,
      queues.map((q) => q.queue),
      queues.map((q) => q.portid),
      0,
    ),
    'nfqwall started',
  );

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping: Promise<number> | undefined;
  const onSignal = (sig: NodeJS.Signals) => void stop(sig);

  async function stop(reason = 'stop'): Promise<number> {
    if (stopping) return stopping;
    stopping = (async () => {
      if (installSignals) {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
      }
      for (const q of queues) q.close();
      const stats = queues.map((q) => q.stats());
      if (rules) await rules.remove();
      log.info({ reason, stats }, 'nfqwall stopped');
      resolveDone(0);
      return 0;
    })();
    return stopping;
  }

  if (installSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  return { queues, done, stop };
}

/** Parses `N` or `A:B` (0..65535, A <= B). */
/** The fields of the "nfqwall started" log line (one queue or several workers). */
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

export function parseQueueSpec(s: string): QueueSpec {
  const m = /^(\d+)(?::(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`bad queue spec '${s}' (expected N or A:B)`);
  const first = Number(m[1]);
  const last = m[2] !== undefined ? Number(m[2]) : first;
  if (first > 65535 || last > 65535 || last < first) throw new Error(`bad queue spec '${s}' (0..65535, A <= B)`);
  return { first, last };
}
