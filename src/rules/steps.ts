/**
 * Long computations (parsing and compiling a rule file) written once as generators that
 * yield between slices of work, run either at once (the first load, `nfqwall check`) or
 * slice by slice with the event loop turning in between (a reload, so the queue of the thread
 * that compiles keeps being read: no batch waits for the whole compile).
 */
export type Steps<T> = Generator<void, T, void>;

/** work items (lines, rules) per slice */
export const SLICE = 1024;

/** Runs every step now. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs one slice per event-loop turn (setImmediate: pending I/O, e.g. a queue's batches, runs between slices). */
export function runStepsSliced<T>(steps: Steps<T>, onSlice?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const slice = (): void => {
      try {
        const r = steps.next();
        if (r.done) return resolve(r.value);
        onSlice?.();
        setImmediate(slice);
      } catch (err) {
        reject(err);
      }
    };
    slice();
  });
}
