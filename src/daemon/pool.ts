/**
 * `run --queues A:B` (B > A): the backend with one worker thread per queue (src/daemon/worker.ts),
 * each with its own connection table, rules instance and GC timer. The kernel's --queue-balance
 * sends both directions of a flow (and FTP data connections: same addresses, same protocol) to
 * the same queue, so no flow needs two tables. This main-thread side starts and stops the
 * workers, passes table requests to them (src/daemon/control-ops.ts merges the answers), swaps
 * the rules the daemon has checked into every one, and keeps the restored entries no worker has
 * claimed yet (parked.ts) in a table of its own.
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { Conntrack } from '../conntrack/core';
import { formatConntrack, formatProcConntrack } from '../conntrack/format';
import { createHelpers } from '../conntrack/helpers/registry';
import type { TunableValues } from '../conntrack/sysctl';
import type { LoadedRules } from '../pipeline/load-rules';
import type { QueueStats } from '../queue/queue';
import type { Backend, Started } from './backend';
import type { TableLink } from './control-ops';
import { nflogHub } from './nflog';
import { compileFilter, type CtFilter } from './ct-filter';
import type { QueueSpec } from './iptables';
import type { Logger } from './log';
import type { Collected, ServiceSnapshot } from './metrics';
import { ParkedEntries } from './parked';
import type { QueueRunnerOptions } from './queue-runner';
import { restoreStateFile, type ExpectationData, type StateFileWriter } from './state';
import { CHUNK_ENTRIES, type ControlOutput, type Res } from './table-ops';
import type { WorkerInit } from './worker';
import { WorkerHandle } from './worker-link';
import { rawSocketTransport, type RejectTransport } from '../rules/targets/REJECT';
import { ipsets, type SetDescriptor } from '../rules/sets/registry';

export interface PoolOptions {
  queues: QueueSpec;
  queue: Omit<QueueRunnerOptions, 'queue'>;
  rulesFile: string;
  /** the rules the daemon checked; every worker compiles the same text */
  rules: { text: string };
  tun: TunableValues;
  logLevel: string;
  logPretty: boolean;
  log: Logger;
  testHooks: boolean;
  /** a worker died: the daemon must stop */
  onWorkerLost: (queue: number, why: string) => void;
}

/** The worker entry: compiled JS next to this file, or the TypeScript sources through tsx. */
function workerSource(): string {
  const ext = path.extname(__filename);
  const entry = path.join(__dirname, `worker${ext}`);
  return `${ext === '.ts' ? "require('tsx/cjs');" : ''}require(${JSON.stringify(entry)}).workerMain();`;
}

