/**
 * RuleSet → flat data the evaluator walks without allocating: per-chain rule arrays,
 * addresses as u32 words + masks, interface patterns as ids (resolved per ifindex at
 * run time), jump targets as chain indices, and per chain ten candidate lists
 * (family × protocol class) so a packet only visits rules that can match its family
 * and protocol.
 */
import type { CompiledMatch, CompiledTarget, HookSlot, MatchModule, MatchRuntime, ParsedRule, RuleSet, TargetModule, TargetServices } from './types';
import { MATCHES } from './matches/index';
import { NFT_MATCHES, NFT_TARGETS } from './nft/matches';
import { TARGETS } from './targets/index';
import { NF_ACCEPT, NF_DROP } from '../queue/layout';
import { runSteps, SLICE, type Steps } from './steps';

/** What the walk does with a matching rule: the standard target (kernel: verdict < 0, or a jump) or an extension target's action. */
export const T_NONE = 0;
export const T_ACCEPT = 1;
export const T_DROP = 2;
export const T_RETURN = 3;
export const T_JUMP = 4;
export const T_GOTO = 5;
/** an extension target (targets/<NAME>.ts): CompiledRule.action runs */
export const T_ACTION = 6;

/** Protocol classes for the candidate lists: tcp, udp, icmp, icmpv6, anything else. */
export const PC_TCP = 0;
export const PC_UDP = 1;
export const PC_ICMP = 2;
export const PC_ICMP6 = 3;
export const PC_OTHER = 4;
export const N_PCLASS = 5;

export function protoClass(p: number): number {
  return p === 6 ? PC_TCP : p === 17 ? PC_UDP : p === 1 ? PC_ICMP : p === 58 ? PC_ICMP6 : PC_OTHER;
}

export class CompiledRule {
  /** canonical rule number (counter index) */
  counter = 0;
  family = 0;
  proto = 0;
  protoInv = false;
  /** address words to compare: 0 (no test), 1 (IPv4) or 4 (IPv6) */
  srcWords = 0;
  srcInv = false;
  readonly src = new Uint32Array(4);
  readonly srcMask = new Uint32Array(4);
  dstWords = 0;
  dstInv = false;
  readonly dst = new Uint32Array(4);
  readonly dstMask = new Uint32Array(4);
  /** interface pattern ids, -1 = no test */
  inPat = -1;
  inInv = false;
  outPat = -1;
  outInv = false;
  /** -f 1, ! -f -1, none 0 */
  fragment = 0;
  matches: CompiledMatch[] = [];
  target = T_NONE;
  /** chain index for T_JUMP / T_GOTO */
  jump = -1;
  /** for T_ACTION: the compiled extension target */
  action: CompiledTarget | null = null;
  constructor(readonly parsed: ParsedRule) {}
}

/** PortIndex kinds: the key is the destination port, or the IPv4 source address. */
export const KEY_DPORT = 1;
export const KEY_SRC4 = 2;

/**
 * An index over one candidate list (one chain, family, protocol class) by one packet key:
 *
 *  - KEY_DPORT (TCP and UDP classes): the port space cut at every bound of the rules'
 *    `--dport` / `--dports` sets; used only for packets whose ports are readable and that
 *    are not fragments: then a rule left out could not have matched and would have had no
 *    side effect (see portConstraint);
 *  - KEY_SRC4 (IPv4 classes): the address space cut at every bound of the rules' `-s`
 *    prefixes (not negated); the source test comes before any match, so a rule whose
 *    prefix does not hold the packet's source is skipped exactly.
 *
 * Each interval has the candidate subsequence a packet with a key in it can match — the
 * rules without such a condition, and those whose set holds the interval — in the chain's
 * order, so first-match order, counters, LOG and limit behave as with the full walk.
 */
export class PortIndex {
  constructor(
    readonly kind: number,
    /** interval starts, ascending, as (key ^ 0x80000000) | 0 (unsigned order as int32) */
    readonly starts: Int32Array,
    /** candidate list of each interval (identical lists shared) */
    readonly lists: Int32Array[],
  ) {}

