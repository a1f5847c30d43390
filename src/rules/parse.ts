/**
 * iptables-restore text → RuleSet with source positions, read as iptables-nft-restore
 * 1.8 reads it (iptables/xtables-restore.c): `*table`, `:CHAIN POLICY …`, COMMIT, and
 * rule lines handed to the iptables option parser (see parse-rule.ts). Errors are
 * collected (several per run) as FILE:LINE:COL: message with COL at the offending token.
 */
import { splitArgs } from './argv';
import { ruleWords } from './format';
import { parseRuleLine, type RuleCommand } from './parse-rule';
import { checkChainName, MAX_CHAIN_DEPTH } from './chains';
import { TARGETS } from './targets';
import { BUILTIN_CHAINS, IPTABLES_TABLES, isSupportedTable, SUPPORTED_TABLES, type SupportedTable } from './tables';
import type { ParseEnv, ParsedChain, ParsedRule, ParsedTable, RuleError, RuleSet, Token } from './types';
import { runSteps, SLICE, type Steps } from './steps';

export { MAX_CHAIN_DEPTH };

export interface ParseOptions {
  /** helper name → id (0 = no such helper); when given, unknown helper names are errors */
  helperId?(name: string): number;
}

export interface ParseResult {
  set: RuleSet;
  /** every error, sorted by position */
  errors: RuleError[];
}

export interface TableState {
  t: ParsedTable;
  at: Token;
  byName: Map<string, ParsedChain>;
  /** jumps in the order their rules were added (checked at COMMIT in that order) */
  jumps: JumpRef[];
}

export interface JumpRef {
  rule: ParsedRule;
  from: string;
  tok: Token;
}

const COUNTERS_RE = /^\[([0-9]+):([0-9]+)\]$/;

/** xtables_restore_parse reads lines with fgets into 10240 bytes: a longer line is read in pieces. */
export const MAX_LINE_BYTES = 10239;
/** add_param_to_argv's word buffer (1024 bytes) */
export const MAX_WORD_BYTES = 1023;
/** MAX_ARGC (255) less iptables-restore's own "PROG -t TABLE" and the last NULL */
export const MAX_WORDS = 251;

export function parseRules(text: string, file: string, opts: ParseOptions = {}): ParseResult {
  return runSteps(parseRulesSteps(text, file, opts));
}

