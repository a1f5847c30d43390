/**
 * One nft rule being translated into the engine's ParsedRule: the base fields (family,
 * protocol, addresses, interfaces) while nothing with a side effect has come before, then
 * matches in the order nft evaluates them.
 */
import type { Family, ParsedMatch, ParsedRule, ParsedTarget, ParseEnv, Token } from '../types';
import { TARGETS } from '../targets/index';
import { emptyRule } from '../parsed-rule';
import { MATCHES } from '../matches/index';
import { lookupMatch, type LookupState } from './lookup';
import { NftError } from './path';
import type { SetDirectory } from './values';

export interface RuleBuild {
  rule: ParsedRule;
  /**
   * A match with a side effect (limit) is in rule.matches: tests after it must stay after
   * it, so they go into rule.matches too and set no base field.
   */
  impure: boolean;
  /** the named sets of the rule's table */
  sets: SetDirectory;
  helperId(name: string): number;
  /**
   * Tests with several values that the engine writes as one rule each (iifname { "a", "b" }):
   * the rule becomes one engine rule per combination, each applying its setters to a copy.
   */
  alternatives: { key: string; path: string; apply: ((r: ParsedRule) => void)[] }[];
  /** an interface name → its index now (0: none), as nft resolves meta iif/oif when it loads a rule */
  ifindex(name: string): number;
}

/** A token for what the front end builds: nft rules have no line and column. */
export function nftToken(text: string): Token {
  return { text, line: 0, col: 0, quoted: true };
}

/**
 * A copy of a rule for one more engine rule over the same conditions: its own match list, the
 * match states shared (a named set's LookupRanges must stay the set's own, which a deep copy
 * would not keep).
 */
export function copyRule(r: ParsedRule): ParsedRule {
  return { ...r, matches: r.matches.slice() };
}

export function newRule(table: string, chain: string, family: Family): ParsedRule {
  const r = emptyRule(table, chain, 0);
  r.family = family;
  return r;
}

function envAt(path: string, b: RuleBuild): ParseEnv {
  return {
    error(_at, message) {
      throw new NftError(path, message);
    },
    helperId: b.helperId,
  };
}

/**
 * An iptables match built through its own option parser, as if the rule said
 * `-m NAME [!] --OPT ARG…` for each of opts.
 */
export function addIptablesMatch(b: RuleBuild, name: string, opts: [string, string[], boolean][], path: string): void {
  const mod = MATCHES[name];
  const env = envAt(path, b);
  const at = nftToken(name);
  const s = mod.create();
  for (const [opt, args, inv] of opts) mod.parse(s, opt, args.map(nftToken), inv, nftToken(`--${opt}`), env);
  const r = b.rule;
  mod.finalize(s, { proto: r.proto, protoInv: r.protoInv, family: r.family, table: r.table, chain: r.chain }, at, env);
  b.rule.matches.push({ name, at, explicit: true, state: s } satisfies ParsedMatch);
}

export function addLookup(b: RuleBuild, s: Partial<LookupState> & Pick<LookupState, 'field' | 'text'>): void {
  b.rule.matches.push({ name: lookupMatch.name, at: nftToken(s.text), explicit: true, state: { ...lookupMatch.create(), ...s } });
}

/** The rule can only match packets of family fam (nft's implicit `meta nfproto` dependency). */
export function requireFamily(b: RuleBuild, fam: 4 | 6, path: string): void {
  if (b.impure) return; // the lookup after the side effect tests the family itself
  const r = b.rule;
  if (r.family !== 0 && r.family !== fam) throw new NftError(path, `an IPv${fam} test in a rule that only IPv${r.family} packets reach: it can never match`);
  r.family = fam;
}

/** A protocol the rule's later tests need: kept as the rule's protocol when nothing says otherwise, so candidate lists skip the rule for other protocols. */
export function hintProto(b: RuleBuild, proto: number): void {
  const r = b.rule;
  if (!b.impure && r.proto === 0 && !r.protoInv) r.proto = proto;
}

/** An iptables target built through its own option parser (`-j NAME --OPT ARG…`). */
export function iptablesTarget(b: RuleBuild, name: string, opts: [string, string[]][], path: string): ParsedTarget {
  const mod = TARGETS[name];
  const env = envAt(path, b);
  const at = nftToken(name);
  const s = mod.create();
  for (const [opt, args] of opts) mod.parse(s, opt, args.map(nftToken), false, nftToken(`--${opt}`), env);
  const r = b.rule;
  mod.finalize(s, { proto: r.proto, protoInv: r.protoInv, family: r.family, table: r.table, chain: r.chain }, at, env);
  return { kind: 'ext', name, at, state: s };
}
