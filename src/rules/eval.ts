/**
 * The per-packet walk over compiled chains (the kernel's ipt_do_table): jumps push a
 * return position, gotos do not, RETURN / the end of a chain pops, and with nothing
 * to pop the built-in chain's policy applies. No allocation, no string work, no
 * closures per packet.
 */
import type { PacketContext } from '../conntrack/context';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING } from '../queue/layout';
import {
  CompiledRuleSet,
  KEY_SRC4,
  N_PCLASS,
  PC_TCP,
  PC_UDP,
  protoClass,
  SLOT_FILTER_FORWARD,
  SLOT_FILTER_INPUT,
  SLOT_FILTER_OUTPUT,
  SLOT_MANGLE_FORWARD,
  SLOT_MANGLE_INPUT,
  SLOT_MANGLE_OUTPUT,
  SLOT_MANGLE_POSTROUTING,
  SLOT_MANGLE_PREROUTING,
  SLOT_NAT_INPUT,
  SLOT_NAT_OUTPUT,
  SLOT_NAT_POSTROUTING,
  SLOT_NAT_PREROUTING,
  SLOT_RAW_OUTPUT,
  SLOT_RAW_PREROUTING,
  T_ACCEPT,
  T_ACTION,
  T_DROP,
  T_GOTO,
  T_JUMP,
  T_NONE,
  T_RETURN,
  type CompiledRule,
} from './compile';
import { MAX_CHAIN_DEPTH } from './parse';
import { ifaceMatches } from './matches/basic';
import { l4HeaderReadable } from './matches/util';
import { XT_CONTINUE, type TargetServices } from './types';
import type { CompiledChain } from './compile';

/** The engine's own use of ifname (-i/-o) plus what the targets call. */
export interface EngineDeps extends TargetServices {
  /** optional: a counter that changes when links change; cached -i/-o results are then recomputed */
  linkGeneration?(): number;
}

export interface Counters {
  /** per rule, by canonical rule number (tables, chains, rules in file order) */
  rulePkts: Float64Array;
  ruleBytes: Float64Array;
  /** per chain, by canonical chain number; only built-in chains' policies count */
  chainPkts: Float64Array;
  chainBytes: Float64Array;
}

/**
 * The rules of chain ch a packet of class cls must visit: with its destination port dport
 * (-1: not usable) or IPv4 source word src4 (int32) when the chain has an index for them.
 */
function candidates(ch: CompiledChain, cls: number, dport: number, src4: number): Int32Array {
  const pi = ch.portIdx[cls];
  if (pi !== null) {
    if (pi.kind === KEY_SRC4) return pi.lookup(src4);
    if (dport >= 0) return pi.lookup(dport);
  }
  return ch.cand[cls];
}

/**
 * The slots walked after conntrack at the queue crossing, by the hook the packet was queued
 * from, in the kernel's order (priorities: conntrack -200, mangle -150, filter 0; a forwarded
 * or local packet goes on to POSTROUTING's mangle chain once FORWARD or OUTPUT accepted it).
 * This is the path of a rule set without a pre-routing crossing, whose mangle PREROUTING has
 * no rules (only its ACCEPT policy, counted here); with the crossing (src/pipeline/crossings.ts)
 * mangle PREROUTING runs there and the filter crossing calls evalMangle and evalAfterMangle
 * around the nat hooks instead.
 */
const AFTER_CONNTRACK: readonly (readonly number[])[] = [
  /* PRE_ROUTING */ [SLOT_MANGLE_PREROUTING],
  /* LOCAL_IN */ [SLOT_MANGLE_PREROUTING, SLOT_MANGLE_INPUT, SLOT_FILTER_INPUT],
  /* FORWARD */ [SLOT_MANGLE_PREROUTING, SLOT_MANGLE_FORWARD, SLOT_FILTER_FORWARD, SLOT_MANGLE_POSTROUTING],
  /* LOCAL_OUT */ [SLOT_MANGLE_OUTPUT, SLOT_FILTER_OUTPUT, SLOT_MANGLE_POSTROUTING],
  /* POST_ROUTING */ [SLOT_MANGLE_POSTROUTING],
];

