/**
 * Loading a rule file into something the pipeline can evaluate, with errors as
 * `FILE:LINE:COL: message` lines, and working defaults for what the caller does not
 * pass: interface names from /sys/class/net, helper ids from the conntrack helper
 * registry, REJECT replies over this thread's raw sockets.
 */
import * as fs from 'node:fs';
import { helperId as registryHelperId } from '../conntrack/helpers/registry';
import type { PacketContext } from '../conntrack/context';
import { NF_ACCEPT } from '../queue/layout';
import { sysIfnames } from '../rules/ifname';
import { activeIfaceAddrs, ifaceAddrs } from '../rules/iface-addrs';
import { preroutingNeed, type PreroutingNeed } from '../rules/prerouting';
import type { NamedSets } from '../rules/nft/named-sets';
import { formatError, formatRuleSet, loadRulesSteps, runSteps, runStepsSliced, type Counters, type Steps } from '../rules/index';
import { createRejectSender, type RejectSender, type RejectTransport } from '../rules/targets/REJECT';
import type { RuleEvaluator } from './firewall';

export interface LoadedRules extends RuleEvaluator {
  /** number of rules loaded */
  readonly ruleCount: number;
  /** the live counters in canonical order (tables, chains, rules as in the file): what `rules -L -v` prints */
  readonly counters: Counters;
  /** the rules in iptables-save format; with counters ([pkts:bytes]) when verbose: these rules' own, or `counters` (e.g. summed over worker threads) */
  format(verbose: boolean, counters?: Counters): string;
  /** an nftables rule set's named sets (`nfqwall nft add/delete element`) */
  readonly nftSets?: NamedSets;
  /** the packets these rules need at the pre-routing crossing (src/rules/prerouting.ts; iptables.ts installs it) */
  readonly prerouting: PreroutingNeed;
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
  /** where -j LOG lines go (level = syslog level 0..7) */
  log(line: string, level?: number): void;
  /** helper name → id; default: the conntrack helper registry */
  helperId?(name: string): number;
  /** ifindex → name; default: /sys/class/net (with its link generation) */
  ifname?(ifindex: number): string | undefined;
  linkGeneration?(): number;
  /** sends the REJECT reply of kind RJ_*; default: this thread's sender (threadRejectSender) */
  reject?(kind: number, ctx: PacketContext): void;
  /** MASQUERADE / REDIRECT's interface address (TargetServices.natAddress); default: the machine's (iface-addrs.ts) */
  natAddress?(ifindex: number, family: number, dst: Uint32Array | null, out: Uint32Array): boolean;
}

/** Every packet ACCEPT (replay without --rules). */
export const acceptAll: RuleEvaluator = {
  evalRaw: () => NF_ACCEPT,
  evalFilter: () => NF_ACCEPT,
};

/**
 * The REJECT sender of this thread, shared by every rule set loaded in it (module state is
 * per thread: each worker thread loads its own copy of this module): its raw sockets are
 * opened once, on the first reply, and its ICMP rate limits, like the kernel's per-host
 * state, outlive a reload.
 */
let threadSender: RejectSender | null = null;
let threadSenderLog: (line: string, level: number) => void = () => {};
let threadTransport: RejectTransport | undefined;

/**
 * How this thread's REJECT replies leave (default: raw sockets of this thread). A worker
 * thread sets one that hands them to the main thread before its first rules are loaded.
 */
export function setThreadRejectTransport(t: RejectTransport): void {
  threadTransport = t;
}

function threadReject(kind: number, ctx: PacketContext): void {
  if (!threadSender) {
    const onError = (e: Error) => threadSenderLog(`REJECT: ${e.message}`, 3);
    threadSender = createRejectSender(onError, undefined, undefined, threadTransport);
  }
  threadSender.reject(kind, ctx);
}

/** ICMP errors REJECT did not send because of the per-host or the global rate limit (this thread). */
export function rejectRateLimited(): { host: number; global: number } {
  return threadSender ? { host: threadSender.limiter.limitedHost, global: threadSender.limiter.limitedGlobal } : { host: 0, global: 0 };
}

function machineNatAddress(ifindex: number, family: number, dst: Uint32Array | null, out: Uint32Array): boolean {
  return ifaceAddrs().select(ifindex, family, dst, out);
}

/** A rule file that cannot be used; `errors` are `FILE:LINE:COL: message` lines. */
export class RuleLoadError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('\n'));
    this.name = 'RuleLoadError';
  }
}

