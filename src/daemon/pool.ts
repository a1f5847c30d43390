/**
 * `run --queues A:B` (B > A): one worker thread per queue (src/daemon/worker.ts), each with
 * its own connection table, rules instance and GC timer. The kernel's --queue-balance sends
 * both directions of a flow (and FTP data connections: same addresses, same protocol) to
 * the same queue, so no flow needs two tables. This main-thread side starts and stops the
 * workers and answers the control socket by fanning each request out and merging the
 * answers: listings concatenated (streamed per worker chunk by chunk), counts summed,
 * `conntrack -S` one cpu= line per worker, `rules -L -v` counters summed, sysctl and reload
 * applied to every worker (reload: parsed here first; an invalid file changes nobody).
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { compileFilter, ControlAborted, CHUNK_ENTRIES, type ControlBackend, type ControlOutput, type CtFilter } from './control';
import { formatConntrack, formatProcConntrack, formatStats } from '../conntrack/format';
import type { ConntrackStats } from '../conntrack/core';
import { applySetting } from '../conntrack/settings';
import { findSysctl, SYSCTLS, type TunableValues } from '../conntrack/sysctl';
import { readRules, RuleLoadError, type LoadedRules } from '../pipeline/load-rules';
import type { Counters } from '../rules';
import { ruleDeps } from './service';
import type { QueueStats } from '../queue/queue';
import type { Collected, ServiceSnapshot } from './metrics';
import type { ParkedEntries } from './parked';
import { StateFileWriter, type ExpectationData } from './state';
import type { QueueRunnerOptions } from './queue-runner';
import type { WorkerInit } from './worker';
import type { Logger } from './log';

type Res = Record<string, unknown>;

interface Pending {
  onLines?: (lines: string[]) => Promise<void>;
  resolve: (r: Res) => void;
}

class WorkerHandle {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  portid = 0;
  closedStats: QueueStats | undefined;
  /** the thread has exited: nothing is asked of it any more */
  dead = false;
  private onClosed: (() => void) | undefined;

  constructor(
    readonly index: number,
    readonly queue: number,
    readonly worker: Worker,
  ) {
    worker.on('message', (m: { t: string; id?: number; lines?: string[]; res?: Res; stats?: QueueStats }) => {
      if (m.t === 'lines') void this.relay(m.id!, m.lines!);
      else if (m.t === 'done') {
        const p = this.pending.get(m.id!);
        this.pending.delete(m.id!);
        p?.resolve(m.res!);
      } else if (m.t === 'closed') {
        this.closedStats = m.stats;
        this.onClosed?.();
      }
    });
  }

  private async relay(id: number, lines: string[]): Promise<void> {
    const p = this.pending.get(id);
    let abort = false;
    try {
      if (p?.onLines) await p.onLines(lines);
    } catch {
      abort = true;
    }
    this.worker.postMessage({ t: 'ack', id, abort });
  }

  /** One request; streamed lines go to onLines (the worker waits for each chunk to be taken). */
  request(req: Res, onLines?: (lines: string[]) => Promise<void>): Promise<Res> {
    if (this.dead) return Promise.resolve({ ok: false, error: `the worker thread of queue ${this.queue} is gone` });
    const id = this.nextId++;
    return new Promise<Res>((resolve) => {
      this.pending.set(id, { onLines, resolve });
      this.worker.postMessage({ t: 'req', id, req });
    });
  }

  /** Fails what is still waiting (the worker is gone). */
  failAll(why: string): void {
    this.dead = true;
    for (const p of this.pending.values()) p.resolve({ ok: false, error: why });
    this.pending.clear();
    this.onClosed?.();
  }

  close(): Promise<void> {
    if (this.closedStats || this.dead) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.onClosed = resolve;
      this.worker.postMessage({ t: 'close' });
    });
  }
}

export interface PoolOptions {
  queues: { first: number; last: number };
  queue: Omit<QueueRunnerOptions, 'queue'>;
  rulesFile: string;
  tun: TunableValues;
  logLevel: string;
  logPretty: boolean;
  log: Logger;
  parked?: ParkedEntries;
  /** Int32Array over a SharedArrayBuffer: entries of every table (+ parked) */
  sharedCount: Int32Array;
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

export class WorkerPool implements ControlBackend {
  readonly workers: WorkerHandle[] = [];
  reloads = 0;
  reloadFailures = 0;
  /** the rules as last applied to every worker: text, and a parsed copy for `rules -L` */
  private rules: { text: string; rules: LoadedRules };
  /** reload and `rules -L -v` one at a time (counters of one rule generation) */
  private serial: Promise<unknown> = Promise.resolve();
  private stopping = false;

