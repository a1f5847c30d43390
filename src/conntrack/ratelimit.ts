/**
 * The kernel's net_ratelimit() (lib/ratelimit.c ___ratelimit with
 * net.core.message_cost = 5 s and net.core.message_burst = 10): up to `burst`
 * messages per window; messages beyond that are counted, and the first call
 * after the window has passed first reports
 * `net_ratelimit: N callbacks suppressed`.
 * The kernel shares one limiter among all net_*_ratelimited() callers; a
 * Conntrack instance shares one among its messages the same way.
 */
export interface WarnLog {
  warn(msg: string): void;
}

export class RateLimiter {
  private begin = -1;
  private printed = 0;
  private missed = 0;

  constructor(
    readonly intervalMs = 5000,
    readonly burst = 10,
  ) {}

  /** May a message be printed now? Logs the suppressed count through `log` when a window closes. */
  allow(now: number, log: WarnLog | undefined): boolean {
    if (this.begin < 0) this.begin = now;
    if (this.begin + this.intervalMs < now) {
      if (this.missed > 0) {
        log?.warn(`net_ratelimit: ${this.missed} callbacks suppressed`);
        this.missed = 0;
      }
      this.begin = now;
      this.printed = 0;
    }
    if (this.burst > this.printed) {
      this.printed++;
      return true;
    }
    this.missed++;
    return false;
  }

  /** Log msg through the limiter. */
  warn(now: number, log: WarnLog | undefined, msg: string): void {
    if (this.allow(now, log)) log?.warn(msg);
  }
}
