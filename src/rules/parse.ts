/**
 * iptables-restore text → RuleSet with source positions. Errors are collected
 * (several per run) as FILE:LINE:COL: message with COL at the offending token.
 */
import { parseAddrSpec } from './addr';
import { checkIface, parseProto, protoFamily, protoName } from './matches/basic';
import { KNOWN_UNSUPPORTED_MATCHES, MATCHES, MATCH_ALIASES, PROTO_MATCH } from './matches/index';
import { KNOWN_UNSUPPORTED_TARGETS, STANDARD_VERDICTS, TARGETS } from './targets/index';
import {
  BUILTIN_CHAINS,
  type Family,
  type MatchModule,
  type OptSpec,
  type ParseEnv,
  type ParsedChain,
  type ParsedMatch,
  type ParsedRule,
  type ParsedTable,
  type RuleError,
  type RuleSet,
  type Token,
} from './types';

/** nf_tables' NFT_JUMP_STACK_SIZE (16): a built-in chain plus at most 15 levels of user chains. */
export const MAX_CHAIN_DEPTH = 15;
/** XT_EXTENSION_MAXNAMELEN - 1 */
export const MAX_CHAIN_NAME = 28;

export interface ParseOptions {
  /** helper name → id (0 = no such helper); when given, unknown helper names are errors */
  helperId?(name: string): number;
  /** stop collecting after this many errors (default 100) */
  maxErrors?: number;
}

export interface ParseResult {
  set: RuleSet;
  errors: RuleError[];
}

/** Splits one line into words: whitespace separates, '…' and "…" group, backslash escapes. */
export function tokenize(line: string, lineNo: number, onError: (col: number, msg: string) => void): Token[] {
  const toks: Token[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i++;
      continue;
    }
    const col = i + 1;
    let text = '';
    let quoted = false;
    let quote = '';
    let quoteCol = 0;
    while (i < n) {
      const ch = line[i];
      if (quote) {
        if (ch === quote) {
          quote = '';
          i++;
        } else if (ch === '\\' && quote === '"' && i + 1 < n) {
          text += line[i + 1];
          i += 2;
        } else {
          text += ch;
          i++;
        }
        continue;
      }
      if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\f' || ch === '\v') break;
      if (ch === '"' || ch === "'") {
        quote = ch;
        quoteCol = i + 1;
        quoted = true;
        i++;
      } else if (ch === '\\' && i + 1 < n) {
        text += line[i + 1];
        quoted = true;
        i += 2;
      } else {
        text += ch;
        i++;
      }
    }
    if (quote) {
      onError(quoteCol, `unterminated ${quote === '"' ? 'double' : 'single'} quote`);
      return toks;
    }
    toks.push({ text, line: lineNo, col, quoted });
  }
  return toks;
}

const COUNTERS_RE = /^\[([0-9]+):([0-9]+)\]$/;

function looksLikeOption(t: Token): boolean {
  return !t.quoted && /^--?[A-Za-z0-9]/.test(t.text) && !/^-[0-9]/.test(t.text);
}

interface TableState {
  t: ParsedTable;
  at: Token;
  byName: Map<string, ParsedChain>;
  declared: Set<string>;
}

interface JumpRef {
  rule: ParsedRule;
  tok: Token;
}

/** Target token of each rule, for errors found at COMMIT. */
const ruleTargetTok = new WeakMap<ParsedRule, Token>();

