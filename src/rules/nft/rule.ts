/**
 * One nft rule ({ rule: { expr: [...] } }) as engine rules. Matches and limit build the
 * rule's conditions; then its statements run in order. One statement is the rule's target;
 * several (log then drop, a verdict map) become one rule per statement with the same
 * conditions when the conditions have no side effect, or else one rule jumping to a chain
 * of its own that holds them (so a limit is taken once).
 */
import type { ParsedChain, ParsedRule, ParsedTarget } from '../types';
import { copyRule, newRule, type RuleBuild } from './build';
import { logTarget } from './log';
import { limitMatch } from './limit';
import { ctHelperTarget, type CtHelperObjects } from './ct-helper';
import { concatElement, concatField, elementsOverlap } from './concat';
import { mangleTarget } from './mangle';
import { NAT_STATEMENTS, natTarget } from './nat';
import { matchExpr } from './match';
import { notrackTarget } from './notrack';
import { isObject, kindOf, NftError } from './path';
import { rejectTarget } from './reject';
import type { SetDirectory } from './values';
import { VERDICTS, verdictTarget } from './verdict';

export interface RuleScope {
  /** the engine's table name and chain name of the rule's chain */
  table: string;
  chain: string;
  family: 0 | 4 | 6;
  sets: SetDirectory;
  helperId(name: string): number;
  ifindex(name: string): number;
  /** the table's ct helper objects */
  ctHelpers: CtHelperObjects;
  /** an nft chain of this table by name → the engine's chain name */
  chainName(name: string, path: string): string;
  /** a new chain of the engine's own for this rule's statements */
  newChain(): string;
}

export interface TranslatedRule {
  rules: ParsedRule[];
  /** chains made for the rule (see the file comment) */
  chains: ParsedChain[];
  /** the engine rules whose packets together are the nft rule's (its counter) */
  counted: ParsedRule[];
}

const WHY_NOT: Record<string, string> = {
  queue: 'queue is not supported (nfqwall is the queue reader)',
};

/** One statement that is a target: a verdict, log, reject, notrack. */
function targetOf(b: RuleBuild, kind: string, value: unknown, path: string, scope: RuleScope): ParsedTarget | null {
  if (VERDICTS.has(kind)) return verdictTarget(kind, value, path, scope.chainName);
  if (kind === 'log') return logTarget(b, value, path);
  if (kind === 'reject') return rejectTarget(b, value, path);
  if (kind === 'notrack') return notrackTarget(b, path);
  if (kind === 'mangle') return mangleTarget(b, value, path);
  if (NAT_STATEMENTS.has(kind)) return natTarget(b, kind, value, path);
  if (kind === 'ct helper') return ctHelperTarget(value, path, scope.ctHelpers, scope.family);
  return null;
}

/** A verdict map's elements: an anonymous { set: [[KEY, VERDICT], …] } or a named map "@NAME" of type verdict. */
function mapElements(data: unknown, path: string, sets: SetDirectory): { list: unknown[]; at: string } {
  if (typeof data === 'string' && data.startsWith('@')) {
    const named = sets.get(data.slice(1));
    if (!named) throw new NftError(path, `no map "${data.slice(1)}" in this table`);
    if (named.map !== 'verdict') throw new NftError(path, `"${data.slice(1)}" is not a verdict map`);
    return { list: named.elems, at: `${named.path}.elem` };
  }
  if (isObject(data) && Array.isArray(data.set)) return { list: data.set, at: `${path}.set` };
  throw new NftError(path, 'a verdict map is { set: [[KEY, VERDICT], …] } or "@NAME"');
}

/**
 * A map with a concatenated key becomes one rule per element in the map's order: exact
 * while no two elements overlap (with prefixes and ranges, which one nft_set_pipapo finds
 * for a packet in both is its own order): refused otherwise.
 */
function refuseOverlaps(b: RuleBuild, key: unknown, list: unknown[], at: string): void {
  const parts = (key as { concat: unknown[] }).concat;
  if (!Array.isArray(parts)) return;
  const infos = parts.map((x, i) => concatField(x, `${at}.key.concat[${i}]`));
  const elems = list.map((el, k) => concatElement(b, infos, Array.isArray(el) ? el[0] : el, `${at}[${k}][0]`));
  for (let i = 0; i < elems.length; i++)
    for (let j = 0; j < i; j++)
      if (elementsOverlap(elems[i], elems[j]))
        throw new NftError(`${at}[${i}][0]`, `overlaps element ${j} of the map: which verdict nftables takes for a packet in both is not defined here`);
}

