/**
 * Shared types of the rule engine: tokens with source positions, errors, the
 * parsed rule set, and the interfaces every match module / target implements.
 */
import type { NamedSets } from './nft/named-sets';
import type { PacketContext } from '../conntrack/context';
import type { SupportedTable } from './tables';

/** One word of a rule line after shell-like unquoting, with its 1-based position. */
export interface Token {
  text: string;
  line: number;
  col: number;
  /** true when the word was (partly) in double quotes (iptables reads a quoted "!" as a negation all the same) */
  quoted: boolean;
}

export interface RuleError {
  file: string;
  line: number;
  col: number;
  message: string;
}

/** Where parse errors go. Each module reports against the token at fault. */
export interface ErrorSink {
  error(at: { line: number; col: number }, message: string): void;
}

/** 0 = both families, 4 = IPv4 only, 6 = IPv6 only. */
export type Family = 0 | 4 | 6;

/** What a match module's finalize() may look at from its rule. */
export interface RuleInfo {
  /** -p value (0 = any), and whether it was negated. */
  proto: number;
  protoInv: boolean;
  /** Family forced by -4/-6 or by addresses (0 = not yet known). */
  family: Family;
  table: string;
  chain: string;
}

/** A predicate compiled from one match instance. Called per packet: must not allocate. */
export interface CompiledMatch {
  match(ctx: PacketContext, now: number): boolean;
}

/** Shared per-engine state the compiled predicates may touch. */
export interface MatchRuntime {
  /** Set to 1 by a match that wants the packet dropped (the kernel's par->hotdrop). */
  hotdrop: number;
}

/**
 * What compiled targets call outside the rule engine, passed in by whoever loads the rules
 * (src/pipeline/load-rules.ts gives the daemon's: /sys/class/net names, the log, this
 * thread's REJECT sender). Called on the per-packet path only by rules whose target runs.
 */
export interface TargetServices {
  /** ifindex → interface name (undefined when unknown) */
  ifname(ifindex: number): string | undefined;
  /** a LOG line (kernel nf_log format) and its syslog level 0..7 */
  log(line: string, level: number): void;
  /** send the reply for reject kind RJ_* (see targets/REJECT.ts; createRejectSender builds one) */
  reject(kind: number, ctx: PacketContext): void;
  /**
   * The address NAT takes on interface ifindex into out (4 words; IPv4 word 0), false when it
   * has none: toward dst (MASQUERADE: inet_select_addr / ipv6_dev_get_saddr), or with dst null
   * its first address (REDIRECT). Called for a connection's first packet only. Absent (tests,
   * check): MASQUERADE and REDIRECT find no address and drop.
   */
  natAddress?(ifindex: number, family: number, dst: Uint32Array | null, out: Uint32Array): boolean;
}

export interface CompileEnv {
  /** helper name → id (0 if unknown); from src/conntrack/helpers/registry.ts, passed in. */
  helperId(name: string): number;
  runtime: MatchRuntime;
  /** for targets; a rule set compiled only to be checked gets services that refuse to run */
  services: TargetServices;
}

export interface OptSpec {
  /** long option name without the leading dashes */
  name: string;
  /** whether `! --name` is allowed */
  invertible: boolean;
  /** number of arguments (0 for flags) */
  args: 0 | 1 | 2;
}

export interface ParseEnv extends ErrorSink {
  /** the rule's -p as far as read (iptables-save's name, e.g. "tcp"), for service names of ports */
  protoName?: string;
  /** helper name → id, 0 if no such helper (for --helper validation); optional at parse time */
  helperId?(name: string): number;
}

/**
 * One match extension (the userspace libxt_NAME.c + kernel xt_NAME.c pair).
 * S is the parsed state of one instance; it must be plain data (cloneable, comparable).
 */
export interface MatchModule<S = any> {
  readonly name: string;
  readonly options: readonly OptSpec[];
  /** Known iptables options of this module that nfqwall does not implement (reported as unsupported). */
  readonly unsupported?: readonly string[];
  /** Protocol the kernel requires (`-p` value, not negated), 0 = none. */
  readonly proto?: number;
  /** Family the module exists in only (icmp: 4, icmp6: 6). */
  readonly family?: Family;
  create(): S;
  /** One option; arg tokens per spec; report errors through env. */
  parse(s: S, opt: string, args: Token[], inv: boolean, optTok: Token, env: ParseEnv): void;
  /** Called once the whole rule is read: check required options. `at` = the -m NAME token. */
  finalize(s: S, rule: RuleInfo, at: Token, env: ParseEnv): void;
  /** Family implied by the instance (addresses in iprange), 0 = either. */
  familyOf(s: S): Family;
  /** iptables-save words after `-m NAME`. */
  save(s: S, family: Family): string[];
  compile(s: S, env: CompileEnv): CompiledMatch;
  /**
   * A compiled rule set goes into service (an engine, not `nfqwall check`), with every use of
   * this match in it (possibly none): state kept beside the rules (recent lists, the local
   * routes of addrtype) is set up or freed here. Errors go to env against a use's `at`.
   */
  inService?(uses: readonly ParsedMatch[], env: ErrorSink): void;
}

/** CompiledTarget.run's answer for a non-terminal target: go on with the next rule (the kernel's XT_CONTINUE). */
export const XT_CONTINUE = -1;