export class WorkerPool implements Backend {
  readonly handles: WorkerHandle[] = [];
  readonly tables: TableLink[] = [];
  parked: TableLink | undefined;
  readonly tun: TunableValues;
  /** Int32Array over a SharedArrayBuffer: entries of every table (+ parked); nf_conntrack_max bounds it */
  private readonly shared = new Int32Array(new SharedArrayBuffer(4));
  /** the raw sockets the workers' REJECT replies leave by (they work only in this thread) */
  private rejectOut: RejectTransport | undefined;
  private restored: ParkedEntries | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly opts: PoolOptions) {
    this.tun = opts.tun;
  }

  get workers(): number {
    return this.handles.length;
  }

  /** Restored into a table of this thread; the workers claim the entries as their flows show up. */
  restore(file: string): void {
    const ct = new Conntrack({ ...this.tun }, { helpers: createHelpers() });
    restoreStateFile(ct, file, this.opts.log);
    this.restored = new ParkedEntries(ct, this.shared);
    this.parked = parkedLink(this.restored);
  }

  /** Starts every worker and waits until each has bound its queue. */
  async start(): Promise<Started> {
    const opts = this.opts;
    const src = workerSource();
    const started: Promise<void>[] = [];
    for (let q = opts.queues.first, i = 0; q <= opts.queues.last; q++, i++) {
      const init: WorkerInit = {
        index: i,
        queue: { ...opts.queue, queue: q },
        rulesFile: opts.rulesFile,
        rulesText: opts.rules.text,
        tun: { ...opts.tun },
        logLevel: opts.logLevel,
        logPretty: opts.logPretty,
        sharedCount: this.shared.buffer as SharedArrayBuffer,
        restore: this.restored ? { buffers: this.restored.store.buffers, builtAt: this.restored.builtAt } : undefined,
        ipsets: ipsets().descriptors(),
        testHooks: opts.testHooks,
        nflog: { ring: nflogHub.newRing().sab, listeners: nflogHub.listeners },
      };
      const worker = new Worker(src, { eval: true, workerData: init, stdout: false, stderr: false });
      const h = new WorkerHandle(i, q, worker, this.rejectTransport());
      this.handles.push(h);
      this.tables.push({ queue: q, request: (req, out) => h.request(req, (lines) => out.sendLines(lines)) });
      started.push(
        new Promise<void>((resolve, reject) => {
          let ready = false;
          worker.on('message', (m: { t: string; portid?: number; message?: string }) => {
            if (m.t === 'ready') {
              ready = true;
              h.portid = m.portid ?? 0;
              resolve();
            } else if (m.t === 'fatal') reject(new Error(m.message));
          });
          worker.on('error', (err) => {
            if (!ready) reject(err);
            else this.lost(h, `worker thread error: ${err.message}`);
          });
          worker.on('exit', (code) => {
            h.failAll(`the worker thread of queue ${q} is gone`);
            if (!ready) reject(new Error(`the worker thread of queue ${q} exited (${code}) before binding its queue`));
            else this.lost(h, `worker thread exited (${code})`);
          });
        }),
      );
    }
    const results = await Promise.allSettled(started);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) {
      this.stopping = true;
      await Promise.all(this.handles.map((w) => w.worker.terminate()));
      throw failed.reason;
    }
    const parked = this.restored;
    if (parked) {
      this.sweep = setInterval(() => parked.sweep(), 1000);
      this.sweep.unref();
    }
    return { queues: this.handles.map((w) => w.queue), portids: this.handles.map((w) => w.portid), workers: this.handles.length };
  }

  private lost(h: WorkerHandle, why: string): void {
    if (this.stopping) return;
    this.opts.onWorkerLost(h.queue, why);
  }

  private all(req: Res): Promise<Res[]> {
    return Promise.all(this.handles.map((w) => w.request(req)));
  }

  /** The entries of every table plus the restored ones no worker has claimed yet. */
  count(): number {
    return Atomics.load(this.shared, 0);
  }

  async swapRules(r: { text: string }): Promise<{ errors: string[]; batches: number }> {
    const res = await this.all({ op: 'rules.swap', text: r.text });
    const bad = res.find((x) => x.ok !== true);
    const batches = res.reduce((n, x) => n + (typeof x.batches === 'number' ? x.batches : 0), 0);
    return { errors: bad ? ((bad.errors as string[] | undefined) ?? [String(bad.error)]) : [], batches };
  }

  async syncIpsets(sets: SetDescriptor[]): Promise<void> {
    const res = await this.all({ op: 'ipset.sync', sets });
    const bad = res.find((x) => x.ok !== true);
    if (bad) throw new Error(String(bad.error));
  }

  batchesHere(): number {
    return 0;
  }

  async debug(r: Res): Promise<Res> {
    if (!this.opts.testHooks) throw new Error('test hooks are off (NFQWALL_TEST_HOOKS=1)');
    const w = this.handles.find((x) => x.queue === r.queue);
    if (!w) throw new Error(`no worker serves queue ${String(r.queue)}`);
    return w.request(r);
  }

  /** Metrics: every worker's figures (and the queue counters). */
  async collect(): Promise<Omit<Collected, 'ruleCount' | 'reloads' | 'reloadFailures'>> {
    const res = await this.all({ op: 'snapshot' });
    const tables = res.filter((x) => x.ok === true).map((x) => x.snap as ServiceSnapshot);
    return {
      tun: this.tun,
      entries: this.count(),
      tables,
      queues: tables.map((t) => t.queueStats).filter((q): q is QueueStats => q !== undefined),
    };
  }

  async stateExpectations(savedAt: number): Promise<ExpectationData[]> {
    const exps: ExpectationData[] = [];
    for (const r of await this.all({ op: 'state.expectations' })) {
      if (r.ok !== true) throw new Error(String(r.error));
      exps.push(...(r.expectations as ExpectationData[]));
    }
    if (this.restored) exps.push(...this.restored.exportForSave(savedAt).exps);
    return exps;
  }

  /** Every worker's table (streamed in chunks) and the unclaimed restored entries. */
  async saveInto(w: StateFileWriter, savedAt: number): Promise<void> {
    for (const h of this.handles) {
      const r = await h.request({ op: 'state.export' }, async (lines) => w.writeEntries(lines));
      if (r.ok !== true) throw new Error(`queue ${h.queue}: ${String(r.error)}`);
    }
    if (this.restored) w.writeEntries(this.restored.exportForSave(savedAt).lines);
  }

  /** Every worker closes its queue (the kernel gets a verdict for each packet it holds); the tables stay for the final save. */
  async closeQueues(): Promise<QueueStats[]> {
    this.stopping = true;
    if (this.sweep) clearInterval(this.sweep);
    await Promise.all(this.handles.map((w) => w.close()));
    return this.handles.map((w) => w.closedStats).filter((s): s is QueueStats => s !== undefined);
  }

  private rejectTransport(): RejectTransport {
    const log = this.opts.log;
    this.rejectOut ??= rawSocketTransport((e) => log.warn(`REJECT: ${e.message}`));
    return this.rejectOut;
  }

  /** Ends the worker threads (after closeQueues and the final save). */
  async close(): Promise<void> {
    this.stopping = true;
    this.rejectOut?.close();
    await Promise.all(
      this.handles.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.dead) return resolve();
            const t = setTimeout(() => void w.worker.terminate().then(() => resolve()), 5000);
            w.worker.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            w.worker.postMessage({ t: 'exit' });
          }),
      ),
    );
  }
}