export function translateRule(expr: unknown, path: string, scope: RuleScope): TranslatedRule {
  if (!Array.isArray(expr)) throw new NftError(`${path}.expr`, 'a rule has a list of expressions');
  const b: RuleBuild = {
    rule: newRule(scope.table, scope.chain, scope.family),
    impure: false,
    sets: scope.sets,
    helperId: scope.helperId,
    ifindex: scope.ifindex,
    alternatives: [],
  };
  /** statements after the conditions: a target each, or the per-element rules of a verdict map */
  const steps: { target: ParsedTarget; key?: [unknown, unknown, string] }[] = [];
  expr.forEach((st, i) => {
    const p = `${path}.expr[${i}]`;
    const kind = kindOf(st);
    const value = kind ? (st as Record<string, unknown>)[kind] : undefined;
    // meta mark set ct mark without a connection ends the rule there (NFT_BREAK), CONNMARK goes on
    const prev = i > 0 ? expr[i - 1] : null;
    if (kindOf(prev) === 'mangle' && JSON.stringify((prev as { mangle: { value?: unknown } }).mangle.value ?? null).includes('"ct"'))
      throw new NftError(p, 'a statement after setting a mark from ct mark is not supported (nft stops the rule there when the packet has no connection)');
    if (kind === 'counter') {
      if (typeof value === 'string') throw new NftError(p, 'named counters are not supported');
      return; // every engine rule counts its packets
    }
    if (kind === 'match' || kind === 'limit') {
      if (steps.length > 0) throw new NftError(p, `a ${kind} after a statement is not supported`);
      if (kind === 'match') matchExpr(b, value, `${p}.match`);
      else limitMatch(b, value, p);
      return;
    }
    if (kind === 'vmap') {
      if (i !== expr.length - 1) throw new NftError(p, 'statements after a verdict map are not supported');
      if (!isObject(value)) throw new NftError(`${p}.vmap`, 'a verdict map is { key, data }');
      const { list, at } = mapElements(value.data, `${p}.vmap.data`, scope.sets);
      if (kindOf(value.key) === 'concat') refuseOverlaps(b, value.key, list, at);
      list.forEach((el, k) => {
        const ep = `${at}[${k}]`;
        if (!Array.isArray(el) || el.length !== 2) throw new NftError(ep, 'a map element is [KEY, VERDICT]');
        const vk = kindOf(el[1]);
        if (!vk || !VERDICTS.has(vk)) throw new NftError(`${ep}[1]`, 'not a verdict');
        const target = verdictTarget(vk, (el[1] as Record<string, unknown>)[vk], `${ep}[1]`, scope.chainName);
        steps.push({ target, key: [value.key, el[0], `${ep}[0]`] });
      });
      return;
    }
    const t = kind ? targetOf(b, kind, value, p, scope) : null;
    if (!t) throw new NftError(p, kind && WHY_NOT[kind] ? WHY_NOT[kind] : `unsupported expression "${kind ?? JSON.stringify(st)}"`);
    steps.push({ target: t });
  });
  const base = b.rule;
  base.familyFlag = base.family; // so that rules -L shows -4 / -6
  if (b.alternatives.length > 0) {
    if (steps.length > 1 || steps.some((s) => s.key) || b.impure)
      throw new NftError(b.alternatives[0].path, 'a set of interface names together with several statements or a limit is not supported');
    if (steps.length === 1) base.target = steps[0].target;
    let rules = [base];
    for (const alt of b.alternatives)
      rules = rules.flatMap((r) =>
        alt.apply.map((set) => {
          const c = copyRule(r);
          set(c);
          return c;
        }),
      );
    return { rules, chains: [], counted: rules };
  }
  if (steps.length === 0) return { rules: [base], chains: [], counted: [base] };
  if (steps.length === 1 && !steps[0].key) {
    base.target = steps[0].target;
    return { rules: [base], chains: [], counted: [base] };
  }
  /** one rule per step over the conditions in `on` */
  const expand = (on: ParsedRule, chain: string): ParsedRule[] =>
    steps.map((s) => {
      const sb: RuleBuild = { ...b, rule: copyRule(on), impure: false };
      sb.rule.chain = chain;
      if (s.key) matchExpr(sb, { op: '==', left: s.key[0], right: s.key[1] }, s.key[2]);
      sb.rule.target = s.target;
      return sb.rule;
    });
  if (!b.impure) {
    const rules = expand(base, scope.chain);
    // each rule of a split sees every packet of the nft rule; the elements of a map, a part each
    return { rules, chains: [], counted: steps[0].key ? rules : [rules[0]] };
  }
  const bad = steps.find((s) => s.target.kind === 'goto' || (s.target.kind === 'standard' && s.target.name === 'RETURN'));
  if (bad) throw new NftError(path, `${bad.target.kind === 'goto' ? 'goto' : 'return'} after a limit together with other statements is not supported`);
  const own = scope.newChain();
  const inner = newRule(scope.table, own, scope.family);
  inner.family = base.family;
  base.target = { kind: 'jump', name: own, at: null, state: null };
  return {
    rules: [base],
    chains: [{ name: own, builtin: false, policy: null, counters: [0, 0], line: 0, col: 0, rules: expand(inner, own) }],
    counted: [base],
  };
}
