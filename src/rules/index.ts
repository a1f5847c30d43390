/**
 * The rule engine's entry points: load a rule file (parse + compile), format errors,
 * and re-exports for the pipeline and the CLI.
 */
import { compileRules, type CompiledRuleSet } from './compile';
import { RuleEngine, type Counters, type EngineDeps } from './eval';
import { formatRuleSet } from './format';
import { parseRules } from './parse';
import type { RuleError, RuleSet } from './types';

export { RuleEngine, compileRules, formatRuleSet, parseRules };
export type { CompiledRuleSet, Counters, EngineDeps, RuleError, RuleSet };
export { buildReject, createRejectSender } from './targets/REJECT';

export interface LoadEnv {
  /** helper name → id (0 = no such helper): the conntrack helper registry's lookup */
  helperId(name: string): number;
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

export function loadRules(text: string, fileName: string, env: LoadEnv): LoadResult {
  const { set, errors } = parseRules(text, fileName, { helperId: env.helperId });
  if (errors.length) return { set, compiled: null, engine: null, errors };
  const compiled = compileRules(set, { helperId: env.helperId });
  const engine = env.deps ? new RuleEngine(compiled, env.deps) : null;
  return { set, compiled, engine, errors };
}

/** `FILE:LINE:COL: message` */
export function formatError(e: RuleError): string {
  return `${e.file}:${e.line}:${e.col}: ${e.message}`;
}

/** What the pipeline (src/pipeline/load-rules.ts) gets: an evaluator plus listing. */
export interface LoadedRules {
  evalRaw(ctx: import('../pipeline/context').PacketContext, now: number): number;
  evalFilter(ctx: import('../pipeline/context').PacketContext, now: number): number;
  readonly ruleCount: number;
  readonly engine: RuleEngine;
  format(verbose: boolean): string;
}

export interface PipelineRuleDeps {
  /** where -j LOG lines go (level = syslog level 0..7) */
  log(line: string, level?: number): void;
  /** helper name → id; default: the conntrack helper registry */
  helperId?(name: string): number;
  ifname?(ifindex: number): string | undefined;
  linkGeneration?(): number;
  reject?(kind: number, ctx: import('../pipeline/context').PacketContext): void;
}

/**
 * One REJECT sender per thread, shared by every rule set loaded in it: its raw sockets are
 * opened once, and its ICMP rate limits, like the kernel's per-host state, outlive a reload.
 */
let processSender: import('./targets/REJECT').RejectSender | null = null;
let senderLog: (line: string, level: number) => void = () => {};

function processReject(kind: number, ctx: import('../pipeline/context').PacketContext): void {
  if (!processSender) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    processSender = (require('./targets/REJECT') as typeof import('./targets/REJECT')).createRejectSender((e) => senderLog(`REJECT: ${e.message}`, 3));
  }
  processSender.reject(kind, ctx);
}

/** ICMP errors REJECT did not send because of the per-host or the global rate limit (this thread). */
export function rejectRateLimited(): { host: number; global: number } {
  return processSender ? { host: processSender.limiter.limitedHost, global: processSender.limiter.limitedGlobal } : { host: 0, global: 0 };
}

/**
 * Glue for src/pipeline/load-rules.ts: loads a rule file with working defaults for
 * what the caller does not pass (interface names from /sys/class/net, REJECT replies
 * over raw sockets created on first use, helper ids from the conntrack registry).
 */
export function loadForPipeline(text: string, file: string, deps: PipelineRuleDeps): { rules?: LoadedRules; errors: string[] } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const helperId = deps.helperId ?? (require('../conntrack/helpers/registry').helperId as (name: string) => number);
  let ifname = deps.ifname;
  let linkGeneration = deps.linkGeneration;
  if (!ifname) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sys = (require('./ifname') as typeof import('./ifname')).sysIfnames();
    ifname = sys.ifname;
    linkGeneration = linkGeneration ?? sys.linkGeneration;
  }
  if (!deps.reject) senderLog = deps.log;
  const reject = deps.reject ?? processReject;
  const r = loadRules(text, file, { helperId, deps: { ifname, linkGeneration, log: (l, lv) => deps.log(l, lv), reject } });
  if (!r.engine) return { errors: r.errors.map(formatError) };
  const engine = r.engine;
  const set = r.set;
  return {
    errors: [],
    rules: {
      evalRaw: (ctx, now) => engine.evalRaw(ctx, now),
      evalFilter: (ctx, now) => engine.evalFilter(ctx, now),
      ruleCount: engine.compiled.ruleCount,
      engine,
      format: (verbose) => formatRuleSet(set, verbose ? { counters: engine.counters } : {}),
    },
  };
}