/** The mangle slot of each hook the queue reports (PRE_ROUTING … LOCAL_OUT; POST_ROUTING: none). */
const MANGLE_OF_HOOK: readonly number[] = [SLOT_MANGLE_PREROUTING, SLOT_MANGLE_INPUT, SLOT_MANGLE_FORWARD, SLOT_MANGLE_OUTPUT];
/** What follows the hook's mangle chain: filter INPUT; filter FORWARD + mangle POSTROUTING; filter OUTPUT + mangle POSTROUTING. */
const AFTER_MANGLE: readonly (readonly number[])[] = [
  /* PRE_ROUTING */ [],
  /* LOCAL_IN */ [SLOT_FILTER_INPUT],
  /* FORWARD */ [SLOT_FILTER_FORWARD, SLOT_MANGLE_POSTROUTING],
  /* LOCAL_OUT */ [SLOT_FILTER_OUTPUT, SLOT_MANGLE_POSTROUTING],
];

/** Largest ifindex kept in the dense per-pattern caches; larger ones go to a Map. */
const DENSE_IFINDEX = 1 << 16;

export class RuleEngine {
  readonly counters: Counters;
  private readonly ifCache: Uint8Array[];
  private readonly ifBig: Map<number, number>[];
  private linkGen = 0;
  private readonly chainStack = new Int32Array(MAX_CHAIN_DEPTH + 2);
  private readonly posStack = new Int32Array(MAX_CHAIN_DEPTH + 2);
  /** per hook: the base chains of AFTER_CONNTRACK's slots that have rules or a DROP policy, in order */
  private readonly afterCt: Int32Array[];
  /** per hook: the base chains of AFTER_MANGLE's slots */
  private readonly afterMangle: Int32Array[];

  constructor(
    readonly compiled: CompiledRuleSet,
    private readonly deps: EngineDeps,
  ) {
    const nChains = compiled.chains.length;
    this.counters = {
      rulePkts: new Float64Array(compiled.ruleCount),
      ruleBytes: new Float64Array(compiled.ruleCount),
      chainPkts: new Float64Array(nChains),
      chainBytes: new Float64Array(nChains),
    };
    this.ifCache = compiled.ifacePatterns.map(() => new Uint8Array(64));
    this.ifBig = compiled.ifacePatterns.map(() => new Map());
    this.linkGen = deps.linkGeneration ? deps.linkGeneration() : 0;
    this.afterCt = AFTER_CONNTRACK.map((slots) => Int32Array.from(slots.flatMap((sl) => [...compiled.bases[sl]])));
    this.afterMangle = AFTER_MANGLE.map((slots) => Int32Array.from(slots.flatMap((sl) => [...compiled.bases[sl]])));
  }

  /** Forget cached interface matches (a link appeared, vanished or was renamed). */
  invalidateInterfaces(): void {
    for (const c of this.ifCache) c.fill(0);
    for (const m of this.ifBig) m.clear();
  }

  /**
   * raw PREROUTING (packets queued at PRE_ROUTING, LOCAL_IN, FORWARD) or raw OUTPUT
   * (LOCAL_OUT). Sets ctx.notrack / ctx.helper. Returns NF_ACCEPT or NF_DROP.
   */
  evalRaw(ctx: PacketContext, now: number): number {
    const h = ctx.hook;
    const b = this.compiled.bases;
    if (h === NF_INET_LOCAL_OUT) return this.walkBases(b[SLOT_RAW_OUTPUT], ctx, now);
    if (h === NF_INET_PRE_ROUTING || h === NF_INET_LOCAL_IN || h === NF_INET_FORWARD) return this.walkBases(b[SLOT_RAW_PREROUTING], ctx, now);
    return NF_ACCEPT;
  }

  /**
   * The tables after conntrack by ctx.hook (AFTER_CONNTRACK): mangle, filter, then mangle
   * POSTROUTING for forwarded and local packets (no chain → ACCEPT). REJECT sends, then DROPs.
   */
  evalFilter(ctx: PacketContext, now: number): number {
    const h = ctx.hook;
    return h < this.afterCt.length ? this.walkBases(this.afterCt[h], ctx, now) : NF_ACCEPT;
  }

