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
  return rulesMod.loadForPipeline(text, file, deps);
}
