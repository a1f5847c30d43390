/**
 * An nftables rule set as `nft -j list ruleset` writes it (libnftables-json(5), schema 1)
 * → the RuleSet the iptables parser also produces: tables of family ip, ip6 and inet; each
 * base chain placed on the engine's slot for its hook and priority (before conntrack:
 * raw PREROUTING / OUTPUT; after it: filter INPUT / FORWARD / OUTPUT), several on one slot
 * in priority order; regular chains; rules through rule.ts. What has no exact place is
 * refused with its JSON path.
 */
import type { BaseChain, Family, HookSlot, ParsedChain, ParsedTable, RuleError, RuleSet } from '../types';
import { validateGraph, type JumpRef } from '../parse';
import { HOOK_SLOTS } from '../compile';
import { nftToken } from './build';
import { isObject, kindOf, NftError } from './path';
import { translateRule } from './rule';
import type { SetDirectory } from './values';
import { NamedSet, type NamedSets } from './named-sets';
import { sysIfindex } from '../ifname';
import type { CtHelperObjects } from './ct-helper';

export interface NftParseOptions {
  helperId?(name: string): number;
  /** interface name → index (0: no such interface); default: /sys/class/net of this network namespace */
  ifindex?(name: string): number;
}

/** What nft -j writes: an object whose "nftables" is a list (the first non-space character is "{"). */
export function isNftJson(text: string): boolean {
  if (!/^\s*\{/.test(text)) return false;
  try {
    const doc: unknown = JSON.parse(text);
    return isObject(doc) && Array.isArray(doc.nftables);
  } catch {
    return false;
  }
}

const FAMILIES: Record<string, Family> = { ip: 4, ip6: 6, inet: 0 };
const PRIORITIES: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };
/** NF_IP_PRI_CONNTRACK: where nf_conntrack_in runs at prerouting and output */
const PRI_CONNTRACK = -200;

/** The slot of a base chain, or why it has none. */
function slotOf(hook: string, prio: number): HookSlot | string {
  switch (hook) {
    case 'prerouting':
      if (prio < PRI_CONNTRACK) return 'raw/PREROUTING';
      return "priority -200 is conntrack's own: the order is not defined";
    case 'output':
      if (prio < PRI_CONNTRACK) return 'raw/OUTPUT';
      if (prio > PRI_CONNTRACK) return 'filter/OUTPUT';
      return "priority -200 is conntrack's own: the order is not defined";
    case 'input':
      return 'filter/INPUT';
    case 'forward':
      return 'filter/FORWARD';
    case 'postrouting':
      return 'postrouting chains are not supported';
  }
  return `hook "${hook}" is not supported`;
}

interface TableInfo {
  family: Family;
  name: string;
  key: string;
  sets: Map<string, NamedSet>;
  ctHelpers: CtHelperObjects;
  table: ParsedTable;
  chains: Map<string, { chain: ParsedChain; path: string; slot: HookSlot | null; base: boolean }>;
}

function str(o: Record<string, unknown>, k: string, path: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw new NftError(`${path}.${k}`, `"${k}" must be a string`);
  return v;
}

/** Objects that change nothing where no rule uses them. */
const INERT = new Set(['metainfo', 'counter', 'quota', 'limit']);

/** the hooks nat chains attach to (nft_chain_nat's) */
const NAT_HOOKS = new Set(['prerouting', 'input', 'output', 'postrouting']);

/** The chains a chain reaches through jump and goto, itself included. */
function reachable(name: string, chains: Map<string, ParsedChain>, out = new Set<string>()): Set<string> {
  if (out.has(name)) return out;
  out.add(name);
  for (const r of chains.get(name)?.rules ?? []) if (r.target.kind === 'jump' || r.target.kind === 'goto') reachable(r.target.name, chains, out);
  return out;
}