  private constructor(
    private readonly opts: PoolOptions,
    rules: { text: string; rules: LoadedRules },
  ) {
    this.rules = rules;
  }

  /** Reads and checks the rule file (throws RuleLoadError), starts every worker and waits until each has bound its queue. */
  static async start(opts: PoolOptions): Promise<WorkerPool> {
    const rules = readRules(opts.rulesFile, ruleDeps(opts.log));
    const pool = new WorkerPool(opts, rules);
    const src = workerSource();
    const started: Promise<void>[] = [];
    for (let q = opts.queues.first, i = 0; q <= opts.queues.last; q++, i++) {
      const init: WorkerInit = {
        index: i,
        queue: { ...opts.queue, queue: q },
        rulesFile: opts.rulesFile,
        rulesText: rules.text,
        tun: { ...opts.tun },
        logLevel: opts.logLevel,
        logPretty: opts.logPretty,
        sharedCount: opts.sharedCount.buffer as SharedArrayBuffer,
        restore: opts.parked ? { buffers: opts.parked.store.buffers, builtAt: opts.parked.builtAt } : undefined,
        testHooks: opts.testHooks,
      };
      const worker = new Worker(src, { eval: true, workerData: init, stdout: false, stderr: false });
      const h = new WorkerHandle(i, q, worker);
      pool.workers.push(h);
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
            else pool.lost(h, `worker thread error: ${err.message}`);
          });
          worker.on('exit', (code) => {
            h.failAll(`the worker thread of queue ${q} is gone`);
            if (!ready) reject(new Error(`the worker thread of queue ${q} exited (${code}) before binding its queue`));
            else pool.lost(h, `worker thread exited (${code})`);
          });
        }),
      );
    }
    const results = await Promise.allSettled(started);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) {
      pool.stopping = true;
      await Promise.all(pool.workers.map((w) => w.worker.terminate()));
      throw failed.reason;
    }
    return pool;
  }

  private lost(h: WorkerHandle, why: string): void {
    if (this.stopping) return;
    this.opts.onWorkerLost(h.queue, why);
  }

  get portids(): number[] {
    return this.workers.map((w) => w.portid);
  }

  /** Every worker closes its queue (the kernel gets a verdict for each packet it holds); the tables stay for the final save. */
  async closeQueues(): Promise<QueueStats[]> {
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w.close()));
    return this.workers.map((w) => w.closedStats).filter((s): s is QueueStats => s !== undefined);
  }

  /** Ends the worker threads (after closeQueues and the final save). */
  async exit(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.workers.map(
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

  private all(req: Res): Promise<Res[]> {
    return Promise.all(this.workers.map((w) => w.request(req)));
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.serial.then(fn, fn);
    this.serial = p.catch(() => undefined);
    return p;
  }

  /** The entries of every table plus the restored ones no worker has claimed yet. */
  globalCount(): number {
    return Atomics.load(this.opts.sharedCount, 0);
  }

  /** Reload: the file is read and parsed here once; only a valid file goes to the workers. */
  reload(): Promise<{ ok: boolean; errors: string[] }> {
    return this.exclusive(async () => {
      const log = this.opts.log;
      let next: { text: string; rules: LoadedRules };
      try {
        next = readRules(this.opts.rulesFile, ruleDeps(log));
      } catch (err) {
        const errors = err instanceof RuleLoadError ? err.errors : [(err as Error).message];
        this.reloadFailures++;
        log.error({ file: this.opts.rulesFile, errors }, 'reload refused: the rule file is invalid; the old rules stay in force');
        return { ok: false, errors };
      }
      const res = await this.all({ op: 'rules.swap', text: next.text });
      const bad = res.find((r) => r.ok !== true);
      if (bad) {
        // cannot happen with the same parser; say so loudly if it does
        this.reloadFailures++;
        const errors = (bad.errors as string[] | undefined) ?? [String(bad.error)];
        log.error({ file: this.opts.rulesFile, errors }, 'reload failed in a worker thread; the workers may now run different rules');
        return { ok: false, errors };
      }
      this.rules = next;
      this.reloads++;
      log.info({ file: this.opts.rulesFile, rules: next.rules.ruleCount, workers: this.workers.length }, 'rules reloaded');
      return { ok: true, errors: [] };
    });
  }

  /** `rules -L -v`: every worker's counters summed, formatted with the main thread's copy of the rules. */
  private rulesText(verbose: boolean): Promise<string> {
    return this.exclusive(async () => {
      const loaded = this.rules.rules;
      if (!verbose) return loaded.format(false);
      const res = await this.all({ op: 'rules.counters' });
      const own = loaded.counters;
      const c: Counters = {
        rulePkts: new Float64Array(own.rulePkts.length),
        ruleBytes: new Float64Array(own.ruleBytes.length),
        chainPkts: new Float64Array(own.chainPkts.length),
        chainBytes: new Float64Array(own.chainBytes.length),
      };
      for (const k of ['rulePkts', 'ruleBytes', 'chainPkts', 'chainBytes'] as (keyof Counters)[]) {
        const into = c[k];
        for (const r of res) {
          const from = r[k] as number[] | undefined;
          if (!from) throw new Error(String(r.error ?? 'a worker did not answer'));
          for (let i = 0; i < into.length && i < from.length; i++) into[i] += from[i];
        }
      }
      return loaded.format(true, c);
    });
  }

  /** Streams every worker's answer to req (one worker after the other), then `extra`; sums `count`. */
  private async concat(req: Res, out: ControlOutput, extra?: () => { lines: string[]; count: number }): Promise<Res> {
    let count = 0;
    const relay = (lines: string[]) => out.sendLines(lines);
    for (const w of this.workers) {
      const r = await w.request(req, relay);
      if (r.ok !== true) {
        if (r.error === 'aborted') throw new ControlAborted();
        throw new Error(String(r.error));
      }
      count += Number(r.count) || 0;
    }
    if (extra) {
      const { lines, count: n } = extra();
      for (let i = 0; i < lines.length; i += CHUNK_ENTRIES) await out.sendLines(lines.slice(i, i + CHUNK_ENTRIES));
      count += n;
    }
    return { ok: true, count };
  }

  async handle(r: Res, out: ControlOutput): Promise<Res> {
    const parked = this.opts.parked;
    const log = this.opts.log;
    switch (r.op) {
      case 'ct.list': {
        const extended = r.extended === true;
        const proc = r.proc === true;
        const fmt = (e: number, now: number) => (proc ? formatProcConntrack(parked!.ct, e, now) : formatConntrack(parked!.ct, e, now, extended));
        return this.concat(r, out, parked ? () => parkedLines(parked, r.filter as CtFilter, fmt) : undefined);
      }
      case 'ct.delete':
      case 'ct.flush': {
        const res = await this.concat(
          r,
          out,
          parked ? () => deleteParked(parked, r.op === 'ct.flush' ? {} : (r.filter as CtFilter), r.op === 'ct.delete') : undefined,
        );
        if (res.ok === true) log.info({ deleted: res.count, filter: r.filter }, r.op === 'ct.flush' ? 'conntrack table flushed' : 'conntrack entries deleted');
        return res;
      }
      case 'expect.list':
        return this.concat(
          r,
          out,
          parked
            ? () => {
                const lines = parked.expectLines();
                return { lines, count: lines.length };
              }
            : undefined,
        );
      case 'ct.count': {
        const res = await this.all(r);
        return { ok: true, count: res.reduce((a, x) => a + (Number(x.count) || 0), 0) + (parked?.count() ?? 0) };
      }
      case 'expect.flush': {
        const res = await this.all(r);
        const n = res.reduce((a, x) => a + (Number(x.count) || 0), 0);
        log.info({ deleted: n }, 'expectation table flushed');
        return { ok: true, count: n };
      }
      case 'ct.stats': {
        const res = await this.all(r);
        const per = res.map((x) => x.stats as ConntrackStats);
        const total = { ...per[0] };
        for (const s of per.slice(1)) for (const k of Object.keys(total) as (keyof ConntrackStats)[]) total[k] += s[k];
        return {
          ok: true,
          line: per.map((s, i) => formatStats(s, i)).join('\n'),
          stats: total,
          perWorker: per.map((s, i) => ({ cpu: i, queue: this.workers[i].queue, ...s })),
          count: this.globalCount(),
        };
      }
      case 'rules.list': {
        const text = await this.rulesText(r.verbose === true);
        const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
        for (let i = 0; i < lines.length; i += CHUNK_ENTRIES) await out.sendLines(lines.slice(i, i + CHUNK_ENTRIES));
        return { ok: true };
      }
      case 'sysctl.get': {
        const value = (key: keyof TunableValues) => (key === 'nf_conntrack_count' ? this.globalCount() : this.opts.tun[key]);
        if (r.name === undefined || r.name === null) return { ok: true, values: SYSCTLS.map((d) => [d.name, value(d.key)]) };
        if (typeof r.name !== 'string') throw new Error('name must be a string');
        const d = findSysctl(r.name);
        if (!d) throw new Error(`unknown tunable '${r.name}'`);
        return { ok: true, values: [[d.name, value(d.key)]] };
      }
      case 'sysctl.set': {
        if (typeof r.name !== 'string' || (typeof r.value !== 'string' && typeof r.value !== 'number')) throw new Error('sysctl.set needs name and value');
        // checked on a copy first: an invalid value changes nobody
        const err = applySetting({ ...this.opts.tun }, `${r.name}=${r.value}`);
        if (err) throw new Error(err);
        const res = await this.all(r);
        const bad = res.find((x) => x.ok !== true);
        if (bad) throw new Error(String(bad.error));
        applySetting(this.opts.tun, `${r.name}=${r.value}`);
        const d = findSysctl(r.name)!;
        log.info({ name: d.name, value: this.opts.tun[d.key], workers: this.workers.length }, 'tunable set');
        return { ok: true, values: [[d.name, this.opts.tun[d.key]]] };
      }
      case 'recent': {
        // each worker has its own lists: names are merged, lines listed worker by worker, a write goes to all
        if (r.name === undefined || r.name === null) {
          const res = await this.all(r);
          const bad = res.find((x) => x.ok !== true);
          if (bad) throw new Error(String(bad.error));
          return { ok: true, names: [...new Set(res.flatMap((x) => x.names as string[]))] };
        }
        if (r.write === undefined || r.write === null) return this.concat(r, out);
        const res = await this.all(r);
        const bad = res.find((x) => x.ok !== true);
        if (bad) throw new Error(String(bad.error));
        return { ok: true };
      }
      case 'reload': {
        const res = await this.reload();
        return res.ok ? { ok: true } : { ok: false, error: 'the rule file is invalid; the old rules stay in force', errors: res.errors };
      }
      case 'debug.crash':
      case 'debug.stall': {
        if (!this.opts.testHooks) throw new Error('test hooks are off (NFQWALL_TEST_HOOKS=1)');
        const w = this.workers.find((x) => x.queue === r.queue);
        if (!w) throw new Error(`no worker serves queue ${String(r.queue)}`);
        return w.request(r);
      }
      default:
        throw new Error(`unknown op ${JSON.stringify(r.op)}`);
    }
  }

  /** Metrics: every worker's figures (and the queue counters) merged by the registry. */
  async collect(): Promise<Collected> {
    const res = await this.all({ op: 'snapshot' });
    const tables = res.filter((x) => x.ok === true).map((x) => x.snap as ServiceSnapshot);
    return {
      tun: this.opts.tun,
      entries: this.globalCount(),
      tables,
      queues: tables.map((t) => t.queueStats).filter((q): q is QueueStats => q !== undefined),
      ruleCount: this.rules.rules.ruleCount,
      reloads: this.reloads,
      reloadFailures: this.reloadFailures,
    };
  }

  /** One state file from every worker's table (streamed in chunks) and the unclaimed restored entries. */
  async saveState(file: string): Promise<{ entries: number; expectations: number }> {
    const savedAt = Date.now();
    const w = new StateFileWriter(file, savedAt, this.globalCount());
    try {
      const exps: ExpectationData[] = [];
      for (const h of this.workers) {
        const r = await h.request({ op: 'state.export' }, async (lines) => w.writeEntries(lines));
        if (r.ok !== true) throw new Error(`queue ${h.queue}: ${String(r.error)}`);
        exps.push(...(r.expectations as ExpectationData[]));
      }
      if (this.opts.parked) {
        const p = this.opts.parked.exportForSave(savedAt);
        w.writeEntries(p.lines);
        exps.push(...p.exps);
      }
      return w.finish(exps);
    } catch (err) {
      w.abort();
      throw err;
    }
  }
}

function parkedLines(parked: ParkedEntries, filter: CtFilter | undefined, fmt: (e: number, now: number) => string): { lines: string[]; count: number } {
  const now = performance.now();
  const lines = parked.select(compileFilter(parked.ct, filter)).map((e) => fmt(e, now));
  return { lines, count: lines.length };
}

/** -D streams the deleted entries, -F only counts them (as TableControl does). */
function deleteParked(parked: ParkedEntries, filter: CtFilter | undefined, show: boolean): { lines: string[]; count: number } {
  const now = performance.now();
  const ids = parked.select(compileFilter(parked.ct, filter));
  const lines = show ? ids.map((e) => formatConntrack(parked.ct, e, now, false)) : [];
  const gone = parked.delete(ids);
  return { lines: show ? lines.filter((_, k) => gone.has(ids[k])) : [], count: gone.size };
}