  /** The candidates for a key (a port, or an IPv4 address word as int32 or uint32). */
  lookup(key: number): Int32Array {
    const k = (key ^ 0x80000000) | 0;
    const st = this.starts;
    let lo = 0;
    let hi = st.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (st[mid] <= k) lo = mid;
      else hi = mid - 1;
    }
    return this.lists[lo];
  }

  /** The longest candidate list. */
  maxList(): number {
    let m = 0;
    for (const l of this.lists) if (l.length > m) m = l.length;
    return m;
  }
}

/** The [lo, hi] source range of a rule's non-negated IPv4 prefix test, or null. */
export function srcConstraint(r: CompiledRule): [number, number][] | null {
  if (r.srcWords !== 1 || r.srcInv) return null;
  const m = r.srcMask[0] >>> 0;
  const inv = ~m >>> 0;
  if ((inv & (inv + 1)) !== 0) return null; // not a prefix mask
  const lo = r.src[0] >>> 0;
  return [[lo, (lo | inv) >>> 0]];
}

/** Build an index when at least this many candidates have a condition on its key. */
const PORT_INDEX_MIN_RULES = 4;
/** Upper bound on the summed length of one index's distinct lists (memory guard). */
const PORT_INDEX_MAX_ENTRIES = 1 << 20;

/**
 * Matches that may come before a rule's port condition without defeating the port index:
 * stateless, and never setting hotdrop for a packet with readable ports.
 */
const PURE_MATCHES = new Set(['conntrack', 'state', 'comment', 'iprange', 'helper']);

/**
 * The destination ports a rule requires, as [lo, hi] ranges, or null when it has no such
 * condition that the index may use: the first match that is not in PURE_MATCHES must be a
 * non-negated `tcp`/`udp --dport` or `multiport --dports`. (Such a match returns false,
 * without side effects, for a non-fragment with readable ports outside the set; the
 * matches before it have no side effects either, so the rule is skipped exactly.)
 */
export function portConstraint(pr: ParsedRule): [number, number][] | null {
  for (const m of pr.matches) {
    if (PURE_MATCHES.has(m.name)) continue;
    if (m.name === 'tcp' || m.name === 'udp') {
      const st = m.state as { dport: [number, number] | null; dportInv: boolean };
      if (!st.dport || st.dportInv) return null;
      return [[st.dport[0], st.dport[1]]];
    }
    if (m.name === 'multiport') {
      const st = m.state as { flags: string | null; ports: [number, number][]; inv: boolean };
      if (st.flags !== 'dst' || st.inv || st.ports.length === 0) return null;
      return st.ports.map((r) => [r[0], r[1]]);
    }
    return null;
  }
  return null;
}

/**
 * The index of one candidate list over a key: cut points where the set of rules whose
 * constraint covers the key changes, and for each segment the candidates that may match
 * there (the unconstrained ones and those covering it, in rule order). Built by a sweep over
 * the sorted range ends, so the cost is n log n plus the lists it emits, and the memory
 * guard stops it as soon as the distinct lists grow too long (a blocklist of 200k addresses
 * compiles in well under a second, where scanning every rule at every cut took minutes).
 */
