/**
 * The firewall as the daemon runs it: tunables, one connection table, the loaded
 * rule file, reloads, and the periodic work. `run` hands its batch handler to the
 * queues; the control socket, metrics and state file read and change it.
 */
import { performance } from 'node:perf_hooks';
import { Firewall } from '../pipeline/firewall';
import { readRules, RuleLoadError, type LoadedRules, type RuleDeps } from '../pipeline/load-rules';
import type { TunableValues } from '../conntrack/sysctl';
import type { Batch } from '../queue/queue';
import type { Logger } from './log';

export interface ServiceOptions {
  rulesFile: string;
  /** the rule file's text, already read (worker threads get it from the main thread) */
  rulesText?: string;
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
  readonly rulesFile: string;
  rules: LoadedRules;
  /** reloads done / refused since start */
  reloads = 0;
  reloadFailures = 0;
  /** batches by size bucket (BATCH_BUCKETS, non-cumulative), their count and packet sum */
  readonly batchHist = new Float64Array(BATCH_BUCKETS.length);
  batches = 0;
  batchPackets = 0;
  private readonly log: Logger;
  private gcTimer: NodeJS.Timeout | undefined;
  private readonly gcBuckets: number;
  private readonly gcIntervalMs: number;

  /** Loads the rule file; throws RuleLoadError (src/pipeline/load-rules.ts) when it is invalid. */
  constructor(opts: ServiceOptions) {
    this.tun = opts.tun;
    this.log = opts.log;
    this.rulesFile = opts.rulesFile;
    this.gcBuckets = opts.gcBucketsPerTick ?? 8192;
    this.gcIntervalMs = opts.gcIntervalMs ?? 100;
    this.rules = readRules(this.rulesFile, ruleDeps(this.log), opts.rulesText).rules;
    const log = opts.log;
    this.fw = new Firewall({
      tun: opts.tun,
      rules: this.rules,
      log: { warn: (m) => log.warn(m), info: (m) => log.info(m), debug: (m) => log.debug(m) },
    });
  }

  /** The batch handler for the queues. */
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

  /**
   * Reloads the rule file (or `text`, the file's content read by the caller). Valid: the new rules take effect with the next packet;
   * the connection table is untouched. Invalid: the old rules stay; the errors are
   * logged and returned.
   */
  reload(text?: string): { ok: boolean; errors: string[] } {
    let loaded: LoadedRules;
    try {
      loaded = readRules(this.rulesFile, ruleDeps(this.log), text).rules;
    } catch (err) {
      const errors = err instanceof RuleLoadError ? err.errors : [(err as Error).message];
      this.reloadFailures++;
      this.log.error({ file: this.rulesFile, errors }, 'reload refused: the rule file is invalid; the old rules stay in force');
      return { ok: false, errors };
    }
    this.rules = loaded;
    this.fw.setRules(loaded);
    this.reloads++;
    this.log.info({ file: this.rulesFile, rules: loaded.ruleCount }, 'rules reloaded');
    return { ok: true, errors: [] };
  }
}