function readRuleText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new RuleLoadError([`${file}:0:0: cannot read the rule file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
}

export function loadRuleFile(file: string, deps: RuleDeps): { rules?: LoadedRules; errors: string[] } {
  try {
    return { rules: readRules(file, deps).rules, errors: [] };
  } catch (err) {
    if (err instanceof RuleLoadError) return { errors: err.errors };
    throw err;
  }
}

/**
 * Reads (unless `text` is given) and compiles a rule file; throws RuleLoadError. The text comes
 * back too: the daemon's worker threads compile the very text the main thread checked.
 */
export function readRules(file: string, deps: RuleDeps, text?: string): { text: string; rules: LoadedRules } {
  return runSteps(readRulesSteps(file, deps, text));
}

/**
 * readRules for a reload: compiled slice by slice, the event loop turning in between, so the
 * queue read by this thread keeps being decided by the rules in force until the new ones are
 * ready (the caller swaps them in, between two batches). onSlice: after each slice (tests).
 */
export function readRulesSliced(file: string, deps: RuleDeps, text?: string, onSlice?: () => void): Promise<{ text: string; rules: LoadedRules }> {
  return runStepsSliced(readRulesSteps(file, deps, text), onSlice);
}

function* readRulesSteps(file: string, deps: RuleDeps, text?: string): Steps<{ text: string; rules: LoadedRules }> {
  const src = text ?? readRuleText(file);
  const r = yield* loadRuleTextSteps(src, file, deps);
  if (r.errors.length > 0 || !r.rules) throw new RuleLoadError(r.errors);
  return { text: src, rules: r.rules };
}

export function loadRuleText(text: string, file: string, deps: RuleDeps): { rules?: LoadedRules; errors: string[] } {
  return runSteps(loadRuleTextSteps(text, file, deps));
}

function* loadRuleTextSteps(text: string, file: string, deps: RuleDeps): Steps<{ rules?: LoadedRules; errors: string[] }> {
  let ifname = deps.ifname;
  let linkGeneration = deps.linkGeneration;
  if (!ifname) {
    const sys = sysIfnames();
    ifname = sys.ifname;
    linkGeneration = linkGeneration ?? sys.linkGeneration;
  }
  if (!deps.reject) threadSenderLog = (line, level) => deps.log(line, level);
  const r = yield* loadRulesSteps(text, file, {
    helperId: deps.helperId ?? registryHelperId,
    deps: { ifname, linkGeneration, log: (l, lv) => deps.log(l, lv), reject: deps.reject ?? threadReject, natAddress: deps.natAddress ?? machineNatAddress },
  });
  if (!r.engine) return { errors: r.errors.map(formatError) };
  const engine = r.engine;
  // the interface addresses are read (and followed) before the first packet needs them
  if (engine.hasNat && !deps.natAddress) activeIfaceAddrs();
  const set = r.set;
  const counters = engine.counters;
  return {
    errors: [],
    rules: {
      evalRaw: (ctx, now) => engine.evalRaw(ctx, now),
      evalFilter: (ctx, now) => engine.evalFilter(ctx, now),
      twoCrossings: engine.hasNat || engine.hasManglePrerouting,
      natTable: engine.hasNat,
      prerouting: preroutingNeed(set),
      evalNat: (ctx, now) => engine.evalNat(ctx, now),
      evalMangle: (ctx, now, hook) => engine.evalMangle(ctx, now, hook),
      evalAfterMangle: (ctx, now) => engine.evalAfterMangle(ctx, now),
      ruleCount: engine.compiled.ruleCount,
      counters,
      format: (verbose, c = counters) => formatRuleSet(set, verbose ? { counters: c } : {}),
      nftSets: set.nft?.sets,
      ruleCounters: () => {
        const out: RuleCounters = { rules: [], policies: [] };
        for (const ch of engine.compiled.chains) {
          if (ch.builtin)
            out.policies.push({ table: ch.table, chain: ch.name, packets: counters.chainPkts[ch.counter], bytes: counters.chainBytes[ch.counter] });
          ch.rules.forEach((rule, i) =>
            out.rules.push({ table: ch.table, chain: ch.name, rule: i + 1, packets: counters.rulePkts[rule.counter], bytes: counters.ruleBytes[rule.counter] }),
          );
        }
        return out;
      },
    },
  };
}
