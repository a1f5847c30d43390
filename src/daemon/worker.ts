/**
 * One worker thread of `run --queues A:B`: one queue, its own FirewallService (connection
 * table, rules instance, GC timer), its own pino logger (same destination, `queue` field).
 * The main thread talks to it over parentPort (src/daemon/pool.ts has the other end):
 *
 * ipset.sync gives the thread the daemon's list of ipsets (their elements are shared memory).
 *
 *   in:  {t:'req', id, req}  {t:'ack', id, abort?}  {t:'close'}  {t:'exit'}
 *   out: {t:'ready', portid}  {t:'fatal', message, code?}  {t:'lines', id, lines}
 *        {t:'done', id, res}  {t:'closed', stats}  {t:'reject', socket, bytes, dst} (a REJECT reply for
 *        the main thread to send: raw sockets work only there)
 *
 * A request's streamed lines wait for the main thread's ack before the next chunk is made,
 * so a long listing never piles up in memory and a slow reader holds back only itself.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { ControlAborted, TableOps, type ControlOutput } from './table-ops';
import { createLogger } from './log';
import { FirewallService, ruleDeps } from './service';
import { NflogRing, nflogBus } from '../rules/nflog-ring';
import { readRules, readRulesSliced, RuleLoadError, setThreadRejectTransport } from '../pipeline/load-rules';
import type { RejectTransport } from '../rules/targets/REJECT';
import { QueueRunner, type QueueRunnerOptions } from './queue-runner';
import { RestoreStore, type RestoreStoreBuffers } from './restore-store';
import { exportEntries, importExpectation, exportExpectations, type ExpectationData } from './state';
import { snapshotService } from './metrics';
import type { TunableValues } from '../conntrack/sysctl';
import type { ConntrackEntryData } from '../conntrack/ops';
import { TUPLE_WORDS } from '../conntrack/layout';
import { ipsets, type SetDescriptor } from '../rules/sets/registry';

export interface WorkerInit {
  /** 0-based worker number (the `cpu=` of conntrack -S) */
  index: number;
  queue: QueueRunnerOptions;
  rulesFile: string;
  rulesText: string;
  tun: TunableValues;
  logLevel: string;
  logPretty: boolean;
  /** Int32Array cell 0: entries of every table (nf_conntrack_max bounds it) */
  sharedCount: SharedArrayBuffer;
  restore?: { buffers: RestoreStoreBuffers; builtAt: number };
  /** the daemon's ipsets (shared storage), before the rules that name them are compiled */
  ipsets: SetDescriptor[];
  testHooks: boolean;
  /** this worker's -j NFLOG ring and the shared readers-per-group table (src/rules/nflog-ring.ts) */
  nflog: { ring: SharedArrayBuffer; listeners: SharedArrayBuffer };
}

/** REJECT replies of this worker go to the main thread, which sends them (pool.ts). */
function workerRejectTransport(port: NonNullable<typeof parentPort>): RejectTransport {
  return {
    send(socket, buf, off, len, dst) {
      const bytes = buf.slice(off, off + len);
      port.postMessage({ t: 'reject', socket, bytes, dst }, [bytes.buffer]);
    },
    close() {},
  };
}

/** What a restored entry carries in the store (src/daemon/restore-store.ts). */
export interface RestorePayload {
  entry: ConntrackEntryData;
  exps: ExpectationData[];
}

type Msg = { t: 'req'; id: number; req: Record<string, unknown> } | { t: 'ack'; id: number; abort?: boolean } | { t: 'close' } | { t: 'exit' };