/** yields every SLICE candidates and SLICE index points (src/rules/steps.ts) */
function* buildIndex(kind: number, keyMax: number, cand: Int32Array, cons: ([number, number][] | null)[]): Steps<PortIndex | null> {
  const always: number[] = [];
  const evKey: number[] = [];
  const evRule: number[] = [];
  let indexed = 0;
  let maxRule = 0;
  for (let n = 0; n < cand.length; n++) {
    if (n % SLICE === SLICE - 1) yield;
    const i = cand[n];
    const c = cons[i];
    if (!c) {
      always.push(i);
      continue;
    }
    indexed++;
    if (i > maxRule) maxRule = i;
    for (const [lo, hi] of c) {
      evKey.push(lo);
      evRule.push(i + 1); // +i+1: the range starts
      if (hi < keyMax) {
        evKey.push(hi + 1);
        evRule.push(-(i + 1)); // -(i+1): it has ended
      }
    }
  }
  if (indexed < PORT_INDEX_MIN_RULES) return null;
  const order = Int32Array.from(evKey.keys()).sort((a, b) => evKey[a] - evKey[b]);
  const cover = new Int32Array(maxRule + 1);
  const active = new Set<number>();
  const starts: number[] = [];
  const lists: Int32Array[] = [];
  const seen = new Map<number, Int32Array[]>();
  let total = 0;
  let e = 0;
  for (let p = 0; ;) {
    for (; e < order.length && evKey[order[e]] === p; e++) {
      const r = evRule[order[e]];
      const i = Math.abs(r) - 1;
      const c = (cover[i] += r > 0 ? 1 : -1);
      if (c === 1 && r > 0) active.add(i);
      else if (c === 0) active.delete(i);
    }
    const l = mergeSorted(
      always,
      [...active].sort((a, b) => a - b),
    );
    const h = hashList(l);
    const same = seen.get(h);
    let arr = same?.find((x) => sameList(x, l));
    if (!arr) {
      arr = l;
      if (same) same.push(l);
      else seen.set(h, [l]);
      total += arr.length;
      if (total > PORT_INDEX_MAX_ENTRIES) return null;
    }
    starts.push((p ^ 0x80000000) | 0);
    lists.push(arr);
    if (e >= order.length) break;
    if (starts.length % SLICE === 0) yield;
    p = evKey[order[e]];
  }
  return new PortIndex(kind, Int32Array.from(starts), lists);
}

function hashList(l: Int32Array): number {
  let h = 0x811c9dc5 ^ l.length;
  for (let i = 0; i < l.length; i++) h = Math.imul(h ^ l[i], 0x01000193);
  return h >>> 0;
}

function sameList(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The union of two ascending lists of distinct rule numbers, ascending. */
function mergeSorted(a: readonly number[], b: readonly number[]): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i] < b[j] ? a[i++] : b[j++];
  while (i < a.length) out[k++] = a[i++];
  while (j < b.length) out[k++] = b[j++];
  return out;
}

export class CompiledChain {
  rules: CompiledRule[] = [];
  /** a base chain's family (0 = both): packets of the other family do not walk it */
  family = 0;
  /** [family(0: v4, 1: v6) * N_PCLASS + protoClass] → indices into rules */
  cand: Int32Array[] = [];
  /** same indexing: the destination-port or IPv4-source index of cand[i], or null */
  portIdx: (PortIndex | null)[] = [];
  constructor(
    readonly name: string,
    readonly table: string,
    readonly builtin: boolean,
    /** NF_ACCEPT / NF_DROP for built-in chains, -1 for user chains */
    readonly policy: number,
    /** canonical chain number (policy counter index) */
    readonly counter: number,
  ) {}
}

export interface CompileDeps {
  /** helper name → id (0 = unknown), from the conntrack helper registry */
  helperId(name: string): number;
  /** what the targets call (LOG, REJECT); without it the rules can be checked and listed, not run */
  services?: TargetServices;
}

function cannotRun(): never {
  throw new Error('these rules were compiled without target services: they can be checked, not run');
}
const CHECK_ONLY: TargetServices = { ifname: cannotRun, log: cannotRun, reject: cannotRun };

/** The slots, in the order of CompiledRuleSet.bases. */
export const HOOK_SLOTS: readonly HookSlot[] = [
  'raw/PREROUTING',
  'raw/OUTPUT',
  'filter/INPUT',
  'filter/FORWARD',
  'filter/OUTPUT',
  'mangle/PREROUTING',
  'mangle/INPUT',
  'mangle/FORWARD',
  'mangle/OUTPUT',
  'mangle/POSTROUTING',
  'nat/PREROUTING',
  'nat/INPUT',
  'nat/OUTPUT',
  'nat/POSTROUTING',
];
export const SLOT_RAW_PREROUTING = 0;
export const SLOT_RAW_OUTPUT = 1;
export const SLOT_FILTER_INPUT = 2;
export const SLOT_FILTER_FORWARD = 3;
export const SLOT_FILTER_OUTPUT = 4;
export const SLOT_MANGLE_PREROUTING = 5;
export const SLOT_MANGLE_INPUT = 6;
export const SLOT_MANGLE_FORWARD = 7;
export const SLOT_MANGLE_OUTPUT = 8;
export const SLOT_MANGLE_POSTROUTING = 9;
export const SLOT_NAT_PREROUTING = 10;
export const SLOT_NAT_INPUT = 11;
export const SLOT_NAT_OUTPUT = 12;
export const SLOT_NAT_POSTROUTING = 13;