/**
 * One target instance of one rule, compiled (the kernel's xt_target.target()). The engine
 * calls run() when the rule matches, after counting it; it returns XT_CONTINUE (LOG, CT,
 * and the mark-setting targets) or the verdict that ends the walk, NF_ACCEPT or NF_DROP.
 * What a target changes about the packet it writes into ctx, where the pipeline picks it
 * up once the packet is accepted (docs/ARCHITECTURE.md, "Targets"):
 *  - the packet mark: ctx.mark = m and ctx.verdictFlags |= VERDICT_SET_MARK;
 *  - the packet bytes: rewritten in place in ctx.view.buf (checksums made valid; a new
 *    length within ctx.room with the IP length fields updated; ctx.view parsed again over
 *    the new length so that later rules see the new packet), then
 *    ctx.verdictFlags |= VERDICT_SET_PAYLOAD; never for a PKTF_TRUNCATED packet;
 *  - the connection mark: ctx.conn.setMark(ctx.entry, m) and ctx.ctmark = m, when
 *    ctx.entry >= 0 and ctx.conn is set (the raw table runs before conntrack: no entry).
 * Must not allocate on the common path.
 */
export interface CompiledTarget {
  run(ctx: PacketContext, now: number): number;
}

/**
 * One target extension (libxt_NAME.c + xt_NAME.c): options, parse, save and the compiled
 * action, in one file under targets/, registered in targets/index.ts.
 */
export interface TargetModule<S = any> {
  readonly name: string;
  readonly options: readonly OptSpec[];
  readonly unsupported?: readonly string[];
  /** Tables the target is allowed in. */
  readonly tables: readonly string[];
  /**
   * Built-in chains the target is allowed in (xt_target.hooks), also through user chains: a
   * rule is refused when a chain outside these reaches it (checked at COMMIT). Absent: any.
   */
  readonly hooks?: readonly string[];
  create(): S;
  parse(s: S, opt: string, args: Token[], inv: boolean, optTok: Token, env: ParseEnv): void;
  finalize(s: S, rule: RuleInfo, at: Token, env: ParseEnv): void;
  familyOf(s: S): Family;
  save(s: S, family: Family): string[];
  compile(s: S, env: CompileEnv): CompiledTarget;
}

export interface ParsedMatch {
  name: string;
  /** the -m NAME token (or the option token for an implicit protocol match) */
  at: Token;
  explicit: boolean;
  state: any;
}

/** A rule's address test: words + mask, per family. */
export interface AddrSpec {
  family: 4 | 6;
  addr: number[]; // 4 u32 words
  mask: number[]; // 4 u32 words
  prefix: number; // -1 when the mask is not a prefix
}

export type Verdict = 'ACCEPT' | 'DROP' | 'RETURN';

export interface ParsedTarget {
  /** 'standard' (ACCEPT/DROP/RETURN), 'jump', 'goto', 'ext' (module target), 'none' (no -j) */
  kind: 'standard' | 'jump' | 'goto' | 'ext' | 'none';
  name: string;
  at: Token | null;
  state: any;
}

export interface ParsedRule {
  table: string;
  chain: string;
  line: number;
  /** -4 / -6 / 0 (effective: includes what addresses and matches imply) */
  family: Family;
  /** -4/-6 as written */
  familyFlag: Family;
  proto: number;
  protoInv: boolean;
  src: AddrSpec | null;
  srcInv: boolean;
  dst: AddrSpec | null;
  dstInv: boolean;
  inIface: string | null;
  inInv: boolean;
  outIface: string | null;
  outInv: boolean;
  /** -f: 1 (non-first fragments only), ! -f: -1 (never a non-first fragment), 0: no test. IPv4 only. */
  fragment: 0 | 1 | -1;
  matches: ParsedMatch[];
  target: ParsedTarget;
  /** [pkts, bytes] from a `[p:b]` prefix (iptables-save -c), or null */
  counters: [number, number] | null;
}

export interface ParsedChain {
  name: string;
  builtin: boolean;
  /** 'ACCEPT' | 'DROP' for built-in chains, null for user chains */
  policy: 'ACCEPT' | 'DROP' | null;
  counters: [number, number];
  line: number;
  col: number;
  rules: ParsedRule[];
}

export interface ParsedTable {
  name: SupportedTable;
  line: number;
  /** chains in declaration order (built-ins first, as iptables-save writes them) */
  chains: ParsedChain[];
}

/** Where the engine walks a base chain: the raw slots come before conntrack, the mangle, filter and nat slots after it. */
export type HookSlot =
  | 'raw/PREROUTING'
  | 'raw/OUTPUT'
  | 'filter/INPUT'
  | 'filter/FORWARD'
  | 'filter/OUTPUT'
  | 'mangle/PREROUTING'
  | 'mangle/INPUT'
  | 'mangle/FORWARD'
  | 'mangle/OUTPUT'
  | 'mangle/POSTROUTING'
  | 'nat/PREROUTING'
  | 'nat/INPUT'
  | 'nat/OUTPUT'
  | 'nat/POSTROUTING';

/** A base chain placed on a slot, for the packets of one family (0 = both). */
export interface BaseChain {
  slot: HookSlot;
  table: string;
  chain: string;
  family: Family;
}

export interface RuleSet {
  file: string;
  tables: ParsedTable[];
  /**
   * The base chains of each slot in walk order (an nftables rule set: several per hook, by
   * priority; a packet goes on to the next one unless dropped). Absent: the iptables tables'
   * built-in chains, one per slot.
   */
  bases?: BaseChain[];
  /** an nftables rule set: the JSON as read, to be printed back (with counters) by `rules -L` */
  nft?: NftSource;
}

export interface NftSource {
  /** the document as nft -j wrote it (its named sets' elements as they are now) */
  doc: { nftables: unknown[] };
  /** the named sets, by "FAMILY TABLE SET": changed at run time by `nfqwall nft add/delete element` */
  sets: NamedSets;
  /**
   * By canonical rule number (tables, chains, rules as compiled): the index in doc.nftables
   * of the nft rule whose counter that engine rule's packets count for, or -1 (the other
   * engine rules an nft rule became see the same packets, or a part of them).
   */
  counts: number[];
}
