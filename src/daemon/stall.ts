/**
 * Queue stall detection: a queue whose kernel side holds packets for us (queue_total > 0 in
 * /proc/net/netfilter/nfnetlink_queue, which is per network namespace) while we receive none
 * for `stallSec` consecutive checks has stopped delivering (a broken poll, a socket error that
 * left it unread). A binding that vanished from the table while we think it is open is the
 * same failure seen from the other side. The owner reopens the queue.
 */
import { readKernelQueues, type KernelQueueInfo } from '../queue/queue';

export type StallVerdict = 'ok' | 'stalled' | 'missing';

export interface StallCheckInput {
  /** packets received so far from the queue (monotonic) */
  received: number;
  /** our socket's netlink port id */
  portid: number;
}

export class StallDetector {
  private lastReceived = -1;
  private stuck = 0;
  private missing = 0;
  /** the kernel line of the last check (for the log) */
  last: KernelQueueInfo | undefined;

  constructor(
    readonly queue: number,
    /** consecutive checks with packets waiting and nothing received (0 = never stalls) */
    readonly stallChecks: number,
    private readonly read: () => KernelQueueInfo[] = () => readKernelQueues(),
  ) {}

  /** After a reopen: start counting afresh. */
  reset(): void {
    this.lastReceived = -1;
    this.stuck = 0;
    this.missing = 0;
  }

  /** One check (the owner calls it once per interval). */
  check(s: StallCheckInput): StallVerdict {
    if (this.stallChecks <= 0) return 'ok';
    const k = this.read().find((x) => x.queue === this.queue);
    this.last = k;
    const moved = s.received !== this.lastReceived;
    this.lastReceived = s.received;
    if (!k || k.portid !== s.portid) {
      this.stuck = 0;
      return ++this.missing >= this.stallChecks ? 'missing' : 'ok';
    }
    this.missing = 0;
    if (moved || k.qlen === 0) {
      this.stuck = 0;
      return 'ok';
    }
    return ++this.stuck >= this.stallChecks ? 'stalled' : 'ok';
  }
}