/**
 * nat base chains that translate: on the engine's nat slot of their hook, in a table named nat
 * of their own (with the regular chains they reach, which no other base chain may reach: the
 * NAT targets exist in nat tables only); one per hook and family, since the kernel stops at the
 * first nat chain that binds the connection and nfqwall's walk would go on. nat chains that
 * change nothing stay out (the null binding every connection gets then changes no tuple).
 */
function placeNatChains(
  set: RuleSet,
  nats: { name: string; path: string; slot: HookSlot; family: Family; prio: number; order: number; policy: 'ACCEPT' | 'DROP' | null; info: TableInfo }[],
  bases: (BaseChain & { prio: number; order: number })[],
  chains: Map<string, ParsedChain>,
  itemOf: (r: object) => unknown,
  error: (m: string) => void,
): void {
  // prerouting filter chains after conntrack that act: on the pre-routing crossing (mangle PREROUTING)
  const early = nats.filter((n) => n.slot === 'mangle/PREROUTING' && unplacedProblem(n.name, n.policy, chains, itemOf) !== null);
  for (const n of early) bases.push({ slot: n.slot, table: 'filter', chain: n.name, family: n.family, prio: n.prio, order: n.order });
  const others = new Set<string>();
  for (const b of bases) reachable(b.chain, chains, others);
  const natTables = new Map<TableInfo, ParsedTable>();
  const placed: typeof nats = [];
  for (const n of nats) {
    if (n.slot === 'mangle/PREROUTING' || unplacedProblem(n.name, n.policy, chains, itemOf) === null) continue;
    const clash = placed.find((p) => p.slot === n.slot && (p.family === 0 || n.family === 0 || p.family === n.family));
    if (clash) {
      error(
        `${n.path}: a second nat chain on the ${n.slot.slice(4).toLowerCase()} hook is not supported (the kernel stops at the first that binds the connection)`,
      );
      continue;
    }
    const reach = reachable(n.name, chains);
    const shared = [...reach].find((c) => others.has(c));
    if (shared) {
      error(`${n.path}: chain ${shared.split('/').pop()} is reached from a nat chain and from another base chain: not supported`);
      continue;
    }
    let nt = natTables.get(n.info);
    if (!nt) {
      nt = { name: 'nat', line: 0, chains: [] };
      natTables.set(n.info, nt);
      set.tables.push(nt);
    }
    for (const c of reach) {
      const ch = chains.get(c)!;
      const from = set.tables.find((t) => t.chains.includes(ch));
      if (from && from !== nt) from.chains.splice(from.chains.indexOf(ch), 1);
      if (!nt.chains.includes(ch)) nt.chains.push(ch);
      for (const r of ch.rules) r.table = 'nat';
    }
    placed.push(n);
    bases.push({ slot: n.slot, table: 'nat', chain: n.name, family: n.family, prio: n.prio, order: n.order });
  }
  // the crossing walks mangle PREROUTING before nat PREROUTING, whatever their priorities
  for (const e of early) {
    const natFirst = placed.find((n) => n.slot === 'nat/PREROUTING' && n.prio <= e.prio && (n.family === 0 || e.family === 0 || n.family === e.family));
    if (natFirst)
      error(
        `${e.path}: a prerouting chain at priority ${e.prio} after the nat chain at ${natFirst.prio} is not supported (nfqwall runs prerouting filter chains before nat prerouting)`,
      );
  }
}

/**
 * Why a base chain nfqwall has no place for (a prerouting chain after conntrack, postrouting,
 * nat or route chains) could change a packet or what is listed, or null when it cannot: policy
 * accept, and every rule it reaches ends in nothing, accept, return, jump or goto, without a
 * counter statement (its counts are listed). Walking such a chain has no effect (a nat chain
 * without NAT statements gives connections the null binding, which changes no tuple when no
 * chain translates anything), so it is left out.
 */
