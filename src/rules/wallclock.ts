/**
 * Wall-clock time for the rules that need it (-m time): xt_time reads ktime_get_real_seconds()
 * and the kernel's timezone (sys_tz, set by settimeofday) for every packet, but `now` on
 * nfqwall's packet path is a monotonic clock in ms (docs/ARCHITECTURE.md, "Time"). The
 * pipeline samples, once per batch, the offset that turns that `now` into wall-clock ms and,
 * when a loaded rule asks for it (--kerneltz), sys_tz.tz_minuteswest; a match adds the offset
 * to the `now` it is given. No clock read or allocation per packet; a step of the wall clock
 * (settimeofday, NTP) is seen from the next batch on. One per thread (workers have their own).
 * Tests and `replay` (whose `now` already is the capture's wall-clock time) set it directly.
 */
export class WallClock {
  /** [0]: ms to add to the monotonic `now` for wall-clock ms; [1]: sys_tz.tz_minuteswest */
  readonly v = new Float64Array(2);
  /** reads sys_tz.tz_minuteswest (the addon's gettimeofday); set by whoever runs a queue */
  tzReader: (() => number) | null = null;
  /** set while a loaded rule needs the kernel's timezone */
  wantTz = false;
  /** true while set() holds the clock (tests, replay): sample() leaves it alone */
  private fixed = false;

  /** Once per batch, with the `now` the batch is decided at. */
  sample(now: number): void {
    if (this.fixed) return;
    this.v[0] = Date.now() - now;
    if (this.wantTz && this.tzReader !== null) this.v[1] = this.tzReader();
  }

  /** Fixes the clock: wall-clock ms = now + offsetMs; the kernel's timezone minutesWest. */
  set(offsetMs: number, minutesWest = 0): void {
    this.fixed = true;
    this.v[0] = offsetMs;
    this.v[1] = minutesWest;
  }

  /** Back to sampling the real clock. */
  release(): void {
    this.fixed = false;
  }
}

/** This thread's clock. */
export const wallClock = new WallClock();