/** The restored entries no worker has claimed, as a table the control requests list, count and delete. */
function parkedLink(parked: ParkedEntries): TableLink {
  const ct = parked.ct;
  const send = async (out: ControlOutput, lines: string[]) => {
    for (let i = 0; i < lines.length; i += CHUNK_ENTRIES) await out.sendLines(lines.slice(i, i + CHUNK_ENTRIES));
    return { ok: true, count: lines.length };
  };
  return {
    queue: -1,
    async request(r, out) {
      const now = performance.now();
      switch (r.op) {
        case 'ct.list': {
          const fmt = (e: number) => (r.proc === true ? formatProcConntrack(ct, e, now) : formatConntrack(ct, e, now, r.extended === true));
          return send(out, parked.select(compileFilter(ct, r.filter as CtFilter)).map(fmt));
        }
        case 'ct.delete':
        case 'ct.flush': {
          // -D streams the deleted entries, -F only counts them (as the tables do)
          const ids = parked.select(compileFilter(ct, r.op === 'ct.flush' ? {} : (r.filter as CtFilter)));
          const lines = r.op === 'ct.delete' ? ids.map((e) => formatConntrack(ct, e, now, false)) : [];
          const gone = parked.delete(ids);
          await send(
            out,
            lines.filter((_, k) => gone.has(ids[k])),
          );
          return { ok: true, count: gone.size };
        }
        case 'expect.list':
          return send(out, parked.expectLines());
        case 'ct.count':
          return { ok: true, count: parked.count() };
        default:
          return { ok: false, error: `unknown op ${JSON.stringify(r.op)}` };
      }
    },
  };
}
