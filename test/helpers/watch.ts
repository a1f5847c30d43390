/** Collects a child process's output and waits for a marker in it (shared by the e2e tests). */
import type { ChildProcess } from 'node:child_process';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface WatchDefaults {
  /** the stream waitFor() reads when none is given (default 'out') */
  where?: 'out' | 'err';
  /** how long waitFor() waits when no timeout is given (default 20 s; Infinity: until the process exits) */
  timeoutMs?: number;
}

export function watch(child: ChildProcess, defaults: WatchDefaults = {}) {
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    exited,
    async waitFor(re: RegExp, where: 'out' | 'err' = defaults.where ?? 'out', timeoutMs = defaults.timeoutMs ?? 20_000): Promise<void> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        if (re.test(where === 'out' ? out : err)) return;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${out}\n${err}`);
        }
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}: ${out}\n${err}`);
        await sleep(20);
      }
    },
  };
}

export type Watched = ReturnType<typeof watch>;