export function parseRules(text: string, file: string, opts: ParseOptions = {}): ParseResult {
  const errors: RuleError[] = [];
  const seen = new Set<string>();
  const maxErrors = opts.maxErrors ?? 100;
  const sink: ParseEnv = {
    error(at, message) {
      const key = `${at.line}:${at.col}:${message}`;
      if (seen.has(key) || errors.length >= maxErrors) return;
      seen.add(key);
      errors.push({ file, line: at.line, col: at.col, message });
    },
    helperId: opts.helperId,
  };
  const set: RuleSet = { file, tables: [] };
  let cur: TableState | null = null;
  const lines = text.split('\n');

  const commit = (ts: TableState) => {
    resolveTable(ts, sink);
    set.tables.push(ts.t);
  };

  for (let li = 0; li < lines.length; li++) {
    const lineNo = li + 1;
    const line = lines[li];
    if (/^\s*#/.test(line)) continue;
    const toks = tokenize(line, lineNo, (col, msg) => sink.error({ line: lineNo, col }, msg));
    if (toks.length === 0) continue;
    const first = toks[0];
    if (!first.quoted && first.text.startsWith('#')) continue;

    if (!first.quoted && first.text.startsWith('*')) {
      const name = first.text.slice(1);
      if (toks.length > 1) sink.error(toks[1], `unexpected "${toks[1].text}" after table name`);
      if (cur) {
        sink.error(first, `table "${cur.t.name}" (line ${cur.at.line}) has no COMMIT before "*${name}"`);
        commit(cur);
        cur = null;
      }
      if (name !== 'raw' && name !== 'filter') {
        sink.error(first, name === '' ? 'missing table name after "*"' : `unsupported table "${name}" (nfqwall knows raw and filter)`);
        // Parse the section anyway (as filter-like) so later errors are still found, but drop it.
        cur = newTable('filter', first);
        (cur as TableState & { discard?: boolean }).discard = true;
        continue;
      }
      if (set.tables.some((t) => t.name === name)) sink.error(first, `table "${name}" appears twice`);
      cur = newTable(name, first);
      continue;
    }
    if (!first.quoted && first.text === 'COMMIT') {
      if (toks.length > 1) sink.error(toks[1], `unexpected "${toks[1].text}" after COMMIT`);
      if (!cur) {
        sink.error(first, 'COMMIT outside a table');
        continue;
      }
      if ((cur as TableState & { discard?: boolean }).discard) resolveTable(cur, sink);
      else commit(cur);
      cur = null;
      continue;
    }
    if (!cur) {
      sink.error(first, 'rule outside a table (start a section with *filter or *raw)');
      continue;
    }
    if (!first.quoted && first.text.startsWith(':')) {
      declareChain(cur, toks, sink);
      continue;
    }
    let idx = 0;
    let counters: [number, number] | null = null;
    const cm = COUNTERS_RE.exec(first.text);
    if (cm) {
      counters = [Number(cm[1]), Number(cm[2])];
      idx = 1;
    } else if (first.text.startsWith('[')) {
      sink.error(first, `bad counters "${first.text}" (expected [PACKETS:BYTES])`);
      continue;
    }
    const cmd = toks[idx];
    if (!cmd) {
      sink.error(first, 'counters without a rule');
      continue;
    }
    switch (cmd.quoted ? '' : cmd.text) {
      case '-A':
      case '--append':
      case '-I':
      case '--insert': {
        const chainTok = toks[idx + 1];
        if (!chainTok || looksLikeOption(chainTok)) {
          sink.error(cmd, `${cmd.text} needs a chain name`);
          break;
        }
        const chain = cur.byName.get(chainTok.text);
        if (!chain) {
          sink.error(chainTok, `chain "${chainTok.text}" does not exist (declare it with ":${chainTok.text} - [0:0]")`);
          break;
        }
        let start = idx + 2;
        let pos = chain.rules.length;
        if (cmd.text === '-I' || cmd.text === '--insert') {
          pos = 0;
          const num = toks[start];
          if (num && !num.quoted && /^[0-9]+$/.test(num.text)) {
            const n = Number(num.text);
            if (n < 1 || n > chain.rules.length + 1) {
              sink.error(num, `insert position ${n} is out of range (1..${chain.rules.length + 1})`);
              break;
            }
            pos = n - 1;
            start++;
          }
        }
        const rule = parseRule(toks, start, cur, chain, counters, lineNo, sink);
        if (rule) chain.rules.splice(pos, 0, rule);
        break;
      }
      case '-N':
      case '--new-chain': {
        const nameTok = toks[idx + 1];
        if (!nameTok) {
          sink.error(cmd, '-N needs a chain name');
          break;
        }
        if (toks[idx + 2]) sink.error(toks[idx + 2], `unexpected "${toks[idx + 2].text}" after -N ${nameTok.text}`);
        addUserChain(cur, nameTok, sink);
        break;
      }
      case '-D':
      case '--delete':
      case '-R':
      case '--replace':
      case '-F':
      case '--flush':
      case '-X':
      case '--delete-chain':
      case '-Z':
      case '--zero':
      case '-E':
      case '--rename-chain':
      case '-P':
      case '--policy':
        sink.error(cmd, `command ${cmd.text} is not supported in a rule file (write the table as iptables-save does)`);
        break;
      default:
        sink.error(cmd, `unexpected "${cmd.text}" (expected -A, -I, -N, :CHAIN, COMMIT or *table)`);
    }
  }
  if (cur) {
    sink.error(cur.at, `missing COMMIT for table "${cur.t.name}"`);
    if (!(cur as TableState & { discard?: boolean }).discard) commit(cur);
  }
  errors.sort((a, b) => a.line - b.line || a.col - b.col);
  return { set, errors };
}

function newTable(name: 'raw' | 'filter', at: Token): TableState {
  const t: ParsedTable = { name, line: at.line, chains: [] };
  const byName = new Map<string, ParsedChain>();
  for (const c of BUILTIN_CHAINS[name]) {
    const ch: ParsedChain = { name: c, builtin: true, policy: 'ACCEPT', counters: [0, 0], line: at.line, col: at.col, rules: [] };
    t.chains.push(ch);
    byName.set(c, ch);
  }
  return { t, at, byName, declared: new Set() };
}

const RESERVED_NAMES = new Set([...STANDARD_VERDICTS, ...Object.keys(TARGETS), ...KNOWN_UNSUPPORTED_TARGETS]);

function checkChainName(tok: Token, sink: ParseEnv): boolean {
  const n = tok.text;
  if (n.length === 0 || n.length > MAX_CHAIN_NAME) {
    sink.error(tok, `chain name "${n}" must be 1 to ${MAX_CHAIN_NAME} characters`);
    return false;
  }
  if (n.startsWith('-') || n.startsWith('!') || /[\s]/.test(n)) {
    sink.error(tok, `bad chain name "${n}"`);
    return false;
  }
  if (RESERVED_NAMES.has(n)) {
    sink.error(tok, `chain name "${n}" is a target name`);
    return false;
  }
  return true;
}

function addUserChain(ts: TableState, tok: Token, sink: ParseEnv): ParsedChain | null {
  const name = tok.text;
  const existing = ts.byName.get(name);
  if (existing) {
    sink.error(tok, existing.builtin ? `chain "${name}" is a built-in chain of table ${ts.t.name}` : `chain "${name}" already exists (line ${existing.line})`);
    return null;
  }
  for (const [tname, names] of Object.entries(BUILTIN_CHAINS)) {
    if (tname !== ts.t.name && names.includes(name)) {
      sink.error(tok, `"${name}" is a built-in chain of table ${tname}, not of ${ts.t.name} (built-in: ${BUILTIN_CHAINS[ts.t.name].join(', ')})`);
      return null;
    }
  }
  if (!checkChainName(tok, sink)) return null;
  const ch: ParsedChain = { name, builtin: false, policy: null, counters: [0, 0], line: tok.line, col: tok.col, rules: [] };
  ts.t.chains.push(ch);
  ts.byName.set(name, ch);
  ts.declared.add(name);
  return ch;
}

/** `:CHAIN POLICY [pkts:bytes]` */
function declareChain(ts: TableState, toks: Token[], sink: ParseEnv): void {
  const head = toks[0];
  const name = head.text.slice(1);
  const nameTok: Token = { ...head, text: name, col: head.col + 1 };
  const polTok = toks[1];
  if (!polTok) {
    sink.error({ line: head.line, col: head.col + head.text.length }, `chain "${name}" needs a policy (ACCEPT, DROP or - for a user chain)`);
    return;
  }
  let counters: [number, number] = [0, 0];
  if (toks[2]) {
    const m = COUNTERS_RE.exec(toks[2].text);
    if (!m) sink.error(toks[2], `bad counters "${toks[2].text}" (expected [PACKETS:BYTES])`);
    else counters = [Number(m[1]), Number(m[2])];
  }
  if (toks[3]) sink.error(toks[3], `unexpected "${toks[3].text}" after chain declaration`);
  const builtin = BUILTIN_CHAINS[ts.t.name].includes(name);
  if (builtin) {
    const ch = ts.byName.get(name)!;
    if (ts.declared.has(name)) {
      sink.error(nameTok, `chain "${name}" already declared`);
      return;
    }
    ts.declared.add(name);
    if (polTok.text !== 'ACCEPT' && polTok.text !== 'DROP') {
      sink.error(polTok, `bad policy "${polTok.text}" for built-in chain ${name} (ACCEPT or DROP)`);
      return;
    }
    ch.policy = polTok.text;
    ch.counters = counters;
    ch.line = head.line;
    ch.col = head.col;
    return;
  }
  if (polTok.text !== '-') {
    const other = Object.entries(BUILTIN_CHAINS).find(([t, names]) => t !== ts.t.name && names.includes(name));
    if (other)
      sink.error(nameTok, `"${name}" is a built-in chain of table ${other[0]}, not of ${ts.t.name} (built-in: ${BUILTIN_CHAINS[ts.t.name].join(', ')})`);
    else sink.error(polTok, `user chain "${name}" cannot have a policy (write "-")`);
    return;
  }
  const ch = addUserChain(ts, nameTok, sink);
  if (ch) {
    ch.counters = counters;
    ch.line = head.line;
    ch.col = head.col;
  }
}

function familyName(f: Family): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

function parseRule(
  toks: Token[],
  start: number,
  ts: TableState,
  chain: ParsedChain,
  counters: [number, number] | null,
  lineNo: number,
  outer: ParseEnv,
): ParsedRule | null {
  let bad = false;
  const sink: ParseEnv = {
    error(at, msg) {
      bad = true;
      outer.error(at, msg);
    },
    helperId: outer.helperId,
  };
  const r: ParsedRule = {
    table: ts.t.name,
    chain: chain.name,
    line: lineNo,
    family: 0,
    familyFlag: 0,
    proto: 0,
    protoInv: false,
    src: null,
    srcInv: false,
    dst: null,
    dstInv: false,
    inIface: null,
    inInv: false,
    outIface: null,
    outInv: false,
    matches: [],
    target: { kind: 'none', name: '', at: null, state: null },
    counters,
  };
  let familyWhy = '';
  const setFamily = (f: Family, tok: Token, why: string) => {
    if (f === 0) return;
    if (r.family === 0) {
      r.family = f;
      familyWhy = why;
    } else if (r.family !== f) {
      sink.error(tok, `${why} is ${familyName(f)}, but the rule is ${familyName(r.family)} (${familyWhy})`);
    }
  };
  const seenBasic = new Set<string>();
  let inv: Token | null = null;
  let skipUnknown = false;
  /** after an unknown option: its arguments are not reported again */
  let skipArgs = false;
  let protoTok: Token | null = null;

  /** Reads an option's arguments (handling the legacy `--opt ! ARG` negation). */
  const takeArgs = (t: Token, i: number, spec: { invertible: boolean; args: number }, isInv: boolean): { args: Token[]; next: number; inv: boolean } | null => {
    let invNow = isInv;
    const nx = toks[i];
    if (spec.args > 0 && nx && !nx.quoted && nx.text === '!') {
      if (!spec.invertible) {
        sink.error(nx, `option "${t.text}" cannot be inverted`);
        skipArgs = true;
        return null;
      }
      if (invNow) {
        sink.error(nx, 'multiple "!" flags not allowed');
        skipArgs = true;
        return null;
      }
      invNow = true;
      i++;
    }
    const args: Token[] = [];
    for (let k = 0; k < spec.args; k++) {
      const a = toks[i];
      if (!a || looksLikeOption(a)) {
        sink.error(t, `option "${t.text}" requires ${spec.args === 1 ? 'an argument' : `${spec.args} arguments`}`);
        return null;
      }
      args.push(a);
      i++;
    }
    return { args, next: i, inv: invNow };
  };

  let i = start;
  while (i < toks.length) {
    const t = toks[i++];
    if (!t.quoted && t.text === '!') {
      if (inv) sink.error(t, 'multiple "!" flags not allowed');
      inv = t;
      continue;
    }
    if (t.quoted || !t.text.startsWith('-') || t.text === '-' || t.text === '--') {
      if (!skipUnknown && !skipArgs) sink.error(t, `unexpected argument "${t.text}"`);
      continue;
    }
    skipArgs = false;
    const isInv = inv !== null;
    const invTok = inv;
    inv = null;
    const basic = (name: string): boolean => {
      if (seenBasic.has(name)) {
        sink.error(t, `multiple ${name} flags not allowed`);
        return false;
      }
      seenBasic.add(name);
      return true;
    };
    switch (t.text) {
      case '-4':
      case '--ipv4':
      case '-6':
      case '--ipv6': {
        skipUnknown = false;
        if (isInv) sink.error(invTok!, `"!" not allowed with ${t.text}`);
        const f: Family = t.text === '-4' || t.text === '--ipv4' ? 4 : 6;
        if (r.familyFlag !== 0 && r.familyFlag !== f) {
          sink.error(t, 'a rule cannot be both -4 and -6');
          continue;
        }
        r.familyFlag = f;
        setFamily(f, t, t.text);
        continue;
      }
      case '-p':
      case '--protocol': {
        skipUnknown = false;
        const a = takeArgs(t, i, { invertible: true, args: 1 }, isInv);
        if (!a) continue;
        i = a.next;
        if (!basic('-p')) continue;
        const p = parseProto(a.args[0].text);
        if (p < 0) {
          sink.error(a.args[0], `unknown protocol "${a.args[0].text}"`);
          continue;
        }
        r.proto = p;
        r.protoInv = a.inv;
        protoTok = a.args[0];
        if (!a.inv) setFamily(protoFamily(p), a.args[0], `-p ${protoName(p)}`);
        continue;
      }
      case '-s':
      case '--source':
      case '--src':
      case '-d':
      case '--destination':
      case '--dst': {
        skipUnknown = false;
        const isSrc = t.text === '-s' || t.text === '--source' || t.text === '--src';
        const a = takeArgs(t, i, { invertible: true, args: 1 }, isInv);
        if (!a) continue;
        i = a.next;
        if (!basic(isSrc ? '-s' : '-d')) continue;
        const spec = parseAddrSpec(a.args[0].text);
        if (typeof spec === 'string') {
          sink.error(a.args[0], spec);
          continue;
        }
        setFamily(spec.family, a.args[0], `address "${a.args[0].text}"`);
        if (isSrc) {
          r.src = spec;
          r.srcInv = a.inv;
        } else {
          r.dst = spec;
          r.dstInv = a.inv;
        }
        continue;
      }
      case '-i':
      case '--in-interface':
      case '-o':
      case '--out-interface': {
        skipUnknown = false;
        const isIn = t.text === '-i' || t.text === '--in-interface';
        const a = takeArgs(t, i, { invertible: true, args: 1 }, isInv);
        if (!a) continue;
        i = a.next;
        if (!basic(isIn ? '-i' : '-o')) continue;
        const e = checkIface(a.args[0].text);
        if (e) {
          sink.error(a.args[0], e);
          continue;
        }
        if (isIn) {
          r.inIface = a.args[0].text;
          r.inInv = a.inv;
        } else {
          r.outIface = a.args[0].text;
          r.outInv = a.inv;
        }
        continue;
      }
      case '-f':
      case '--fragment':
        sink.error(t, `${t.text} (fragment matching) is not supported`);
        continue;
      case '-c':
      case '--set-counters': {
        const a = takeArgs(t, i, { invertible: false, args: 2 }, false);
        if (!a) continue;
        i = a.next;
        if (!/^[0-9]+$/.test(a.args[0].text)) sink.error(a.args[0], `bad packet counter "${a.args[0].text}"`);
        else if (!/^[0-9]+$/.test(a.args[1].text)) sink.error(a.args[1], `bad byte counter "${a.args[1].text}"`);
        else r.counters = [Number(a.args[0].text), Number(a.args[1].text)];
        continue;
      }
      case '-m':
      case '--match': {
        if (isInv) sink.error(invTok!, '"!" not allowed before -m');
        const a = takeArgs(t, i, { invertible: false, args: 1 }, false);
        if (!a) continue;
        i = a.next;
        const nameTok = a.args[0];
        const name = MATCH_ALIASES[nameTok.text] ?? nameTok.text;
        const mod = MATCHES[name];
        if (!mod) {
          sink.error(nameTok, KNOWN_UNSUPPORTED_MATCHES.includes(name) ? `match "${name}" is not supported` : `unknown match "${nameTok.text}"`);
          skipUnknown = true;
          continue;
        }
        skipUnknown = false;
        r.matches.push({ name, at: nameTok, explicit: true, state: mod.create() });
        if (mod.family) setFamily(mod.family, nameTok, `match "${name}"`);
        continue;
      }
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        skipUnknown = false;
        if (isInv) sink.error(invTok!, `"!" not allowed before ${t.text}`);
        const a = takeArgs(t, i, { invertible: false, args: 1 }, false);
        if (!a) continue;
        i = a.next;
        const nameTok = a.args[0];
        const name = nameTok.text;
        if (r.target.kind !== 'none') {
          sink.error(t, 'multiple -j/-g flags not allowed');
          continue;
        }
        const isGoto = t.text === '-g' || t.text === '--goto';
        if ((STANDARD_VERDICTS as readonly string[]).includes(name)) {
          if (isGoto) sink.error(nameTok, `-g needs a user chain, not "${name}"`);
          else r.target = { kind: 'standard', name, at: nameTok, state: null };
          continue;
        }
        const tm = TARGETS[name];
        if (tm) {
          if (isGoto) {
            sink.error(nameTok, `-g needs a user chain, not the target "${name}"`);
            continue;
          }
          if (!tm.tables.includes(ts.t.name)) {
            sink.error(nameTok, `target ${name} is not allowed in table ${ts.t.name} (only in ${tm.tables.join(', ')})`);
            skipUnknown = true;
            continue;
          }
          r.target = { kind: 'ext', name, at: nameTok, state: tm.create() };
          continue;
        }
        if (KNOWN_UNSUPPORTED_TARGETS.includes(name) && !ts.byName.has(name)) {
          sink.error(nameTok, `target "${name}" is not supported`);
          skipUnknown = true;
          continue;
        }
        r.target = { kind: isGoto ? 'goto' : 'jump', name, at: nameTok, state: null };
        ruleTargetTok.set(r, nameTok);
        continue;
      }
    }
    // An extension option: the loaded matches (latest first), then the target, then the
    // protocol's implicit match (-p tcp --dport 22 without -m tcp).
    if (!t.text.startsWith('--')) {
      if (!skipUnknown) sink.error(t, `unknown option "${t.text}"`);
      skipArgs = true;
      continue;
    }
    const optName = t.text.slice(2);
    let owner: { mod: MatchModule | (typeof TARGETS)[string]; state: unknown; kind: string; name: string } | null = null;
    let spec: OptSpec | undefined;
    for (let k = r.matches.length - 1; k >= 0 && !owner; k--) {
      const m = r.matches[k];
      const mod = MATCHES[m.name];
      spec = mod.options.find((o) => o.name === optName);
      if (spec) owner = { mod, state: m.state, kind: 'match', name: m.name };
    }
    if (!owner && r.target.kind === 'ext') {
      const tm = TARGETS[r.target.name];
      spec = tm.options.find((o) => o.name === optName);
      if (spec) owner = { mod: tm, state: r.target.state, kind: 'target', name: tm.name };
    }
    if (!owner && r.proto && !r.protoInv && PROTO_MATCH[r.proto]) {
      const mname = PROTO_MATCH[r.proto];
      const mod = MATCHES[mname];
      spec = mod.options.find((o) => o.name === optName);
      if (spec && !r.matches.some((m) => m.name === mname)) {
        const pm: ParsedMatch = { name: mname, at: t, explicit: false, state: mod.create() };
        r.matches.push(pm);
        if (mod.family) setFamily(mod.family, t, `match "${mname}"`);
        owner = { mod, state: pm.state, kind: 'match', name: mname };
      }
    }
    if (!owner || !spec) {
      if (skipUnknown) continue;
      const unsup = [
        ...r.matches.map((m) => ({ kind: 'match', name: m.name, list: MATCHES[m.name].unsupported })),
        ...(r.target.kind === 'ext' ? [{ kind: 'target', name: r.target.name, list: TARGETS[r.target.name].unsupported }] : []),
      ].find((x) => x.list?.includes(optName));
      skipArgs = true;
      if (unsup) sink.error(t, `option "${t.text}" of ${unsup.kind} ${unsup.name} is not supported`);
      else {
        const ctx = r.matches.length ? ` (matches loaded: ${r.matches.map((m) => m.name).join(', ')})` : '';
        sink.error(t, `unknown option "${t.text}"${ctx}`);
      }
      continue;
    }
    if (isInv && !spec.invertible) {
      sink.error(invTok!, `option "${t.text}" cannot be inverted`);
      skipArgs = true;
      continue;
    }
    const a = takeArgs(t, i, spec, isInv);
    if (!a) continue;
    i = a.next;
    owner.mod.parse(owner.state, optName, a.args, a.inv, t, sink);
  }
  if (inv) sink.error(inv, '"!" must be followed by an option');

  // Completeness checks only for rules that read cleanly (no cascades from an earlier error).
  if (bad) return null;
  const info = { proto: r.proto, protoInv: r.protoInv, family: r.family, table: ts.t.name, chain: chain.name };
  for (const m of r.matches) {
    const mod = MATCHES[m.name];
    if (mod.proto && (r.proto !== mod.proto || r.protoInv)) {
      sink.error(m.at, `match "${m.name}" needs "-p ${protoName(mod.proto)}"${protoTok && r.protoInv ? ' (not negated)' : ''}`);
      continue;
    }
    mod.finalize(m.state, info, m.at, sink);
    setFamily(mod.familyOf(m.state), m.at, `match "${m.name}"`);
  }
  if (r.target.kind === 'ext') {
    const tm = TARGETS[r.target.name];
    tm.finalize(r.target.state, info, r.target.at!, sink);
    setFamily(tm.familyOf(r.target.state), r.target.at!, `target ${r.target.name} with ${tm.save(r.target.state, 0).join(' ')}`);
  }
  return bad ? null : r;
}

