/**
 * One connection table as the daemon runs it: the tunables, the table, the rules in force
 * on it, the batch handler for its queue and the periodic expiry sweep. The daemon's own
 * thread has one (src/daemon/local.ts), each worker thread one (src/daemon/worker.ts); the
 * control requests, metrics and state file read and change it.
 */
import { performance } from 'node:perf_hooks';
import { Firewall } from '../pipeline/firewall';
import { ifaceAddrs } from '../rules/iface-addrs';
import type { LoadedRules, RuleDeps } from '../pipeline/load-rules';
import type { TunableValues } from '../conntrack/sysctl';
import type { Batch } from '../queue/queue';
import type { Logger } from './log';
import { loadAddon } from '../queue/addon';
import { wallClock } from '../rules/wallclock';

export interface ServiceOptions {
  /** the rules, compiled by the one loader (src/pipeline/load-rules.ts readRules) */
  rules: LoadedRules;
  tun: TunableValues;
  log: Logger;
  /** GC tick interval in ms (default 100) and buckets scanned per tick (default 8192). */
  gcIntervalMs?: number;
  gcBucketsPerTick?: number;
}

/** What the daemon's rules need: -j LOG lines go to the daemon's log. */
export function ruleDeps(log: Logger): RuleDeps {
  return { log: (line: string) => log.info({ kind: 'LOG' }, line) };
}

/** Upper bounds of the batch-size histogram buckets (packets per batch; batches hold at most 256). */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256] as const;

export class FirewallService {
  readonly tun: TunableValues;
  readonly fw: Firewall;
  rules: LoadedRules;
  /** batches by size bucket (BATCH_BUCKETS, non-cumulative), their count and packet sum */
  readonly batchHist = new Float64Array(BATCH_BUCKETS.length);
  batches = 0;
  batchPackets = 0;
  private gcTimer: NodeJS.Timeout | undefined;
  private readonly gcBuckets: number;
  private readonly gcIntervalMs: number;

  constructor(opts: ServiceOptions) {
    this.tun = opts.tun;
    this.gcBuckets = opts.gcBucketsPerTick ?? 8192;
    this.gcIntervalMs = opts.gcIntervalMs ?? 100;
    this.rules = opts.rules;
    const log = opts.log;
    // -m time --kerneltz: the kernel's timezone, read per batch while a rule asks for it
    wallClock.tzReader = () => loadAddon().kernelTimezone();
    this.fw = new Firewall({
      tun: opts.tun,
      rules: this.rules,
      log: { warn: (m) => log.warn(m), info: (m) => log.info(m), debug: (m) => log.debug(m) },
    });
    // MASQUERADE's entries die with their interface's address or link (nf_nat_masquerade.c)
    ifaceAddrs().onChange((c) => {
      let n = 0;
      for (const a of c.removed) n += this.fw.ct.masqueradeGone(a.ifindex, Uint32Array.from(a.addr));
      for (const i of c.down) n += this.fw.ct.masqueradeGone(i, null);
      if (n > 0) log.info({ entries: n, removed: c.removed.length, down: c.down }, 'masqueraded entries removed: their address or interface went away');
    });
  }

  /** The batch handler for the queue. */
  handleBatch = (batch: Batch): void => {
    const n = batch.count;
    // bucket = ceil(log2(n)): 1 → 0, 2 → 1, 3..4 → 2, …, 129..256 → 8
    this.batchHist[n <= 1 ? 0 : Math.min(BATCH_BUCKETS.length - 1, 32 - Math.clz32(n - 1))]++;
    this.batches++;
    this.batchPackets += n;
    this.fw.processBatch(batch, performance.now());
  };

  /** Starts the periodic expiry sweep. */
  start(): void {
    if (this.gcTimer) return;
    this.gcTimer = setInterval(() => this.fw.tick(performance.now(), this.gcBuckets), this.gcIntervalMs);
    this.gcTimer.unref();
  }

  stop(): void {
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.gcTimer = undefined;
  }

  /** New rules take effect with the next packet; the connection table is untouched. */
  setRules(rules: LoadedRules): void {
    this.rules = rules;
    this.fw.setRules(rules);
  }
}