  /**
   * The mangle chain of `hook` (PREROUTING, INPUT, FORWARD, OUTPUT): for the crossings, which
   * interleave it with the nat hooks in the kernel's order. NF_ACCEPT or NF_DROP.
   */
  evalMangle(ctx: PacketContext, now: number, hook: number): number {
    return hook < MANGLE_OF_HOOK.length ? this.walkBases(this.compiled.bases[MANGLE_OF_HOOK[hook]], ctx, now) : NF_ACCEPT;
  }

  /** What follows the mangle chain of ctx.hook after the nat destination hook: filter, then mangle POSTROUTING. */
  evalAfterMangle(ctx: PacketContext, now: number): number {
    const h = ctx.hook;
    return h < this.afterMangle.length ? this.walkBases(this.afterMangle[h], ctx, now) : NF_ACCEPT;
  }

  /** Whether mangle PREROUTING has rules or a DROP policy: the packets must cross before routing. */
  get hasManglePrerouting(): boolean {
    const c = this.compiled;
    for (const ci of c.bases[SLOT_MANGLE_PREROUTING]) {
      const ch = c.chains[ci];
      if (ch.rules.length > 0 || ch.policy === NF_DROP) return true;
    }
    return false;
  }

  /** Whether the rule set has a *nat table (the pipeline then makes NAT bindings). */
  get hasNat(): boolean {
    return this.compiled.nat;
  }

  /**
   * The nat chain of ctx.natHook (PREROUTING, INPUT, OUTPUT, POSTROUTING), for a connection's
   * first packet: its NAT targets bind the entry and end the walk. NF_ACCEPT or NF_DROP.
   */
  evalNat(ctx: PacketContext, now: number): number {
    const h = ctx.natHook;
    const b = this.compiled.bases;
    if (h === NF_INET_PRE_ROUTING) return this.walkBases(b[SLOT_NAT_PREROUTING], ctx, now);
    if (h === NF_INET_POST_ROUTING) return this.walkBases(b[SLOT_NAT_POSTROUTING], ctx, now);
    if (h === NF_INET_LOCAL_OUT) return this.walkBases(b[SLOT_NAT_OUTPUT], ctx, now);
    if (h === NF_INET_LOCAL_IN) return this.walkBases(b[SLOT_NAT_INPUT], ctx, now);
    return NF_ACCEPT;
  }

  /**
   * The base chains of one hook in order, as nf_hook_slow runs them: a drop ends the walk,
   * an accept goes on to the next chain; a chain of the other family is skipped.
   */
  private walkBases(list: Int32Array, ctx: PacketContext, now: number): number {
    const chains = this.compiled.chains;
    for (let i = 0; i < list.length; i++) {
      const fam = chains[list[i]].family;
      if (fam !== 0 && fam !== ctx.family) continue;
      if (this.walk(list[i], ctx, now) === NF_DROP) return NF_DROP;
    }
    return NF_ACCEPT;
  }

