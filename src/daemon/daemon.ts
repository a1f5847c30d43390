/**
 * The run loop: opens the queue(s), installs nfqwall's iptables rules when asked, hands each
 * batch to the caller's handler, and shuts down cleanly on SIGTERM/SIGINT (close the queues so
 * every packet gets its verdict, remove the iptables rules, exit 0).
 */
import { openQueue, Queue, Batch, QueueBindError } from '../queue/queue';
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
  /** Seconds between checks of the queue counters (ENOBUFS, handler errors). Default 1. */
  statsIntervalSec?: number;
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
  const queues: Queue[] = [];
  let rules: IptablesRules | undefined;
  const lastEnobufs = new Map<number, number>();
  try {
    for (let q = opts.queues.first; q <= opts.queues.last; q++) {
      const handler = handlerFor(q);
      queues.push(
        openQueue({
          queue: q,
          copyRange: opts.copyRange,
          maxLen: opts.maxLen,
          batchSize: opts.batchSize,
          rcvbuf: opts.rcvbuf,
          failOpen: opts.failOpen,
          gso: opts.gso,
          onBatch: handler,
          onError: (err) => log.error({ queue: q, err }, 'batch handler threw; its undecided packets got the error verdict'),
        }),
      );
      lastEnobufs.set(q, 0);
    }
    if (opts.iptables === 'auto') {
      rules = new IptablesRules({ queues: opts.queues, failOpen: opts.failOpen, kernelConntrack: opts.kernelConntrack, log });
      await rules.install();
    }
  } catch (err) {
    for (const q of queues) q.close();
    if (err instanceof QueueBindError) throw err;
    throw err;
  }

  log.info(
    {
      queues: queues.map((q) => q.queue),
      portids: queues.map((q) => q.portid),
      failOpen: opts.failOpen,
      copyRange: opts.copyRange,
      maxLen: opts.maxLen,
      batch: opts.batchSize,
      rcvbuf: opts.rcvbuf,
      gso: opts.gso,
      iptables: opts.iptables,
      kernelConntrack: opts.kernelConntrack,
      pid: process.pid,
    },
    'nfqwall started',
  );

  const check = () => {
    for (const q of queues) {
      const s = q.stats();
      const prev = lastEnobufs.get(q.queue) ?? 0;
      if (s.enobufs > prev) {
        log.warn({ queue: q.queue, enobufs: s.enobufs, new: s.enobufs - prev }, 'queue overflow (ENOBUFS): packets were dropped before reaching nfqwall');
        lastEnobufs.set(q.queue, s.enobufs);
      }
    }
  };
  const timer = setInterval(check, (opts.statsIntervalSec ?? 1) * 1000);
  timer.unref();

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping: Promise<number> | undefined;
  const onSignal = (sig: NodeJS.Signals) => void stop(sig);

  async function stop(reason = 'stop'): Promise<number> {
    if (stopping) return stopping;
    stopping = (async () => {
      clearInterval(timer);
      if (installSignals) {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
      }
      check();
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
export function parseQueueSpec(s: string): QueueSpec {
  const m = /^(\d+)(?::(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`bad queue spec '${s}' (expected N or A:B)`);
  const first = Number(m[1]);
  const last = m[2] !== undefined ? Number(m[2]) : first;
  if (first > 65535 || last > 65535 || last < first) throw new Error(`bad queue spec '${s}' (0..65535, A <= B)`);
  return { first, last };
}