/** A match module by name: the iptables extensions, then the nftables-only ones (never reachable with -m). */
export function matchModule(name: string): MatchModule {
  return MATCHES[name] ?? NFT_MATCHES[name];
}

/** A target module by name: the iptables extensions, then the nftables-only ones. */
export function targetModule(name: string): TargetModule {
  return TARGETS[name] ?? NFT_TARGETS[name];
}

export class CompiledRuleSet {
  chains: CompiledChain[] = [];
  /** per slot (HOOK_SLOTS order): the base chains walked, in order */
  bases: Int32Array[] = [];
  /** chain indices, -1 when absent (the first base chain of the slot) */
  rawPrerouting = -1;
  rawOutput = -1;
  filterInput = -1;
  filterForward = -1;
  filterOutput = -1;
  /** a *nat table is present: connections get NAT bindings (null ones without a matching rule) */
  nat = false;
  ruleCount = 0;
  /** distinct interface patterns (-i/-o), by id */
  ifacePatterns: string[] = [];
  readonly runtime: MatchRuntime = { hotdrop: 0 };
  constructor(readonly set: RuleSet) {}
}

function ruleMayMatch(r: CompiledRule, fam: 4 | 6, pc: number): boolean {
  if (r.family !== 0 && r.family !== fam) return false;
  if (r.proto === 0) return true;
  const rc = protoClass(r.proto);
  if (!r.protoInv) return rc === pc;
  return rc !== pc || pc === PC_OTHER;
}

export function compileRules(set: RuleSet, deps: CompileDeps): CompiledRuleSet {
  return runSteps(compileRulesSteps(set, deps));
}