export function workerMain(): void {
  const port = parentPort!;
  const init = workerData as WorkerInit;
  const log = createLogger({ level: init.logLevel, pretty: init.logPretty }).child({ queue: init.queue.queue });
  let svc: FirewallService;
  ipsets().adopt(init.ipsets);
  setThreadRejectTransport(workerRejectTransport(port));
  try {
    svc = new FirewallService({ rules: readRules(init.rulesFile, ruleDeps(log), init.rulesText).rules, tun: init.tun, log });
  } catch (err) {
    const msg = err instanceof RuleLoadError ? err.errors.join('\n') : (err as Error).message;
    port.postMessage({ t: 'fatal', message: msg });
    return;
  }
  nflogBus.attach(new NflogRing(init.nflog.ring), init.nflog.listeners);
  const ct = svc.fw.ct;
  ct.attachSharedCount(new Int32Array(init.sharedCount));
  if (init.restore) attachRestore(svc, init.index, init.restore, new Int32Array(init.sharedCount));

  let runner: QueueRunner;
  try {
    runner = new QueueRunner(init.queue, svc.handleBatch, log);
  } catch (err) {
    port.postMessage({ t: 'fatal', message: (err as Error).message, code: (err as { code?: string }).code });
    return;
  }
  svc.start();
  runner.start();
  port.postMessage({ t: 'ready', portid: runner.portid });

  const table = new TableOps(svc);
  const acks = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  const output = (id: number): ControlOutput => ({
    alive: true,
    sendLines(lines: string[]): Promise<void> {
      if (lines.length === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        acks.set(id, { resolve, reject });
        port.postMessage({ t: 'lines', id, lines });
      });
    },
  });

  const handle = async (id: number, req: Record<string, unknown>): Promise<Record<string, unknown>> => {
    switch (req.op) {
      case 'rules.swap':
        try {
          // compiled in slices between this worker's batches; swapped in between two of them
          const before = svc.batches;
          svc.setRules((await readRulesSliced(init.rulesFile, ruleDeps(log), String(req.text))).rules);
          return { ok: true, batches: svc.batches - before };
        } catch (err) {
          return { ok: false, errors: err instanceof RuleLoadError ? err.errors : [(err as Error).message] };
        }
      case 'ipset.sync':
        ipsets().adopt(req.sets as SetDescriptor[]);
        return { ok: true };
      case 'snapshot':
        return { ok: true, snap: snapshotService(svc, runner) };
      case 'state.export': {
        const now = performance.now();
        const out = output(id);
        await exportEntries(
          ct,
          (lines) => out.sendLines(lines),
          () => now,
        );
        return { ok: true };
      }
      case 'state.expectations':
        return { ok: true, expectations: exportExpectations(ct, performance.now()) };
      case 'debug.crash':
        if (!init.testHooks) throw new Error('test hooks are off (NFQWALL_TEST_HOOKS=1)');
        setImmediate(() => {
          throw new Error('test hook: worker thread crash');
        });
        return { ok: true };
      case 'debug.stall':
        if (!init.testHooks) throw new Error('test hooks are off (NFQWALL_TEST_HOOKS=1)');
        runner.debugStopPolling();
        log.warn('test hook: the queue socket is no longer read');
        return { ok: true };
      default:
        return (await table.handle(req, output(id))) ?? { ok: false, error: `unknown op ${JSON.stringify(req.op)}` };
    }
  };

  port.on('message', (m: Msg) => {
    switch (m.t) {
      case 'req':
        handle(m.id, m.req).then(
          (res) => port.postMessage({ t: 'done', id: m.id, res }),
          (err: Error) => {
            acks.delete(m.id);
            port.postMessage({ t: 'done', id: m.id, res: { ok: false, error: err instanceof ControlAborted ? 'aborted' : err.message } });
          },
        );
        break;
      case 'ack': {
        const a = acks.get(m.id);
        acks.delete(m.id);
        if (a) {
          if (m.abort) a.reject(new ControlAborted());
          else a.resolve();
        }
        break;
      }
      case 'close':
        // the queue answers what it holds and unbinds; the table stays for the final save
        svc.stop();
        runner.close();
        port.postMessage({ t: 'closed', stats: runner.stats() });
        break;
      case 'exit':
        port.close();
        break;
    }
  });
}

/** Restored entries: claimed from the shared store when this worker first sees their flow. */
function attachRestore(svc: FirewallService, index: number, r: { buffers: RestoreStoreBuffers; builtAt: number }, shared: Int32Array): void {
  const store = RestoreStore.attach(r.buffers);
  const ct = svc.fw.ct;
  const saved = new Uint32Array(TUPLE_WORDS);
  ct.claimer = (key, now) => {
    if (store.unclaimed() === 0) return false;
    const i = store.find(key);
    if (i < 0) return false;
    const wall = Date.now();
    const left = store.expiresAt(i) - wall;
    if (!(left > 0) || !store.claim(i, index)) return false;
    // the store's share of the global count passes to this table (importEntry counts it again)
    Atomics.sub(shared, 0, 1);
    saved.set(key);
    try {
      const p = JSON.parse(store.payload(i)) as RestorePayload;
      const since = wall - r.builtAt;
      const e = ct.importEntry({ ...p.entry, timeoutMs: left, ageMs: (Number(p.entry.ageMs) || 0) + since }, now);
      if (e < 0) return false;
      for (const x of p.exps) importExpectation(ct, x, Number(x.timeoutMs) - since, now);
      return true;
    } finally {
      key.set(saved);
    }
  };
}