/** parseRules, yielding every SLICE lines (src/rules/steps.ts) */
export function* parseRulesSteps(text: string, file: string, opts: ParseOptions = {}): Steps<ParseResult> {
  const errors: RuleError[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const crNoted = new Set<number>();
  const sink: ParseEnv = {
    error(at, message) {
      // the same complaint once per line (a line of 10,000 "-s ADDR" is one mistake)
      const key = `${at.line}:${message}`;
      if (seen.has(key)) return;
      seen.add(key);
      if (lines[at.line - 1]?.endsWith('\r') && !crNoted.has(at.line)) {
        crNoted.add(at.line);
        message += ' (this line ends in a carriage return, DOS style: iptables-restore reads it as part of the last word)';
      }
      errors.push({ file, line: at.line, col: at.col, message });
    },
    helperId: opts.helperId,
  };
  const set: RuleSet = { file, tables: [] };
  /** the open section; `skip` for a table nfqwall does not implement (read up to its COMMIT) */
  let cur: TableState | null = null;
  let skip: Token | null = null;

  for (let li = 0; li < lines.length; li++) {
    if (li % SLICE === SLICE - 1) yield;
    const lineNo = li + 1;
    const line = lines[li];
    const inTable = cur !== null || skip !== null;
    const at1: Token = { text: line, line: lineNo, col: 1, quoted: false };
    if (Buffer.byteLength(line) >= MAX_LINE_BYTES) {
      sink.error(at1, `line longer than ${MAX_LINE_BYTES - 1} bytes: iptables-restore reads it in pieces, as several lines`);
      continue;
    }
    if (line === '' || line[0] === '#') continue;
    if (inTable && line === 'COMMIT') {
      if (cur) commitTable(cur, set, sink);
      cur = null;
      skip = null;
      continue;
    }
    if (line[0] === '*' && !inTable) {
      const m = /^\*[ \t]*([^ \t]+)/.exec(line);
      if (!m) {
        sink.error(at1, 'missing table name after "*"');
        continue;
      }
      const name = m[1];
      const nameTok: Token = { text: name, line: lineNo, col: m[0].length - name.length + 1, quoted: false };
      if (!(name in IPTABLES_TABLES)) {
        sink.error(nameTok, `unknown table "${name}" (iptables has ${Object.keys(IPTABLES_TABLES).join(', ')})`);
        skip = nameTok;
        continue;
      }
      if (!isSupportedTable(name)) {
        sink.error(nameTok, `table "${name}" is not supported (nfqwall implements ${SUPPORTED_TABLES.join(', ')}); its lines up to COMMIT are not read`);
        skip = nameTok;
        continue;
      }
      // A second section of a table replaces the first, as iptables-restore flushes the table at each *table line.
      set.tables = set.tables.filter((t) => t.name !== name);
      cur = newTable(name, { ...at1, text: `*${name}` });
      continue;
    }
    if (!inTable) {
      const w = splitArgs(line, lineNo)[0] ?? at1;
      sink.error(w, `"${w.text}" outside a table (a section starts with *filter, *mangle or *raw and ends with COMMIT)`);
      continue;
    }
    if (skip) continue;
    const ts = cur!;
    if (line[0] === ':') {
      declareChain(ts, line, lineNo, sink);
      continue;
    }
    // [PACKETS:BYTES] before the rule (tokenize_rule_counters). iptables-restore uses them only with -c.
    let rest = line;
    let offset = 0;
    let counters: [number, number] | null = null;
    if (line[0] === '[') {
      const close = line.indexOf(']');
      if (close < 0 || line.indexOf(':') < 0 || line.indexOf(':') > close) {
        sink.error(at1, `bad counters "${line.split(/[ \t]/)[0]}" (expected [PACKETS:BYTES] before the rule)`);
        continue;
      }
      const m = COUNTERS_RE.exec(line.slice(0, close + 1));
      if (m) counters = [Number(m[1]), Number(m[2])];
      offset = close + 1;
      rest = line.slice(offset);
    }
    const words = splitArgs(rest, lineNo).map((w) => ({ ...w, col: w.col + offset }));
    const long = words.find((w) => Buffer.byteLength(w.text) > MAX_WORD_BYTES);
    if (long) {
      sink.error(long, `word longer than ${MAX_WORD_BYTES} bytes (iptables-restore: "Parameter too long!")`);
      continue;
    }
    if (words.length > MAX_WORDS) {
      sink.error(words[MAX_WORDS], `more than ${MAX_WORDS} words in one rule (iptables-restore: "Parser cannot handle more arguments")`);
      continue;
    }
    if (words.length === 0) {
      sink.error({ line: lineNo, col: 1 }, 'a line without a command (expected -A, -I, -N or -P)');
      continue;
    }
    const cmd = parseRuleLine(words, ts, counters, sink);
    if (cmd) applyCommand(ts, cmd, sink);
  }
  if (cur || skip) {
    const name = cur ? cur.t.name : skip!.text;
    const start = cur ? cur.at.line : skip!.line;
    sink.error({ line: lines.length + 1, col: 1 }, `COMMIT expected: table "${name}" (line ${start}) is not closed`);
  }
  errors.sort((a, b) => a.line - b.line || a.col - b.col);
  return { set, errors };
}

function newTable(name: SupportedTable, at: Token): TableState {
  const t: ParsedTable = { name, line: at.line, chains: [] };
  const byName = new Map<string, ParsedChain>();
  for (const c of BUILTIN_CHAINS[name]) {
    const ch: ParsedChain = { name: c, builtin: true, policy: 'ACCEPT', counters: [0, 0], line: at.line, col: at.col, rules: [] };
    t.chains.push(ch);
    byName.set(c, ch);
  }
  return { t, at, byName, jumps: [] };
}

function addUserChain(ts: TableState, tok: Token): ParsedChain {
  const ch: ParsedChain = { name: tok.text, builtin: false, policy: null, counters: [0, 0], line: tok.line, col: tok.col, rules: [] };
  ts.t.chains.push(ch);
  ts.byName.set(tok.text, ch);
  return ch;
}

/**
 * `:CHAIN POLICY [pkts:bytes]` as iptables-nft-restore reads it: the first word is the
 * chain, a second word must be there; for a built-in chain it is the policy (ACCEPT or
 * DROP), for a user chain it is not looked at ("-" by convention), nor is anything after it.
 * Declaring a user chain again empties it; a built-in chain keeps its rules.
 */
function declareChain(ts: TableState, line: string, lineNo: number, sink: ParseEnv): void {
  const words: Token[] = [];
  const re = /[^ \t]+/g;
  const body = line.slice(1);
  for (let m = re.exec(body); m; m = re.exec(body)) words.push({ text: m[0], line: lineNo, col: m.index + 2, quoted: false });
  const nameTok = words[0];
  if (!nameTok) {
    sink.error({ line: lineNo, col: 1 }, 'missing chain name after ":"');
    return;
  }
  if (!checkChainName(nameTok, sink)) return;
  const polTok = words[1];
  if (!polTok) {
    sink.error(
      { line: lineNo, col: line.length + 1 },
      `chain "${nameTok.text}" needs a policy word after its name (ACCEPT or DROP for a built-in chain, - for a user chain)`,
    );
    return;
  }
  const existing = ts.byName.get(nameTok.text);
  if (existing?.builtin) {
    if (polTok.text !== 'ACCEPT' && polTok.text !== 'DROP') {
      sink.error(polTok, `bad policy "${polTok.text}" for built-in chain ${nameTok.text} (ACCEPT or DROP)`);
      return;
    }
    existing.policy = polTok.text;
    const m = words[2] ? COUNTERS_RE.exec(words[2].text) : null;
    if (m) existing.counters = [Number(m[1]), Number(m[2])];
    existing.line = lineNo;
    existing.col = 1;
    return;
  }
  if (!existing) addUserChain(ts, nameTok);
  // iptables-nft flushes a user chain declared again (nft_cmd_chain_restore)
  else flushChain(ts, existing);
}

function applyCommand(ts: TableState, cmd: RuleCommand, sink: ParseEnv): void {
  switch (cmd.kind) {
    case 'append':
    case 'insert': {
      const chain = ts.byName.get(cmd.chain.text);
      if (!chain) {
        sink.error(cmd.chain, `chain "${cmd.chain.text}" does not exist (declare it first with ":${cmd.chain.text} - [0:0]" or -N)`);
        return;
      }
      let pos = chain.rules.length;
      if (cmd.kind === 'insert') {
        if (cmd.pos && cmd.num > chain.rules.length + 1) {
          sink.error(
            cmd.pos,
            `insert position ${cmd.num} is beyond the end of chain ${chain.name} (it has ${chain.rules.length} rule${chain.rules.length === 1 ? '' : 's'} here)`,
          );
          return;
        }
        pos = cmd.num - 1;
      }
      for (const r of cmd.rules) if (!addJump(ts, chain, r, sink)) return;
      chain.rules.splice(pos, 0, ...cmd.rules);
      return;
    }
    case 'new': {
      if (ts.byName.has(cmd.chain.text)) {
        sink.error(cmd.chain, `chain "${cmd.chain.text}" already exists`);
        return;
      }
      addUserChain(ts, cmd.chain);
      return;
    }
    case 'flush': {
      // iptables-nft-restore 1.8.9 leaves the rules in place for a bare -F (its cache is empty then)
      if (!cmd.chain) return;
      const chain = existingChain(ts, cmd.chain, sink);
      if (chain) flushChain(ts, chain);
      return;
    }
    case 'zero': {
      const chains = cmd.chain ? [existingChain(ts, cmd.chain, sink)] : ts.t.chains;
      for (const c of chains) {
        if (!c) return;
        c.counters = [0, 0];
        for (const r of c.rules) if (r.counters) r.counters = [0, 0];
      }
      return;
    }
    case 'delete-chain': {
      const chains = cmd.chain ? [existingChain(ts, cmd.chain, sink)] : ts.t.chains.filter((c) => !c.builtin);
      for (const c of chains) {
        if (!c) return;
        const at = cmd.chain ?? cmd.tok;
        if (c.builtin) return sink.error(at, `-X needs a user chain; ${c.name} is built in`);
        if (c.rules.length > 0)
          return sink.error(at, `chain ${c.name} still has rules (the kernel refuses to delete it: Device or resource busy); flush it first with -F ${c.name}`);
        const ref = ts.jumps.find((j) => j.rule.target.name === c.name);
        if (ref) return sink.error(at, `chain ${c.name} is still jumped to from ${ref.from} (line ${ref.tok.line}); the kernel refuses to delete it`);
      }
      for (const c of chains) {
        ts.t.chains.splice(ts.t.chains.indexOf(c!), 1);
        ts.byName.delete(c!.name);
      }
      return;
    }
    case 'delete-num': {
      const chain = existingChain(ts, cmd.chain, sink);
      if (!chain) return;
      if (cmd.num < 1 || cmd.num > chain.rules.length)
        return sink.error(cmd.pos, `no rule ${cmd.pos.text} to delete in chain ${chain.name} (it has ${chain.rules.length} here)`);
      removeRule(ts, chain, cmd.num - 1);
      return;
    }
    case 'delete':
    case 'check': {
      const chain = existingChain(ts, cmd.chain, sink);
      if (!chain) return;
      for (const r of cmd.rules) {
        const want = ruleWords(r).join(' ');
        const i = chain.rules.findIndex((x) => ruleWords(x).join(' ') === want);
        if (i < 0) return sink.error(cmd.chain, `no rule "${want}" in chain ${chain.name} to ${cmd.kind === 'delete' ? 'delete' : 'check'}`);
        if (cmd.kind === 'delete') removeRule(ts, chain, i);
      }
      return;
    }
    case 'policy': {
      const chain = ts.byName.get(cmd.chain.text);
      if (!chain?.builtin) {
        sink.error(cmd.chain, `-P needs a built-in chain of table ${ts.t.name} (${BUILTIN_CHAINS[ts.t.name].join(', ')}), not "${cmd.chain.text}"`);
        return;
      }
      if (cmd.policy.text !== 'ACCEPT' && cmd.policy.text !== 'DROP') {
        sink.error(cmd.policy, `bad policy "${cmd.policy.text}" (ACCEPT or DROP)`);
        return;
      }
      chain.policy = cmd.policy.text;
      if (cmd.counters) chain.counters = cmd.counters;
      return;
    }
  }
}

function existingChain(ts: TableState, tok: Token, sink: ParseEnv): ParsedChain | null {
  const c = ts.byName.get(tok.text);
  if (!c) sink.error(tok, `chain "${tok.text}" does not exist`);
  return c ?? null;
}

function flushChain(ts: TableState, chain: ParsedChain): void {
  chain.rules = [];
  ts.jumps = ts.jumps.filter((j) => j.from !== chain.name);
}

function removeRule(ts: TableState, chain: ParsedChain, i: number): void {
  const [r] = chain.rules.splice(i, 1);
  ts.jumps = ts.jumps.filter((j) => j.rule !== r);
}

/**
 * A jump or goto as iptables-nft takes it when the rule is added: the chain must exist
 * already (it is looked up then) and be a user chain.
 */
function addJump(ts: TableState, from: ParsedChain, r: ParsedRule, sink: ParseEnv): boolean {
  if (r.target.kind !== 'jump' && r.target.kind !== 'goto') return true;
  const tok = r.target.at!;
  const target = ts.byName.get(r.target.name);
  if (!target) {
    if (/^[A-Z][A-Z0-9_]+$/.test(r.target.name)) sink.error(tok, `unknown target "${r.target.name}" (no target or chain of that name)`);
    else sink.error(tok, `jump to missing chain "${r.target.name}" (a chain must be declared before the rules that jump to it)`);
    return false;
  }
  if (target.builtin) {
    sink.error(tok, `cannot jump to built-in chain ${target.name}`);
    return false;
  }
  ts.jumps.push({ rule: r, from: from.name, tok });
  return true;
}

type GraphProblem = { loop: string[] } | { depth: number } | null;

/**
 * nf_tables' table validation over the chains the built-in chains reach: a loop, or user
 * chains nested deeper than the jump stack allows. Chains no built-in chain reaches are
 * never walked, so loops among them are allowed.
 */
export function validateGraph(builtins: string[], edges: Map<string, JumpRef[]>): GraphProblem {
  /** longest chain of user-chain jumps below each chain; undefined = not visited, -1 = on the stack */
  const below = new Map<string, number>();
  for (const root of builtins) {
    const frames: { c: string; i: number; max: number }[] = [{ c: root, i: 0, max: 0 }];
    below.set(root, -1);
    while (frames.length > 0) {
      const f = frames[frames.length - 1];
      const out = edges.get(f.c) ?? [];
      if (f.i < out.length) {
        const t = out[f.i++].rule.target.name;
        const b = below.get(t);
        if (b === -1) return { loop: [...frames.slice(frames.findIndex((x) => x.c === t)).map((x) => x.c), t] };
        if (b === undefined) {
          below.set(t, -1);
          frames.push({ c: t, i: 0, max: 0 });
        } else f.max = Math.max(f.max, b + 1);
        continue;
      }
      frames.pop();
      below.set(f.c, f.max);
      if (frames.length > 0) frames[frames.length - 1].max = Math.max(frames[frames.length - 1].max, f.max + 1);
    }
    if (below.get(root)! > MAX_CHAIN_DEPTH) return { depth: below.get(root)! };
  }
  return null;
}

/**
 * At COMMIT: the jumps are added in order, as iptables-nft sends the rules; the first rule
 * after which the chains reachable from a built-in chain loop or nest too deep is refused
 * (the kernel's "Too many links" on that line), and the check goes on without it.
 */
function commitTable(ts: TableState, set: RuleSet, sink: ParseEnv): void {
  const builtins = ts.t.chains.filter((c) => c.builtin).map((c) => c.name);
  const edges = new Map<string, JumpRef[]>();
  for (const j of ts.jumps) {
    const list = edges.get(j.from) ?? [];
    list.push(j);
    edges.set(j.from, list);
    const p = validateGraph(builtins, edges);
    if (!p) continue;
    if ('loop' in p) sink.error(j.tok, `jump to "${j.rule.target.name}" creates a loop (${p.loop.join(' -> ')})`);
    else sink.error(j.tok, `jump to "${j.rule.target.name}" nests user chains ${p.depth} deep (the kernel allows ${MAX_CHAIN_DEPTH})`);
    list.pop();
  }
  checkTargetHooks(ts, edges, builtins, sink);
  set.tables.push(ts.t);
}

/**
 * xt_check_target's hook mask, as nf_tables validates it at commit: a target with `hooks`
 * (SNAT only in POSTROUTING and INPUT, …) in a chain some other built-in chain reaches is
 * refused at its -j.
 */
function checkTargetHooks(ts: TableState, edges: Map<string, JumpRef[]>, builtins: string[], sink: ParseEnv): void {
  const reachedBy = new Map<string, Set<string>>();
  for (const root of builtins) {
    const stack = [root];
    const seen = new Set<string>();
    while (stack.length > 0) {
      const c = stack.pop()!;
      if (seen.has(c)) continue;
      seen.add(c);
      let by = reachedBy.get(c);
      if (!by) reachedBy.set(c, (by = new Set()));
      by.add(root);
      for (const j of edges.get(c) ?? []) stack.push(j.rule.target.name);
    }
  }
  for (const chain of ts.t.chains) {
    for (const r of chain.rules) {
      if (r.target.kind !== 'ext') continue;
      const hooks = TARGETS[r.target.name]?.hooks;
      if (!hooks) continue;
      const bad = [...(reachedBy.get(chain.name) ?? [])].filter((h) => !hooks.includes(h));
      if (bad.length > 0)
        sink.error(
          r.target.at!,
          `target ${r.target.name} is only valid in the ${ts.t.name} table's ${hooks.join(' and ')} chains` +
            (chain.builtin ? '' : ` (chain ${chain.name} is reached from ${bad.join(', ')})`),
        );
    }
  }
}