/** compileRules, yielding every SLICE rules and between the indexes it builds (src/rules/steps.ts) */
export function* compileRulesSteps(set: RuleSet, deps: CompileDeps): Steps<CompiledRuleSet> {
  const out = new CompiledRuleSet(set);
  const patIds = new Map<string, number>();
  const patId = (p: string): number => {
    let id = patIds.get(p);
    if (id === undefined) {
      id = out.ifacePatterns.length;
      out.ifacePatterns.push(p);
      patIds.set(p, id);
    }
    return id;
  };
  const env = { helperId: deps.helperId, runtime: out.runtime, services: deps.services ?? CHECK_ONLY };
  let ruleNo = 0;
  let chainNo = 0;
  const pending: [CompiledRule, string, string][] = [];
  const index = new Map<string, number>();
  for (const t of set.tables) {
    for (const ch of t.chains) {
      const cc = new CompiledChain(ch.name, t.name, ch.builtin, ch.policy === null ? -1 : ch.policy === 'DROP' ? NF_DROP : NF_ACCEPT, chainNo++);
      index.set(`${t.name}/${ch.name}`, out.chains.length);
      out.chains.push(cc);
      for (const pr of ch.rules) {
        if (ruleNo % SLICE === SLICE - 1) yield;
        const r = new CompiledRule(pr);
        r.counter = ruleNo++;
        r.family = pr.family;
        r.proto = pr.proto;
        r.protoInv = pr.protoInv;
        if (pr.src) {
          r.srcWords = pr.src.family === 4 ? 1 : 4;
          r.src.set(pr.src.addr);
          r.srcMask.set(pr.src.mask);
          r.srcInv = pr.srcInv;
        }
        if (pr.dst) {
          r.dstWords = pr.dst.family === 4 ? 1 : 4;
          r.dst.set(pr.dst.addr);
          r.dstMask.set(pr.dst.mask);
          r.dstInv = pr.dstInv;
        }
        if (pr.inIface !== null) {
          r.inPat = patId(pr.inIface);
          r.inInv = pr.inInv;
        }
        if (pr.outIface !== null) {
          r.outPat = patId(pr.outIface);
          r.outInv = pr.outInv;
        }
        r.fragment = pr.fragment;
        r.matches = pr.matches.map((m) => matchModule(m.name).compile(m.state, env));
        const tg = pr.target;
        switch (tg.kind) {
          case 'none':
            r.target = T_NONE;
            break;
          case 'standard':
            r.target = tg.name === 'ACCEPT' ? T_ACCEPT : tg.name === 'DROP' ? T_DROP : T_RETURN;
            break;
          case 'jump':
          case 'goto':
            r.target = tg.kind === 'jump' ? T_JUMP : T_GOTO;
            pending.push([r, t.name, tg.name]);
            break;
          case 'ext': {
            const mod = targetModule(tg.name);
            if (!mod) throw new Error(`unknown target ${tg.name}`);
            r.target = T_ACTION;
            r.action = mod.compile(tg.state, env);
            break;
          }
        }
        cc.rules.push(r);
      }
    }
  }
  out.ruleCount = ruleNo;
  for (const [r, table, name] of pending) {
    const ci = index.get(`${table}/${name}`);
    if (ci === undefined) throw new Error(`jump to missing chain ${name}`);
    r.jump = ci;
  }
  for (const cc of out.chains) {
    const cons: ([number, number][] | null)[] = [];
    const scons: ([number, number][] | null)[] = [];
    for (const r of cc.rules) {
      if (cons.length % SLICE === SLICE - 1) yield;
      cons.push(portConstraint(r.parsed));
      scons.push(srcConstraint(r));
    }
    // protocol classes with the same candidates (rules without -p are in all) share one source index
    const srcIndexes = new Map<string, PortIndex | null>();
    function* srcIndexOf(cand: Int32Array): Steps<PortIndex | null> {
      const key = cand.join(',');
      let idx = srcIndexes.get(key);
      if (idx === undefined) srcIndexes.set(key, (idx = yield* buildIndex(KEY_SRC4, 0xffffffff, cand, scons)));
      return idx;
    }
    for (const fam of [4, 6] as const) {
      for (let pc = 0; pc < N_PCLASS; pc++) {
        if (cc.rules.length >= SLICE) yield;
        const list: number[] = [];
        cc.rules.forEach((r, i) => {
          if (ruleMayMatch(r, fam, pc)) list.push(i);
        });
        const k = (fam === 6 ? 1 : 0) * N_PCLASS + pc;
        cc.cand[k] = Int32Array.from(list);
        // of the two possible indexes, the one whose longest list is shorter
        const byPort = pc === PC_TCP || pc === PC_UDP ? yield* buildIndex(KEY_DPORT, 65535, cc.cand[k], cons) : null;
        const bySrc = fam === 4 ? yield* srcIndexOf(cc.cand[k]) : null;
        cc.portIdx[k] = byPort && (!bySrc || byPort.maxList() <= bySrc.maxList()) ? byPort : bySrc;
      }
    }
  }
  out.bases = HOOK_SLOTS.map((slot) => {
    if (!set.bases) return Int32Array.from(index.has(slot) ? [index.get(slot)!] : []);
    return Int32Array.from(
      set.bases
        .filter((b) => b.slot === slot)
        .map((b) => {
          const ci = index.get(`${b.table}/${b.chain}`);
          if (ci === undefined) throw new Error(`base chain ${b.chain} missing`);
          out.chains[ci].family = b.family;
          return ci;
        }),
    );
  });
  const first = (slot: number): number => (out.bases[slot].length > 0 ? out.bases[slot][0] : -1);
  out.rawPrerouting = first(SLOT_RAW_PREROUTING);
  out.rawOutput = first(SLOT_RAW_OUTPUT);
  out.filterInput = first(SLOT_FILTER_INPUT);
  out.filterForward = first(SLOT_FILTER_FORWARD);
  out.filterOutput = first(SLOT_FILTER_OUTPUT);
  out.nat = set.tables.some((t) => t.name === 'nat');
  return out;
}