  private walk(base: number, ctx: PacketContext, now: number): number {
    if (this.deps.linkGeneration) {
      const g = this.deps.linkGeneration();
      if (g !== this.linkGen) {
        this.linkGen = g;
        this.invalidateInterfaces();
      }
    }
    const chains = this.compiled.chains;
    const rt = this.compiled.runtime;
    const cnt = this.counters;
    const v = ctx.view;
    const pc = protoClass(v.proto);
    const cls = (ctx.family === 6 ? N_PCLASS : 0) + pc;
    // the destination-port index applies to non-fragments with readable ports (see PortIndex)
    const dport = (pc === PC_TCP || pc === PC_UDP) && v.fragOffset === 0 && l4HeaderReadable(v) ? v.dport : -1;
    // the IPv4 source word the rules' -s tests compare (IPv6 classes have no source index)
    const src4 = v.src[0] | 0;
    rt.hotdrop = 0;
    let chain = base;
    let cand = candidates(chains[chain], cls, dport, src4);
    let rules = chains[chain].rules;
    let pos = 0;
    let sp = 0;
    for (;;) {
      if (pos >= cand.length) {
        // End of chain (or RETURN): back to the caller, or the built-in chain's policy.
        if (sp === 0) return this.policy(base, ctx);
        sp--;
        chain = this.chainStack[sp];
        pos = this.posStack[sp];
        cand = candidates(chains[chain], cls, dport, src4);
        rules = chains[chain].rules;
        continue;
      }
      const r = rules[cand[pos++]];
      if (!this.ruleMatches(r, ctx, now)) {
        if (rt.hotdrop !== 0) return NF_DROP;
        continue;
      }
      cnt.rulePkts[r.counter] += 1;
      cnt.ruleBytes[r.counter] += ctx.length;
      switch (r.target) {
        case T_NONE:
          continue;
        case T_ACCEPT:
          return NF_ACCEPT;
        case T_DROP:
          return NF_DROP;
        case T_RETURN:
          pos = cand.length; // as the end of the chain
          continue;
        case T_JUMP:
        case T_GOTO:
          if (r.target === T_JUMP) {
            this.chainStack[sp] = chain;
            this.posStack[sp] = pos;
            sp++;
          }
          chain = r.jump;
          pos = 0;
          cand = candidates(chains[chain], cls, dport, src4);
          rules = chains[chain].rules;
          continue;
        case T_ACTION: {
          const verdict = r.action!.run(ctx, now);
          if (verdict === XT_CONTINUE) continue;
          return verdict;
        }
      }
    }
  }

  private policy(base: number, ctx: PacketContext): number {
    const ch = this.compiled.chains[base];
    this.counters.chainPkts[ch.counter] += 1;
    this.counters.chainBytes[ch.counter] += ctx.length;
    return ch.policy;
  }

  private ruleMatches(r: CompiledRule, ctx: PacketContext, now: number): boolean {
    const v = ctx.view;
    if (r.proto !== 0 && (v.proto === r.proto) === r.protoInv) return false;
    if (r.srcWords !== 0 && inPrefix(v.src, r.src, r.srcMask, r.srcWords) === r.srcInv) return false;
    if (r.dstWords !== 0 && inPrefix(v.dst, r.dst, r.dstMask, r.dstWords) === r.dstInv) return false;
    if (r.inPat >= 0 && this.ifMatch(r.inPat, ctx.indev) === r.inInv) return false;
    if (r.outPat >= 0 && this.ifMatch(r.outPat, ctx.outdev) === r.outInv) return false;
    if (r.fragment !== 0 && (v.fragOffset !== 0) !== r.fragment > 0) return false;
    const ms = r.matches;
    for (let i = 0; i < ms.length; i++) if (!ms[i].match(ctx, now)) return false;
    return true;
  }

  private ifMatch(pat: number, ifindex: number): boolean {
    const cache = this.ifCache[pat];
    if (ifindex < cache.length) {
      const c = cache[ifindex];
      if (c !== 0) return c === 1;
    } else if (ifindex >= DENSE_IFINDEX) {
      const c = this.ifBig[pat].get(ifindex);
      if (c !== undefined) return c === 1;
    }
    return this.ifResolve(pat, ifindex);
  }

  /** Slow path, once per (pattern, ifindex, link generation). */
  private ifResolve(pat: number, ifindex: number): boolean {
    const name = ifindex === 0 ? '' : this.deps.ifname(ifindex);
    if (name === undefined) return false; // unknown now; ask again next time
    const m = ifaceMatches(this.compiled.ifacePatterns[pat], name);
    if (ifindex >= DENSE_IFINDEX) {
      this.ifBig[pat].set(ifindex, m ? 1 : 2);
    } else {
      let cache = this.ifCache[pat];
      if (ifindex >= cache.length) {
        let size = cache.length;
        while (size <= ifindex) size *= 2;
        const grown = new Uint8Array(size);
        grown.set(cache);
        this.ifCache[pat] = cache = grown;
      }
      cache[ifindex] = m ? 1 : 2;
    }
    return m;
  }
}

/** -s / -d: the first `words` address words of `addr` under `mask` equal `net`. */
function inPrefix(addr: Uint32Array, net: Uint32Array, mask: Uint32Array, words: number): boolean {
  for (let i = 0; i < words; i++) if ((addr[i] & mask[i]) >>> 0 !== net[i]) return false;
  return true;
}
