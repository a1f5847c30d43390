/**
 * The backend that runs the firewall in this thread: one queue and one connection table
 * (FirewallService), or with --accept-all every queue of the range answered ACCEPT, without
 * a table, rules, control socket or metrics (a data-path diagnostic).
 */
import type { Conntrack } from '../conntrack/core';
import { performance } from 'node:perf_hooks';
import type { TunableValues } from '../conntrack/sysctl';
import type { LoadedRules } from '../pipeline/load-rules';
import type { QueueStats } from '../queue/queue';
import { NF_ACCEPT } from '../queue/layout';
import type { Backend, Started } from './backend';
import { localTable, type TableLink } from './control-ops';
import { nflogHub } from './nflog';
import { nflogBus } from '../rules/nflog-ring';
import type { QueueSpec } from './iptables';
import type { Logger } from './log';
import { snapshotService, type Collected } from './metrics';
import { QueueRunner, type QueueRunnerOptions } from './queue-runner';
import { FirewallService } from './service';
import { exportEntries, exportExpectations, restoreStateFile, type ExpectationData, type StateFileWriter } from './state';

export interface LocalOptions {
  queues: QueueSpec;
  queue: Omit<QueueRunnerOptions, 'queue'>;
  tun: TunableValues;
  log: Logger;
  /** the rules; none: accept-all */
  rules?: LoadedRules;
}

const acceptEverything = (batch: { count: number; verdicts: Uint32Array }) => {
  batch.verdicts.fill(NF_ACCEPT, 0, batch.count);
};

export class LocalBackend implements Backend {
  readonly workers = 0;
  readonly tun: TunableValues;
  readonly tables: TableLink[] = [];
  private readonly svc: FirewallService | undefined;
  private readonly runners: QueueRunner[] = [];

  constructor(private readonly opts: LocalOptions) {
    this.tun = opts.tun;
    if (opts.rules) {
      if (opts.queues.first !== opts.queues.last) throw new Error('one queue per thread: several queues run in worker threads');
      this.svc = new FirewallService({ rules: opts.rules, tun: opts.tun, log: opts.log });
      nflogBus.attach(nflogHub.newRing(), nflogHub.listeners);
      this.tables.push(localTable(this.svc, opts.queues.first));
    }
  }

  /** the connection table (none with --accept-all) */
  get conntrack(): Conntrack | undefined {
    return this.svc?.fw.ct;
  }

  restore(file: string): void {
    if (this.svc) restoreStateFile(this.svc.fw.ct, file, this.opts.log);
  }

  async start(): Promise<Started> {
    const { queues, queue, log } = this.opts;
    const handler = this.svc ? this.svc.handleBatch : acceptEverything;
    try {
      for (let q = queues.first; q <= queues.last; q++) this.runners.push(new QueueRunner({ ...queue, queue: q }, handler, log));
    } catch (err) {
      for (const r of this.runners) r.close();
      this.runners.length = 0;
      throw err;
    }
    for (const r of this.runners) r.start();
    this.svc?.start();
    return { queues: this.runners.map((r) => r.queue), portids: this.runners.map((r) => r.portid), workers: 0 };
  }

  count(): number {
    return this.svc ? this.svc.fw.ct.count : 0;
  }

  async swapRules(r: { rules: LoadedRules }): Promise<{ errors: string[]; batches: number }> {
    this.svc?.setRules(r.rules);
    return { errors: [], batches: 0 };
  }

  batchesHere(): number {
    return this.svc ? this.svc.batches : 0;
  }

  async collect(): Promise<Omit<Collected, 'ruleCount' | 'reloads' | 'reloadFailures'>> {
    if (!this.svc) throw new Error('no table (accept-all)');
    const snap = snapshotService(this.svc);
    snap.queue = this.runners.length === 1 ? this.runners[0].queue : -1;
    return { tun: this.tun, entries: snap.count, tables: [snap], queues: this.runners.map((q) => q.stats()) };
  }

  async stateExpectations(): Promise<ExpectationData[]> {
    return this.svc ? exportExpectations(this.svc.fw.ct, performance.now()) : [];
  }

  async saveInto(w: StateFileWriter): Promise<void> {
    const svc = this.svc;
    if (!svc) return;
    const ct = svc.fw.ct;
    const now = performance.now();
    // in chunks, yielding between them: the queue keeps being read while a periodic save runs
    await exportEntries(
      ct,
      async (lines) => {
        w.writeEntries(lines);
        await new Promise<void>((r) => setImmediate(r));
      },
      () => now,
    );
  }

  async closeQueues(): Promise<QueueStats[]> {
    this.svc?.stop();
    for (const r of this.runners) r.close();
    return this.runners.map((r) => r.stats());
  }

  async close(): Promise<void> {
    this.svc?.stop();
  }
}