/** At COMMIT: jumps to existing user chains, no loops, nesting within the kernel's limit. */
function resolveTable(ts: TableState, sink: ParseEnv): void {
  const edges = new Map<string, JumpRef[]>();
  for (const ch of ts.t.chains) {
    const list: JumpRef[] = [];
    for (const r of ch.rules) {
      if (r.target.kind !== 'jump' && r.target.kind !== 'goto') continue;
      const tok = ruleTargetTok.get(r)!;
      const target = ts.byName.get(r.target.name);
      if (!target) {
        if (/^[A-Z][A-Z0-9_]*$/.test(r.target.name) && r.target.name.length > 1)
          sink.error(tok, `unknown target "${r.target.name}" (no target or chain of that name)`);
        else sink.error(tok, `jump to missing chain "${r.target.name}"`);
        r.target.kind = 'none';
        continue;
      }
      if (target.builtin) {
        sink.error(tok, `cannot jump to built-in chain ${target.name}`);
        r.target.kind = 'none';
        continue;
      }
      list.push({ rule: r, tok });
    }
    edges.set(ch.name, list);
  }
  // Loops (checked among all chains, as nf_tables does on every jump).
  const color = new Map<string, number>(); // 1 = on stack, 2 = done
  const stack: string[] = [];
  const loopEdges = new Set<JumpRef>();
  // Iterative depth-first search: a chain of thousands of user chains must give
  // errors, not overflow the JS stack (recursion here crashed `nfqwall check`).
  const visit = (root: string) => {
    const frames: { c: string; list: JumpRef[]; i: number }[] = [];
    const enter = (c: string) => {
      color.set(c, 1);
      stack.push(c);
      frames.push({ c, list: edges.get(c) ?? [], i: 0 });
    };
    enter(root);
    while (frames.length > 0) {
      const f = frames[frames.length - 1];
      if (f.i < f.list.length) {
        const e = f.list[f.i++];
        const t = e.rule.target.name;
        const st = color.get(t);
        if (st === 1) {
          const cycle = [...stack.slice(stack.indexOf(t)), t];
          sink.error(e.tok, `jump to "${t}" creates a loop (${cycle.join(' -> ')})`);
          loopEdges.add(e);
        } else if (st === undefined) enter(t);
      } else {
        frames.pop();
        stack.pop();
        color.set(f.c, 2);
      }
    }
  };
  for (const ch of ts.t.chains) if (!color.has(ch.name)) visit(ch.name);
  // Depth below the built-in chains.
  const best = new Map<string, number>();
  const reported = new Set<JumpRef>();
  const walk = (c: string, level: number) => {
    if ((best.get(c) ?? -1) >= level) return;
    best.set(c, level);
    for (const e of edges.get(c) ?? []) {
      if (loopEdges.has(e)) continue;
      if (level + 1 > MAX_CHAIN_DEPTH) {
        if (!reported.has(e)) {
          reported.add(e);
          sink.error(e.tok, `jump to "${e.rule.target.name}" nests user chains ${level + 1} deep (the kernel allows ${MAX_CHAIN_DEPTH})`);
        }
        continue;
      }
      walk(e.rule.target.name, level + 1);
    }
  };
  for (const ch of ts.t.chains) if (ch.builtin) walk(ch.name, 0);
}