function unplacedProblem(name: string, policy: string | null, chains: Map<string, ParsedChain>, itemOf: (r: object) => unknown): string | null {
  if (policy !== 'ACCEPT') return 'its policy drops';
  const seen = new Set<string>();
  const walk = (n: string): string | null => {
    if (seen.has(n)) return null;
    seen.add(n);
    for (const r of chains.get(n)?.rules ?? []) {
      const t = r.target;
      const item = itemOf(r);
      const expr = isObject(item) && isObject(item.rule) && Array.isArray(item.rule.expr) ? item.rule.expr : [];
      if (expr.some((st) => kindOf(st) === 'counter')) return 'a rule reached from it has a counter';
      if (t.kind === 'ext' || (t.kind === 'standard' && t.name === 'DROP'))
        return `a rule reached from it has ${t.kind === 'ext' ? `a statement (${t.at?.text ?? t.name})` : 'drop'}`;
      if (t.kind === 'jump' || t.kind === 'goto') {
        const w = walk(t.name);
        if (w) return w;
      }
    }
    return null;
  };
  return walk(name);
}

export function parseNftRuleset(text: string, file: string, opts: NftParseOptions = {}): { set: RuleSet; errors: RuleError[] } {
  const errors: RuleError[] = [];
  const set: RuleSet = { file, tables: [], bases: [] };
  const fail = (e: unknown): void => {
    if (!(e instanceof NftError)) throw e;
    errors.push({ file, line: 0, col: 0, message: e.message });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    errors.push({ file, line: 0, col: 0, message: `not JSON: ${(e as Error).message}` });
    return { set, errors };
  }
  if (!isObject(doc) || !Array.isArray(doc.nftables)) {
    errors.push({ file, line: 0, col: 0, message: 'not an nft -j rule set (no "nftables" list)' });
    return { set, errors };
  }
  const items = doc.nftables as unknown[];
  const tables = new Map<string, TableInfo>();
  const namedSets: NamedSets = new Map();
  const tableOf = (o: Record<string, unknown>, path: string): TableInfo => {
    const t = tables.get(`${str(o, 'family', path)} ${str(o, 'table', path)}`);
    if (!t) throw new NftError(path, `no table ${String(o.family)} ${String(o.table)} before it`);
    return t;
  };
  const bases: (BaseChain & { prio: number; order: number })[] = [];
  /** base chains with no place in nfqwall: loaded only when they cannot change anything (see unplacedProblem) */
  const unplaced: { name: string; path: string; why: string; policy: 'ACCEPT' | 'DROP' | null }[] = [];
  /** nat base chains: placed on the engine's nat slots when they hold NAT (else, changing nothing, left out) */
  const natBases: {
    name: string;
    path: string;
    slot: HookSlot;
    family: Family;
    prio: number;
    order: number;
    policy: 'ACCEPT' | 'DROP' | null;
    info: TableInfo;
  }[] = [];
  const rules: [Record<string, unknown>, string, number][] = [];
  // pass 1: tables, sets, chains (nft -j lists them before the rules, but a hand-written file need not)
  items.forEach((item, i) => {
    const path = `nftables[${i}]`;
    try {
      const kind = kindOf(item);
      const o = kind ? (item as Record<string, unknown>)[kind] : null;
      if (!kind || !isObject(o)) throw new NftError(path, 'an item is { KIND: { … } }');
      const p = `${path}.${kind}`;
      switch (kind) {
        case 'metainfo':
          if (o.json_schema_version !== undefined && o.json_schema_version !== 1)
            throw new NftError(`${p}.json_schema_version`, `schema version ${JSON.stringify(o.json_schema_version)} (nfqwall reads version 1)`);
          return;
        case 'table': {
          const family = str(o, 'family', p);
          if (!(family in FAMILIES)) throw new NftError(`${p}.family`, `tables of family "${family}" are not supported (ip, ip6, inet)`);
          const name = str(o, 'name', p);
          const key = `${family} ${name}`;
          if (tables.has(key)) throw new NftError(p, `table ${key} listed twice`);
          const table: ParsedTable = { name: 'filter', line: 0, chains: [] };
          tables.set(key, { family: FAMILIES[family], name, key, sets: new Map(), ctHelpers: new Map(), table, chains: new Map() });
          set.tables.push(table);
          return;
        }
        case 'set':
        case 'map': {
          const t = tableOf(o, p);
          const name = str(o, 'name', p);
          if (o.elem !== undefined && !Array.isArray(o.elem)) throw new NftError(`${p}.elem`, 'elements are a list');
          if (t.sets.has(name)) throw new NftError(p, `set ${name} listed twice in table ${t.key}`);
          const named = new NamedSet(o, p);
          named.sync();
          t.sets.set(name, named);
          namedSets.set(`${t.key} ${name}`, named); // setKey(family, table, set)
          return;
        }
        case 'chain': {
          const t = tableOf(o, p);
          const name = str(o, 'name', p);
          const full = `${t.key.replace(' ', '/')}/${name}`;
          const isBase = o.hook !== undefined || o.type !== undefined;
          let slot: HookSlot | null = null;
          let policy: 'ACCEPT' | 'DROP' | null = null;
          if (isBase) {
            const type = str(o, 'type', p);
            const prio = typeof o.prio === 'number' ? o.prio : typeof o.prio === 'string' ? PRIORITIES[o.prio] : undefined;
            if (prio === undefined) throw new NftError(`${p}.prio`, `unknown priority ${JSON.stringify(o.prio)}`);
            const pol = o.policy ?? 'accept';
            if (pol !== 'accept' && pol !== 'drop') throw new NftError(`${p}.policy`, `policy ${JSON.stringify(pol)}`);
            policy = pol === 'drop' ? 'DROP' : 'ACCEPT';
            const s = type === 'filter' ? slotOf(str(o, 'hook', p), prio) : null;
            const hook = str(o, 'hook', p);
            if (type === 'nat' && NAT_HOOKS.has(hook)) {
              natBases.push({
                name: full,
                path: `${p}.type`,
                slot: `nat/${hook.toUpperCase()}` as HookSlot,
                family: t.family,
                prio,
                order: i,
                policy,
                info: t,
              });
            } else if (type === 'filter' && hook === 'prerouting' && prio > PRI_CONNTRACK) {
              // after conntrack, before routing: the pre-routing queue crossing's mangle PREROUTING slot
              natBases.push({ name: full, path: `${p}.hook`, slot: 'mangle/PREROUTING', family: t.family, prio, order: i, policy, info: t });
            } else if (s !== null && (HOOK_SLOTS as readonly string[]).includes(s)) {
              slot = s as HookSlot;
              bases.push({ slot, table: 'filter', chain: full, family: t.family, prio, order: i });
            } else {
              const why = s ?? (type === 'nat' ? 'nat chains are not supported (nfqwall has no NAT yet)' : `chains of type "${type}" are not supported`);
              unplaced.push({ name: full, path: `${p}.${s === null ? 'type' : 'hook'}`, why, policy });
            }
          }
          if (t.chains.has(name)) throw new NftError(p, `chain ${name} listed twice`);
          const chain: ParsedChain = { name: full, builtin: isBase, policy, counters: [0, 0], line: 0, col: 0, rules: [] };
          t.chains.set(name, { chain, path: p, slot, base: isBase });
          t.table.chains.push(chain);
          return;
        }
        case 'rule':
          rules.push([o, p, i]);
          return;
        case 'ct helper': {
          const t = tableOf(o, p);
          const name = str(o, 'name', p);
          if (t.ctHelpers.has(name)) throw new NftError(p, `ct helper ${name} listed twice in table ${t.key}`);
          t.ctHelpers.set(name, { obj: o, path: `${path}["ct helper"]` });
          return;
        }
      }
      if (!INERT.has(kind)) throw new NftError(path, `unsupported object "${kind}"`);
    } catch (e) {
      fail(e);
    }
  });
  // pass 2: rules, in the order listed (nft -j lists a chain's rules in order)
  const jumps = new Map<string, JumpRef[]>();
  const rulePaths = new Map<object, string>();
  const countsFor = new Map<object, number>();
  const ruleItem = new Map<object, number>();
  let own = 0;
  for (const [o, p, item] of rules) {
    try {
      const t = tableOf(o, p);
      const c = t.chains.get(str(o, 'chain', p));
      if (!c) throw new NftError(`${p}.chain`, `no chain ${String(o.chain)} in table ${t.key}`);
      const sets: SetDirectory = { get: (n) => t.sets.get(n) };
      const out = translateRule(o.expr, p, {
        table: 'filter',
        chain: c.chain.name,
        family: t.family,
        sets,
        helperId: opts.helperId ?? (() => 1),
        ifindex: opts.ifindex ?? sysIfindex,
        ctHelpers: t.ctHelpers,
        chainName: (n, at) => {
          const target = t.chains.get(n);
          if (!target) throw new NftError(at, `no chain ${n} in table ${t.key}`);
          if (target.base) throw new NftError(at, `${n} is a base chain: nftables does not jump to base chains`);
          return target.chain.name;
        },
        newChain: () => `${c.chain.name}#${++own}`,
      });
      c.chain.rules.push(...out.rules);
      for (const r of out.counted) countsFor.set(r, item);
      for (const r of [...out.rules, ...out.chains.flatMap((ch) => ch.rules)]) ruleItem.set(r, item);
      t.table.chains.push(...out.chains);
      for (const ch of [c.chain, ...out.chains])
        for (const r of ch === c.chain ? out.rules : ch.rules) {
          rulePaths.set(r, p);
          if (r.target.kind === 'jump' || r.target.kind === 'goto') {
            const list = jumps.get(ch.name) ?? [];
            list.push({ rule: r, from: ch.name, tok: nftToken(r.target.name) });
            jumps.set(ch.name, list);
          }
        }
    } catch (e) {
      fail(e);
    }
  }
  if (errors.length) return { set, errors };
  // the kernel's table validation: no loops, the jump stack deep enough
  const problem = validateGraph([...bases.map((b) => b.chain), ...unplaced.map((u) => u.name), ...natBases.map((n) => n.name)], jumps);
  if (problem)
    errors.push({
      file,
      line: 0,
      col: 0,
      message: 'loop' in problem ? `chains jump in a loop (${problem.loop.join(' -> ')})` : `chains nest ${problem.depth} deep (the kernel allows 15)`,
    });
  // notrack is a raw-slot statement: a chain a filter slot reaches may not hold it
  const chainByName = new Map(set.tables.flatMap((t) => t.chains.map((c) => [c.name, c] as const)));
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const r of chainByName.get(name)?.rules ?? []) {
      if (r.target.kind === 'ext' && r.target.name === 'CT')
        errors.push({
          file,
          line: 0,
          col: 0,
          message: `${rulePaths.get(r)}: notrack after conntrack (a chain of priority above -200, or input/forward) does nothing in nftables and is refused`,
        });
      if (r.target.kind === 'jump' || r.target.kind === 'goto') visit(r.target.name);
    }
  };
  for (const u of unplaced) {
    const why = unplacedProblem(u.name, u.policy, chainByName, (r) => items[ruleItem.get(r) ?? -1]);
    if (why) errors.push({ file, line: 0, col: 0, message: `${u.path}: ${u.why} (such a chain is loaded only when it can change nothing: ${why})` });
  }
  placeNatChains(
    set,
    natBases,
    bases,
    chainByName,
    (r) => items[ruleItem.get(r) ?? -1],
    (m) => errors.push({ file, line: 0, col: 0, message: m }),
  );
  for (const b of bases) if (!b.slot.startsWith('raw/')) visit(b.chain);
  bases.sort((a, b) => a.prio - b.prio || a.order - b.order);
  set.nft = {
    doc: doc as { nftables: unknown[] },
    sets: namedSets,
    counts: set.tables.flatMap((t) => t.chains.flatMap((c) => c.rules.map((r) => countsFor.get(r) ?? -1))),
  };
  set.bases = bases.map(({ slot, table, chain, family }) => ({ slot, table, chain, family }));
  return { set, errors };
}
