/**
 * The daemon's rule file: loaded and checked once in the main thread (the one loader,
 * src/pipeline/load-rules.ts), put in force in every table through the backend, reloaded on
 * SIGHUP or `nfqwall reload`, and listed by `rules -L` (with every table's counters summed).
 * A reload and a counter listing run one at a time, so a listing sees one rule generation.
 */
import { performance } from 'node:perf_hooks';
import { readRules, readRulesSliced, RuleLoadError, type LoadedRules } from '../pipeline/load-rules';
import type { Counters } from '../rules';
import { elementChange, parseElementCommand } from '../rules/nft/element-command';
import type { Backend } from './backend';
import type { Logger } from './log';
import { ruleDeps } from './service';

const COUNTERS = ['rulePkts', 'ruleBytes', 'chainPkts', 'chainBytes'] as const;

export class DaemonRules {
  reloads = 0;
  reloadFailures = 0;
  private serial: Promise<unknown> = Promise.resolve();
  private backend: Backend | undefined;
  /** several queues (worker threads): a rule set with a *nat table is refused (NAT needs one table, for now) */
  multiQueue = false;
  /** after new rules are in force (iptables.ts installs their pre-routing crossing) */
  onSwapped: ((rules: LoadedRules) => Promise<void>) | undefined;

  /** Loads the file; throws RuleLoadError when it is invalid. */
  constructor(
    readonly file: string,
    private readonly log: Logger,
    public current: { text: string; rules: LoadedRules } = readRules(file, ruleDeps(log)),
  ) {}

  /** The backend whose tables the rules go to. */
  attach(backend: Backend): void {
    this.backend = backend;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.serial.then(fn, fn);
    this.serial = p.catch(() => undefined);
    return p;
  }

  /** Valid file: the new rules take effect in every table; the connection tables are untouched. Invalid: the old rules stay. */
  reload(): Promise<{ ok: boolean; errors: string[] }> {
    return this.exclusive(async () => {
      const log = this.log;
      let next: { text: string; rules: LoadedRules };
      const t0 = performance.now();
      const batches0 = this.backend?.batchesHere() ?? 0;
      try {
        // in slices: in single-queue mode this thread decides the packets, and they keep being decided
        next = await readRulesSliced(this.file, ruleDeps(log));
      } catch (err) {
        const errors = err instanceof RuleLoadError ? err.errors : [(err as Error).message];
        this.reloadFailures++;
        log.error({ file: this.file, errors }, 'reload refused: the rule file is invalid; the old rules stay in force');
        return { ok: false, errors };
      }
      const natRefusal = this.multiQueue ? natQueuesError(this.file, next.rules) : null;
      if (natRefusal) {
        this.reloadFailures++;
        log.error({ file: this.file, errors: [natRefusal] }, 'reload refused; the old rules stay in force');
        return { ok: false, errors: [natRefusal] };
      }
      const batchesHere = (this.backend?.batchesHere() ?? 0) - batches0;
      const swapped = this.backend ? await this.backend.swapRules(next) : { errors: [], batches: 0 };
      const errors = swapped.errors;
      if (errors.length > 0) {
        // cannot happen with the same loader everywhere; say so loudly if it does
        this.reloadFailures++;
        log.error({ file: this.file, errors }, 'reload failed in a worker thread; the workers may now run different rules');
        return { ok: false, errors };
      }
      this.current = next;
      this.reloads++;
      if (this.onSwapped) await this.onSwapped(next.rules);
      // batches decided with the old rules while the new ones compiled: the compile did not hold the packets up
      const compile = { ms: Math.round(performance.now() - t0), batchesDecided: batchesHere + swapped.batches };
      log.info({ file: this.file, rules: next.rules.ruleCount, compile, workers: this.backend?.workers ?? 0 }, 'rules reloaded');
      return { ok: true, errors: [] };
    });
  }

  /**
   * `nfqwall nft add/delete element …`: checked on the rules of this thread, then the set's
   * new element list goes to every table (the same list twice is harmless where a table
   * shares these rules), then to these rules (what `rules -L` prints).
   */
  nftElement(words: string[]): Promise<void> {
    return this.exclusive(async () => {
      const sets = this.current.rules.nftSets;
      const ch = elementChange(sets, parseElementCommand(words));
      const none = { alive: true, sendLines: async () => {} };
      for (const t of this.backend?.tables ?? []) {
        const r = await t.request({ op: 'nft.set', key: ch.key, elems: ch.elems }, none);
        if (r.ok !== true) throw new Error(String(r.error ?? 'a worker did not answer'));
      }
      sets!.get(ch.key)!.replace(ch.elems);
    });
  }

  /** `rules -L [-v]`: with every table's counters summed. */
  text(verbose: boolean): Promise<string> {
    return this.exclusive(async () => {
      const rules = this.current.rules;
      if (!verbose) return rules.format(false);
      const own = rules.counters;
      const sum: Counters = {
        rulePkts: new Float64Array(own.rulePkts.length),
        ruleBytes: new Float64Array(own.ruleBytes.length),
        chainPkts: new Float64Array(own.chainPkts.length),
        chainBytes: new Float64Array(own.chainBytes.length),
      };
      const none = { alive: true, sendLines: async () => {} };
      for (const t of this.backend?.tables ?? []) {
        const r = await t.request({ op: 'rules.counters' }, none);
        for (const k of COUNTERS) {
          const from = r[k] as number[] | undefined;
          if (!from) throw new Error(String(r.error ?? 'a worker did not answer'));
          const into = sum[k];
          for (let i = 0; i < into.length && i < from.length; i++) into[i] += from[i];
        }
      }
      return rules.format(true, sum);
    });
  }
}

/**
 * NAT with several queues needs both directions of a NATed flow (whose addresses differ) to
 * reach the worker that holds its entry: not done yet, so such a rule set is refused.
 */
export function natQueuesError(file: string, rules: LoadedRules): string | null {
  if (!rules.twoCrossings) return null;
  return rules.natTable
    ? `${file}:0:0: a *nat table needs a single queue: nfqwall does not do NAT with --queues A:B (several worker tables) yet`
    : `${file}:0:0: mangle PREROUTING rules need a single queue: the pre-routing crossing runs with one table only (not --queues A:B) yet`;
}
