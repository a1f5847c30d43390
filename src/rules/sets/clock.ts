/**
 * The clock of set timeouts, shared by every thread: each thread's `now` (performance.now(),
 * counted from the thread's own start) plus its performance.timeOrigin, so that an element
 * added in one worker expires at the same moment for all. Everything on the packet path takes
 * the thread's `now` and adds CLOCK_BASE[0] where it compares or stores (a shared time passed
 * between calls would be a heap number per packet). Tests set the base to 0 and pass fake time.
 */
import { performance } from 'node:perf_hooks';

/** [0]: the base; a typed array, whose element loads are unboxed (an object's double field read on the packet path allocated) */
export const CLOCK_BASE = new Float64Array([performance.timeOrigin]);

export function setClockBase(b: number): void {
  CLOCK_BASE[0] = b;
}
