/**
 * The rule engine's entry points: load a rule file (parse + compile), format errors,
 * and re-exports for the pipeline and the CLI. What the engine needs from outside
 * (interface names, the LOG sink, the REJECT sender) is passed in: src/pipeline/load-rules.ts
 * supplies the daemon's.
 */
import { compileRules, compileRulesSteps, type CompiledRuleSet } from './compile';
import { reservedMarkErrors } from './prerouting';
import { RuleEngine, type Counters, type EngineDeps } from './eval';
import { formatRuleSet } from './format';
import { parseRules, parseRulesSteps } from './parse';
import { runSteps, type Steps } from './steps';
import { isNftJson, parseNftRuleset } from './nft/ruleset';
import { MATCHES } from './matches/index';
import type { ParsedMatch, RuleError, RuleSet } from './types';

export { RuleEngine, compileRules, formatRuleSet, isNftJson, parseRules };
export { runSteps, runStepsSliced, type Steps } from './steps';
export type { CompiledRuleSet, Counters, EngineDeps, RuleError, RuleSet };
export { buildReject, createRejectSender } from './targets/REJECT';

export interface LoadEnv {
  /** helper name → id (0 = no such helper): the conntrack helper registry's lookup */
  helperId(name: string): number;
  /** interface name → index for nft's meta iif/oif (0: none); default: /sys/class/net */
  ifindex?(name: string): number;
  /** engine dependencies; without them only the compiled set is returned (e.g. `nfqwall check`) */
  deps?: EngineDeps;
}

export interface LoadResult {
  /** the parsed rules (also on errors: what could be read) */
  set: RuleSet;
  /** compiled rules, null when there were errors */
  compiled: CompiledRuleSet | null;
  /** the engine, when deps were given and there were no errors */
  engine: RuleEngine | null;
  errors: RuleError[];
}

/** Reads an iptables-save file, or the JSON of `nft -j list ruleset` (told apart by content). */
export function loadRules(text: string, fileName: string, env: LoadEnv): LoadResult {
  return runSteps(loadRulesSteps(text, fileName, env));
}

/** loadRules in slices (src/rules/steps.ts); an nft JSON rule set is parsed in one slice */
export function* loadRulesSteps(text: string, fileName: string, env: LoadEnv): Steps<LoadResult> {
  const { set, errors } = isNftJson(text)
    ? parseNftRuleset(text, fileName, { helperId: env.helperId, ifindex: env.ifindex })
    : yield* parseRulesSteps(text, fileName, { helperId: env.helperId });
  if (errors.length === 0) errors.push(...reservedMarkErrors(set, fileName));
  if (errors.length) return { set, compiled: null, engine: null, errors };
  const compiled = yield* compileRulesSteps(set, { helperId: env.helperId, services: env.deps });
  const engine = env.deps ? new RuleEngine(compiled, env.deps) : null;
  if (engine) {
    const uses = new Map<string, ParsedMatch[]>();
    for (const t of set.tables)
      for (const c of t.chains)
        for (const r of c.rules)
          for (const m of r.matches) {
            const list = uses.get(m.name);
            if (list) list.push(m);
            else uses.set(m.name, [m]);
          }
    const sink = { error: (at: { line: number; col: number }, message: string) => errors.push({ file: fileName, line: at.line, col: at.col, message }) };
    for (const [name, mod] of Object.entries(MATCHES)) mod.inService?.(uses.get(name) ?? [], sink);
    if (errors.length) return { set, compiled: null, engine: null, errors };
  }
  return { set, compiled, engine, errors };
}

/** `FILE:LINE:COL: message`; `FILE: message` for what has no line (nft JSON: the message starts with the JSON path) */
export function formatError(e: RuleError): string {
  return e.line === 0 ? `${e.file}: ${e.message}` : `${e.file}:${e.line}:${e.col}: ${e.message}`;
}
