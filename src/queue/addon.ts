/**
 * Loads the native data-path addon (build/Release/nfqwall.node, built by `node-gyp rebuild`,
 * i.e. `npm install` / `npm run build`). Works from the TypeScript sources (tsx) and from dist/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface NativeQueueOptions {
  queue: number;
  copyRange: number;
  maxLen: number;
  batchSize: number;
  rcvbuf: number;
  failOpen: boolean;
  gso: boolean;
}

export interface NativeStats {
  packets: number;
  batches: number;
  recvCalls: number;
  verdictMsgs: number;
  sendmsgCalls: number;
  enobufs: number;
  truncated: number;
  errors: number;
  handlerErrors: number;
  badVerdicts: number;
  sendErrors: number;
  verdictErrors: number;
  recvTruncated: number;
  overflow: number;
  drained: number;
  setupRequeued: number;
}

export interface NativeQueue {
  readonly data: Uint8Array;
  readonly index: Uint32Array;
  readonly verdicts: Uint32Array;
  readonly marks: Uint32Array;
  readonly portid: number;
  readonly closed: boolean;
  readonly bufSize: number;
  stats(): NativeStats;
  close(): void;
  /** Test hook: stop reading the socket while staying bound (a broken poll). */
  debugStopPolling(): void;
}

export interface NativeAddon {
  NfqQueue: new (opts: NativeQueueOptions, onBatch: (count: number) => void, onError: (err: unknown) => void) => NativeQueue;
  INDEX_STRIDE: number;
  MAX_BATCH: number;
  /** sys_tz.tz_minuteswest (gettimeofday): the kernel's timezone, for -m time --kerneltz */
  kernelTimezone(): number;
}

let cached: NativeAddon | undefined;

/** Candidate locations of the compiled addon, nearest first. */
function candidates(): string[] {
  const out: string[] = [];
  if (process.env.NFQWALL_ADDON) out.push(path.resolve(process.env.NFQWALL_ADDON));
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    out.push(path.join(dir, 'build', 'Release', 'nfqwall.node'));
    dir = path.dirname(dir);
  }
  return out;
}

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const tried = candidates();
  for (const p of tried) {
    if (fs.existsSync(p)) {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      cached = require(p) as NativeAddon;
      return cached;
    }
  }
  throw new Error(`native addon nfqwall.node not found (run \`npm run build\`); looked in: ${tried.join(', ')}`);
}
