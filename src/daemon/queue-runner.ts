/**
 * One NFQUEUE queue as the daemon runs it: opened with the daemon's options, watched for
 * overflow (ENOBUFS, logged) and stalls (src/daemon/stall.ts: reopened, logged). It is a Queue
 * itself: its counters add up over reopens, `portid`/`batch` are the current socket's.
 */
import { openQueue, type Batch, type Queue, type QueueStats } from '../queue/queue';
import type { NativeQueueOptions, NativeStats } from '../queue/addon';
import { StallDetector } from './stall';
import type { Logger } from './log';

export interface QueueRunnerOptions extends NativeQueueOptions {
  /** seconds between checks (default 1) */
  checkIntervalSec?: number;
  /** consecutive checks with packets waiting and none received before the queue is reopened (0 = never; default 5) */
  stallChecks?: number;
}

export class QueueRunner implements Queue {
  readonly queue: number;
  private q: Queue;
  private retired: NativeStats | undefined;
  private lastEnobufs = 0;
  private timer: NodeJS.Timeout | undefined;
  /** the reopen failed: the next check tries again */
  private broken = false;
  private readonly stall: StallDetector;
  /** reopens after a stall */
  reopens = 0;

  /** Opens the queue; throws QueueBindError when it cannot be bound. */
  constructor(
    private readonly opts: QueueRunnerOptions,
    private readonly onBatch: (batch: Batch) => void,
    private readonly log: Logger,
  ) {
    this.queue = opts.queue;
    this.stall = new StallDetector(opts.queue, opts.stallChecks ?? 5);
    this.q = this.open();
  }

  private open(): Queue {
    const o = this.opts;
    const q = o.queue;
    return openQueue({
      queue: q,
      copyRange: o.copyRange,
      maxLen: o.maxLen,
      batchSize: o.batchSize,
      rcvbuf: o.rcvbuf,
      failOpen: o.failOpen,
      gso: o.gso,
      onBatch: this.onBatch,
      onError: (err) => this.log.error({ queue: q, err }, 'batch handler threw; its undecided packets got the error verdict'),
    });
  }

  get portid(): number {
    return this.q.portid;
  }
  get batch(): Batch {
    return this.q.batch;
  }
  get closed(): boolean {
    return this.q.closed;
  }

  stats(): QueueStats {
    const cur = this.q.stats();
    const r = this.retired;
    if (!r) return cur;
    const out = { ...cur } as QueueStats & Record<string, number>;
    for (const k of Object.keys(r) as (keyof NativeStats)[]) out[k] = (cur[k] ?? 0) + r[k];
    return out;
  }

  /** Starts the periodic checks (unref'd timer). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), (this.opts.checkIntervalSec ?? 1) * 1000);
    this.timer.unref();
  }

  /** Overflow and stall checks; also run once more on close. */
  check(): void {
    if (this.broken) {
      this.bind();
      return;
    }
    if (this.q.closed) return;
    const s = this.stats();
    if (s.enobufs > this.lastEnobufs) {
      this.log.warn(
        { queue: this.queue, enobufs: s.enobufs, new: s.enobufs - this.lastEnobufs },
        'queue overflow (ENOBUFS): packets were dropped before reaching nfqwall',
      );
      this.lastEnobufs = s.enobufs;
    }
    const v = this.stall.check({ received: s.packets, portid: this.q.portid });
    if (v !== 'ok') this.reopen(v);
  }

  /** Closes the socket (what it holds gets the error verdict) and binds the queue again. */
  reopen(why: 'stalled' | 'missing'): void {
    const k = this.stall.last;
    const old = this.q;
    const st = old.stats();
    old.close();
    const r = this.retired;
    const sum = { ...st } as NativeStats & Record<string, number>;
    if (r) for (const key of Object.keys(r) as (keyof NativeStats)[]) sum[key] = (st[key] ?? 0) + r[key];
    delete (sum as Partial<QueueStats>).queue;
    this.retired = sum;
    this.stall.reset();
    this.reopens++;
    if (!this.bind()) return;
    const detail =
      why === 'stalled'
        ? `packets waiting in the kernel (queue_total ${k?.qlen ?? '?'}, id_sequence ${k?.idSequence ?? '?'}) and none received`
        : 'our binding is gone from /proc/net/netfilter/nfnetlink_queue';
    this.log.error(
      { queue: this.queue, reason: why, qlen: k?.qlen, idSequence: k?.idSequence, oldPortid: old.portid, portid: this.q.portid, reopens: this.reopens },
      `queue ${this.queue} stopped delivering (${detail}); reopened`,
    );
  }

  private bind(): boolean {
    try {
      this.q = this.open();
      this.broken = false;
      return true;
    } catch (err) {
      this.broken = true;
      this.log.error({ queue: this.queue, err }, `queue ${this.queue} could not be reopened: ${(err as Error).message}; trying again`);
      return false;
    }
  }

  debugStopPolling(): void {
    this.q.debugStopPolling?.();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.broken = false;
    if (!this.q.closed) this.check();
    this.q.close();
  }
}
