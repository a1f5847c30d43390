/**
 * Loading a rule file into something the pipeline can evaluate, with errors as
 * `FILE:LINE:COL: message` lines.
 */
import * as fs from 'node:fs';
import { NF_ACCEPT } from '../queue/layout';
import type { RuleEvaluator } from './firewall';

export interface LoadedRules extends RuleEvaluator {
  /** number of rules loaded */
  readonly ruleCount: number;
  /** the rules in iptables-save format; with counters ([pkts:bytes]) when verbose */
  format(verbose: boolean): string;
  /**
   * Live per-rule and per-policy counters (metrics). Rule numbers count from 1 within their
   * chain, as `iptables -L --line-numbers` shows them.
   */
  ruleCounters(): RuleCounters;
}

export interface RuleCounters {
  rules: { table: string; chain: string; rule: number; packets: number; bytes: number }[];
  /** built-in chains' policy counters */
  policies: { table: string; chain: string; packets: number; bytes: number }[];
}

export interface RuleDeps {
  /** where -j LOG lines go */
  log(line: string): void;
}

/** Every packet ACCEPT (replay without --rules). */
export const acceptAll: RuleEvaluator = {
  evalRaw: () => NF_ACCEPT,
  evalFilter: () => NF_ACCEPT,
};

export function loadRuleFile(file: string, deps: RuleDeps): { rules?: LoadedRules; errors: string[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { errors: [`${file}:0:0: cannot read the rule file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`] };
  }
  return loadRuleText(text, file, deps);
}

export function loadRuleText(text: string, file: string, deps: RuleDeps): { rules?: LoadedRules; errors: string[] } {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const rulesMod = require('../rules') as typeof import('../rules');
  const r = rulesMod.loadForPipeline(text, file, deps);
  if (!r.rules) return { errors: r.errors };
  const engine = r.rules.engine;
  const ruleCounters = (): RuleCounters => {
    const c = engine.counters;
    const out: RuleCounters = { rules: [], policies: [] };
    for (const ch of engine.compiled.chains) {
      if (ch.builtin) out.policies.push({ table: ch.table, chain: ch.name, packets: c.chainPkts[ch.counter], bytes: c.chainBytes[ch.counter] });
      ch.rules.forEach((rule, i) =>
        out.rules.push({ table: ch.table, chain: ch.name, rule: i + 1, packets: c.rulePkts[rule.counter], bytes: c.ruleBytes[rule.counter] }),
      );
    }
    return out;
  };
  return { errors: r.errors, rules: Object.assign(r.rules, { ruleCounters }) };
}
