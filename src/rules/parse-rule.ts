/**
 * One rule line as do_parse() (iptables/xshared.c, 1.8.9) reads it: options in any
 * order through getopt_long, the command (-A, -I, -N, -P) anywhere among them, `!`
 * before the option it negates, extension options once their match or target is
 * loaded (the protocol's match implicitly, on the first option only it knows).
 */
import { emptyRule } from './parsed-rule';
import { parseAddrList } from './addr';
import { Getopt, type GetoptResult, type LongOption } from './argv';
import { checkIface, parseProto, protoFamily, protoName } from './matches/basic';
import { KNOWN_UNSUPPORTED_MATCHES, MATCHES, MATCH_ALIASES, PROTO_MATCH, unsupportedMatchError } from './matches/index';
import { checkChainName, MAX_CHAIN_NAME } from './chains';
import type { TableState } from './parse';
import { KNOWN_UNSUPPORTED_TARGETS, STANDARD_VERDICTS, TARGETS } from './targets/index';
import type { AddrSpec, Family, OptSpec, ParseEnv, ParsedMatch, ParsedRule, TargetModule, Token } from './types';

export type RuleCommand =
  | { kind: 'append'; chain: Token; rules: ParsedRule[] }
  | { kind: 'insert'; chain: Token; pos: Token | null; num: number; rules: ParsedRule[] }
  | { kind: 'new'; chain: Token }
  | { kind: 'policy'; chain: Token; policy: Token; counters: [number, number] | null }
  /** -F [CHAIN], -X [CHAIN], -Z [CHAIN [N]] (null = every chain of the table) */
  | { kind: 'flush' | 'delete-chain' | 'zero'; tok: Token; chain: Token | null }
  /** -D CHAIN N */
  | { kind: 'delete-num'; chain: Token; pos: Token; num: number }
  /** -D CHAIN RULE, -C CHAIN RULE */
  | { kind: 'delete' | 'check'; chain: Token; rules: ParsedRule[] };

const COMMAND_NAMES: Record<string, string> = {
  A: '-A',
  I: '-I',
  N: '-N',
  P: '-P',
  D: '-D',
  R: '-R',
  C: '-C',
  E: '-E',
  F: '-F',
  X: '-X',
  Z: '-Z',
  L: '-L',
  S: '-S',
};

/** Commands iptables-nft-restore 1.8.9 has that nfqwall refuses, and why. */
const UNSUPPORTED_COMMANDS: Record<string, string> = {
  E: '-E (rename a chain) is not supported: iptables-nft-restore 1.8.9 itself fails on it (CHAIN_RENAME: No such file or directory)',
  R: '-R (replace a rule) is not supported: iptables-nft-restore 1.8.9 crashes on it; delete and insert instead',
  L: '-L lists rules; it has no place in a rule file',
  S: '-S lists rules; it has no place in a rule file',
};

/** Options that are illegal with -N, -P, -F, -X, -Z and -D NUM (generic_opt_check; -P takes -c). */
const RULE_OPTIONS = ['-s', '-d', '-p', '-j', '-i', '-o', '-f', '-c'];

function familyName(f: Family): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

/** Why a word that is neither an option nor an option's argument is there, as far as can be told. */
function strayWord(tok: Token, first: boolean, ts: TableState): string {
  if (first && tok.text === 'COMMIT') return '"COMMIT" must be alone on its line (iptables-restore reads this line as a rule)';
  if (first && tok.text.startsWith('#')) return '"#" starts a comment only in column 1 (iptables-restore reads this line as a rule)';
  if (first && tok.text.startsWith('*')) return `"${tok.text}" inside table ${ts.t.name} (line ${ts.at.line}): close that table with COMMIT first`;
  return `unexpected word "${tok.text}" (neither an option nor an option's argument)`;
}

/** sscanf("%llu"): leading digits after optional white space and sign. */
function scanCounter(s: string): number {
  const m = /^[ \t]*\+?([0-9]+)/.exec(s);
  return m ? Number(m[1]) : -1;
}

interface Owner {
  kind: 'match' | 'target';
  name: string;
  spec: OptSpec;
  parse: (opt: string, args: Token[], inv: boolean, optTok: Token, env: ParseEnv) => void;
}

/**
 * Reads one rule line (words after any [p:b] counters). Returns the command with its
 * rules (more than one when -s/-d list several addresses), or null after an error.
 */
export function parseRuleLine(words: Token[], ts: TableState, counters: [number, number] | null, outer: ParseEnv): RuleCommand | null {
  let bad = false;
  const sink: ParseEnv = {
    error(at, msg) {
      bad = true;
      outer.error(at, msg);
    },
    helperId: outer.helperId,
    protoName: '',
  };
  const table = ts.t.name;
  const r: ParsedRule = emptyRule(table, '', words[0].line, counters);
  let familyWhy = '';
  const setFamily = (f: Family, tok: Token, why: string) => {
    if (f === 0) return;
    if (r.family === 0) {
      r.family = f;
      familyWhy = why;
    } else if (r.family !== f) sink.error(tok, `${why} is ${familyName(f)}, but the rule is ${familyName(r.family)} (${familyWhy})`);
  };

  let command: { val: string; tok: Token; chain: Token; optional?: boolean } | null = null;
  let deletePos: Token | null = null;
  let insertPos: Token | null = null;
  let insertNum = 1;
  let policy: Token | null = null;
  const optionsSet = new Map<string, Token>();
  let srcList: (AddrSpec | null)[] | null = null;
  let dstList: (AddrSpec | null)[] | null = null;
  let srcTok: Token | null = null;
  let dstTok: Token | null = null;
  let protoTok: Token | null = null;
  let protoFamilyHint: Family = 0;
  let implicitLoaded = false;
  /** after an unknown match or option: what follows belongs to it, not reported again */
  let skipping = false;
  let inv: Token | null = null;
  const g = new Getopt(words);
  const owners = new Map<string, Owner>();

  const loadOptions = (key: string, kind: 'match' | 'target', name: string, options: readonly OptSpec[], parse: Owner['parse']) => {
    const long: LongOption[] = [];
    for (const spec of options) {
      const val = `${key}:${spec.name}`;
      owners.set(val, { kind, name, spec, parse });
      long.push({ name: spec.name, hasArg: spec.args === 0 ? 0 : 1, val });
    }
    g.addOptions(long);
  };
  const loadMatch = (name: string, at: Token, explicit: boolean): ParsedMatch => {
    const mod = MATCHES[name];
    const m: ParsedMatch = { name, at, explicit, state: mod.create() };
    r.matches.push(m);
    loadOptions(`m${r.matches.length - 1}`, 'match', name, mod.options, (opt, args, i, t, env) => mod.parse(m.state, opt, args, i, t, env));
    if (mod.family) setFamily(mod.family, at, `match "${name}"`);
    return m;
  };
  /** set_option(): once per rule, and `!` only where iptables has an inverse flag */
  const setOption = (name: string, tok: Token, invTok: Token | null, invertible: boolean): boolean => {
    if (optionsSet.has(name)) {
      sink.error(tok, `multiple ${name} flags not allowed`);
      return false;
    }
    optionsSet.set(name, tok);
    if (invTok && !invertible) {
      sink.error(invTok, `"!" not allowed before ${name}`);
      return false;
    }
    return true;
  };
  /** The argument of -s/-p/… that iptables 1.8 reads as "!" itself (`-s ! ADDR` is gone). */
  const intrapositioned = (o: { name: string; arg: Token | null }): boolean => {
    if (o.arg?.text !== '!') return false;
    sink.error(o.arg, `"!" after ${o.name}: iptables 1.8 reads it as the argument; write "! ${o.name} …"`);
    skipping = true;
    return true;
  };

  for (let res: GetoptResult | null = g.read(); res; res = g.read()) {
    if (res.kind === 'word') {
      if (res.tok.text === '!') {
        if (inv) sink.error(res.tok, 'multiple "!" flags not allowed');
        inv = res.tok;
        continue;
      }
      if (!skipping) sink.error(res.tok, strayWord(res.tok, res.tok === words[0], ts));
      skipping = true;
      continue;
    }
    if (res.kind === 'end') {
      if (res.rest.length > 0) sink.error(res.rest[0], `unexpected "${res.rest[0].text}" after "--"`);
      break;
    }
    const invTok: Token | null = inv;
    inv = null;
    if (res.kind === 'missing') {
      sink.error(res.tok, `option "${res.name}" requires an argument`);
      continue;
    }
    if (res.kind === 'unknown') {
      // The protocol's match is loaded on the first option nothing else knows (-p tcp --dport 22).
      if (!implicitLoaded && r.proto && PROTO_MATCH[r.proto] && !r.matches.some((m) => m.name === PROTO_MATCH[r.proto]) && res.name.startsWith('--')) {
        implicitLoaded = true;
        loadMatch(PROTO_MATCH[r.proto], res.tok, false);
        g.again(res.tok);
        inv = invTok;
        continue;
      }
      if (skipping) continue;
      skipping = true;
      const pm = protoName(r.proto);
      if (r.proto && !r.protoInv && KNOWN_UNSUPPORTED_MATCHES.includes(pm) && res.name.startsWith('--')) {
        sink.error(res.tok, `option "${res.name}" would come from match "${pm}" (loaded by -p ${pm}), which nfqwall does not support`);
        continue;
      }
      if (res.ambiguous.length > 0) {
        sink.error(res.tok, `option "${res.name}" is ambiguous (${res.ambiguous.map((o) => `--${o.name}`).join(', ')})`);
        continue;
      }
      const optName = res.name.replace(/^--?/, '');
      const unsup = [
        ...r.matches.map((m) => ({ kind: 'match', name: m.name, list: MATCHES[m.name].unsupported })),
        ...(r.target.kind === 'ext' ? [{ kind: 'target', name: r.target.name, list: TARGETS[r.target.name].unsupported }] : []),
      ].find((x) => x.list?.includes(optName));
      if (unsup) sink.error(res.tok, `option "${res.name}" of ${unsup.kind} ${unsup.name} is not supported`);
      else {
        const ctx = r.matches.length ? ` (matches loaded: ${r.matches.map((m) => m.name).join(', ')})` : '';
        sink.error(res.tok, `unknown option "${res.name}"${ctx}`);
      }
      continue;
    }
    const { val, tok } = res;
    // do_parse reads -p, -s, -d, -i, -o and -j from argv[optind - 1]: "-ptcp" is the protocol "-ptcp".
    const arg = 'psdioj'.includes(val) ? res.word : res.arg;
    skipping = false;
    switch (val) {
      case 'A':
      case 'I':
      case 'N':
      case 'P':
      case 'D':
      case 'R':
      case 'C':
      case 'E':
      case 'F':
      case 'X':
      case 'Z':
      case 'L':
      case 'S': {
        if (invTok) sink.error(invTok, `"!" not allowed before ${COMMAND_NAMES[val]}`);
        if (command) {
          sink.error(tok, `one command per line: ${COMMAND_NAMES[val]} after ${COMMAND_NAMES[command.val]}`);
          continue;
        }
        if (val === 'E' || val === 'R' || val === 'L' || val === 'S') {
          sink.error(tok, UNSUPPORTED_COMMANDS[val]);
          skipping = true;
          command = { val, tok, chain: tok };
          continue;
        }
        // -F, -X and -Z take their chain attached or as the next word that is no option
        const chain = arg ?? ('FXZ'.includes(val) ? g.takeExtraArg() : null);
        command = { val, tok, chain: chain ?? tok, optional: chain === null };
        const zeroNum = val === 'Z' && chain ? g.takeExtraArg() : null;
        if (zeroNum) sink.error(zeroNum, '-Z CHAIN NUM is not supported: iptables-nft-restore 1.8.9 crashes on it; -Z CHAIN zeroes the whole chain');
        if (val === 'D') {
          deletePos = g.takeExtraArg();
          if (deletePos && !/^[0-9]+$/.test(deletePos.text)) sink.error(deletePos, `bad rule number "${deletePos.text}" for -D (1 or more)`);
        }
        if (!chain) continue;
        if (val === 'N' && !checkChainName(chain, sink)) continue;
        if (val === 'I') {
          const pos = g.takeExtraArg();
          if (pos) {
            insertPos = pos;
            insertNum = /^[0-9]+$/.test(pos.text) ? Number(pos.text) : -1;
            if (insertNum < 1 || insertNum > 0x7fffffff) sink.error(pos, `bad rule number "${pos.text}" for -I (1 or more)`);
          }
        }
        if (val === 'P') {
          policy = g.takeExtraArg();
          if (!policy) sink.error(tok, '-P needs a chain and a policy (-P CHAIN ACCEPT|DROP)');
        }
        continue;
      }
      case '4':
      case '6': {
        // iptables drops a "!" before -4/-6 without a word.
        const f: Family = val === '4' ? 4 : 6;
        if (r.familyFlag !== 0 && r.familyFlag !== f) {
          sink.error(tok, 'a rule cannot be both -4 and -6');
          continue;
        }
        r.familyFlag = f;
        setFamily(f, tok, tok.text);
        continue;
      }
      case 'p': {
        if (intrapositioned(res) || !setOption('-p', tok, invTok, true)) continue;
        const p = parseProto(arg!.text);
        if (p < 0) {
          sink.error(arg!, `unknown protocol "${arg!.text}" (a name like tcp, udp, icmp, ipv6-icmp, all, or a number 0..255)`);
          continue;
        }
        if (p === 0 && invTok) {
          sink.error(invTok, `"! -p ${arg!.text}" would never match`);
          continue;
        }
        r.proto = p;
        r.protoInv = invTok !== null;
        protoTok = arg;
        sink.protoName = r.protoInv || p === 0 ? '' : protoName(p);
        // only a default: ip6tables takes -6 -p icmp (next header 1), iptables -4 -p ipv6-icmp
        protoFamilyHint = r.protoInv ? 0 : protoFamily(p);
        continue;
      }
      case 's':
      case 'd': {
        const name = val === 's' ? '-s' : '-d';
        if (intrapositioned(res) || !setOption(name, tok, invTok, true)) continue;
        const list = parseAddrList(arg!.text);
        if (typeof list === 'string') {
          sink.error(arg!, list);
          continue;
        }
        if (list.length > 1 && invTok) {
          sink.error(invTok, `"!" not allowed with several addresses ("${arg!.text}")`);
          continue;
        }
        if (list.some((a) => a === null) && invTok) {
          sink.error(invTok, `"! ${name} ${arg!.text}" never matches; nfqwall refuses it`);
          continue;
        }
        for (const a of list) if (a) setFamily(a.family, arg!, `address "${arg!.text}"`);
        if (val === 's') {
          srcList = list;
          srcTok = arg;
          r.srcInv = invTok !== null;
        } else {
          dstList = list;
          dstTok = arg;
          r.dstInv = invTok !== null;
        }
        continue;
      }
      case 'i':
      case 'o': {
        const name = val === 'i' ? '-i' : '-o';
        if (intrapositioned(res) || !setOption(name, tok, invTok, true)) continue;
        const e = arg!.text === '' ? 'empty interface name' : checkIface(arg!.text);
        if (e) {
          sink.error(arg!, e);
          continue;
        }
        if (val === 'i') {
          r.inIface = arg!.text;
          r.inInv = invTok !== null;
        } else {
          r.outIface = arg!.text;
          r.outInv = invTok !== null;
        }
        continue;
      }
      case 'f':
        // ip_packet_match: IPT_F_FRAG tests the fragment offset; iptables has it for IPv4 only
        if (!setOption('-f', tok, invTok, true)) continue;
        r.fragment = invTok !== null ? -1 : 1;
        setFamily(4, tok, '-f (fragment matching)');
        continue;
      case 'c': {
        if (!setOption('-c', tok, invTok, false)) continue;
        const pc = arg!;
        const comma = pc.text.indexOf(',', 1);
        const bc = comma >= 0 ? { ...pc, text: pc.text.slice(comma + 1) } : g.takeExtraArg();
        if (!bc) {
          sink.error(tok, `${tok.text} needs a packet and a byte counter`);
          continue;
        }
        const p = scanCounter(comma >= 0 ? pc.text.slice(0, comma) : pc.text);
        const b = scanCounter(bc.text);
        if (p < 0) sink.error(pc, `packet counter "${pc.text}" is not a number`);
        else if (b < 0) sink.error(bc, `byte counter "${bc.text}" is not a number`);
        else r.counters = [p, b];
        continue;
      }
      case 'v':
      case 'M':
        // verbose / modprobe: no effect on the rules
        if (invTok && val === 'v') sink.error(invTok, '"!" not allowed before -v');
        continue;
      case 'n':
      case 'x':
      case '0':
        sink.error(tok, `option ${tok.text} is for listing rules, not with a rule`);
        continue;
      case 't':
        sink.error(tok, `${tok.text} cannot be used in a rule file (the table is the *${table} line)`);
        continue;
      case 'w':
      case 'W':
        sink.error(tok, `${tok.text} cannot be used in a rule file`);
        continue;
      case 'h':
      case 'V':
        sink.error(tok, `${tok.text} in a rule file: iptables-restore would print its ${val === 'h' ? 'help' : 'version'} and stop`);
        continue;
      case 'm': {
        if (invTok) sink.error(invTok, '"!" not allowed before -m');
        const name = MATCH_ALIASES[arg!.text] ?? arg!.text;
        if (!MATCHES[name]) {
          sink.error(
            arg!,
            KNOWN_UNSUPPORTED_MATCHES.includes(name) ? unsupportedMatchError(name) : `unknown match "${arg!.text}" (iptables has no match of that name)`,
          );
          skipping = true;
          continue;
        }
        loadMatch(name, arg!, true);
        continue;
      }
      case 'j':
      case 'g': {
        const isGoto = val === 'g';
        if (!setOption('-j', tok, invTok, false)) continue;
        const nameTok = arg!;
        const name = nameTok.text;
        if (name.length === 0 || name.length > MAX_CHAIN_NAME || /\s/.test(name)) {
          sink.error(nameTok, `bad target name "${name}" (1 to ${MAX_CHAIN_NAME} characters, no white space)`);
          continue;
        }
        if ((STANDARD_VERDICTS as readonly string[]).includes(name)) {
          if (isGoto) sink.error(nameTok, `-g needs a user chain, not "${name}"`);
          else r.target = { kind: 'standard', name, at: nameTok, state: null };
          continue;
        }
        const tm: TargetModule | undefined = TARGETS[name];
        if (tm && !isGoto) {
          if (!tm.tables.includes(table)) {
            sink.error(nameTok, `target ${name} is not allowed in table ${table} (only in ${tm.tables.join(', ')})`);
            skipping = true;
            continue;
          }
          const target = { kind: 'ext' as const, name, at: nameTok, state: tm.create() };
          r.target = target;
          loadOptions('t', 'target', name, tm.options, (opt, args, i, t, env) => tm.parse(target.state, opt, args, i, t, env));
          continue;
        }
        if ((tm || KNOWN_UNSUPPORTED_TARGETS.includes(name)) && !ts.byName.has(name)) {
          sink.error(nameTok, tm ? `-g needs a user chain, not the target "${name}"` : `target "${name}" is not supported`);
          skipping = true;
          continue;
        }
        r.target = { kind: isGoto ? 'goto' : 'jump', name, at: nameTok, state: null };
        continue;
      }
    }
    const owner = owners.get(val);
    if (!owner) {
      // an option letter in iptables' optstring that do_parse has no case for (-b)
      sink.error(tok, `unknown option "${tok.text}"`);
      continue;
    }
    if (invTok && !owner.spec.invertible) {
      sink.error(invTok, `option "--${owner.spec.name}" cannot be inverted`);
      skipping = true;
      continue;
    }
    const args: Token[] = [];
    if (owner.spec.args >= 1) {
      if (owner.spec.invertible && intrapositioned(res)) continue;
      args.push(arg!);
    }
    if (owner.spec.args === 2) {
      const second = g.takeExtraArg();
      if (!second) {
        sink.error(tok, `option "--${owner.spec.name}" requires two arguments`);
        continue;
      }
      args.push(second);
    }
    owner.parse(owner.spec.name, args, invTok !== null, tok, sink);
  }
  if (inv) sink.error(inv, '"!" must be followed by an option');
  if (!command) {
    if (!bad) sink.error(words[0], 'no command in this line (expected -A, -I, -N or -P with a chain)');
    return null;
  }
  if (bad) return null;

  const cmdName = COMMAND_NAMES[command.val];
  const chainOnly = 'NPFXZ'.includes(command.val) || (command.val === 'D' && deletePos !== null);
  if (chainOnly || command.val === 'C' || command.val === 'D') {
    for (const o of chainOnly ? RULE_OPTIONS : ['-c']) {
      const t = optionsSet.get(o);
      if (t && !(o === '-c' && command.val === 'P')) {
        sink.error(t, `option ${o} is not allowed with ${cmdName}`);
        return null;
      }
    }
  }
  if (chainOnly) {
    if (r.matches.length > 0) {
      sink.error(r.matches[0].at, `-m is not allowed with ${cmdName}`);
      return null;
    }
    const kinds = { F: 'flush', X: 'delete-chain', Z: 'zero' } as const;
    if (command.val in kinds) return { kind: kinds[command.val as keyof typeof kinds], tok: command.tok, chain: command.optional ? null : command.chain };
    if (command.val === 'D') return { kind: 'delete-num', chain: command.chain, pos: deletePos!, num: Number(deletePos!.text) };
    if (command.val === 'N') return { kind: 'new', chain: command.chain };
    return { kind: 'policy', chain: command.chain, policy: policy!, counters: optionsSet.has('-c') ? r.counters : null };
  }
  const chain = command.chain;
  if (chain.text.length > MAX_CHAIN_NAME) {
    sink.error(chain, `chain name "${chain.text}" is too long (at most ${MAX_CHAIN_NAME} characters)`);
    return null;
  }
  if ((chain.text === 'PREROUTING' || chain.text === 'INPUT') && r.outIface !== null) {
    sink.error(optionsSet.get('-o')!, `-o cannot be used in ${chain.text} (packets there have no output interface yet)`);
    return null;
  }
  if ((chain.text === 'POSTROUTING' || chain.text === 'OUTPUT') && r.inIface !== null) {
    sink.error(optionsSet.get('-i')!, `-i cannot be used in ${chain.text} (locally generated packets have no input interface)`);
    return null;
  }
  r.chain = chain.text;

  // Completeness checks of the extensions (xtables_option_mfcall / tfcall, then the kernel's checkentry).
  const info = { proto: r.proto, protoInv: r.protoInv, family: r.family, table, chain: chain.text };
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
  if (bad) return null;
  if (r.family === 0) r.family = protoFamilyHint;

  // Several addresses make one rule each (source outer, destination inner), as iptables adds them.
  const rules: ParsedRule[] = [];
  for (const s of srcList ?? [null]) {
    for (const d of dstList ?? [null]) {
      const fam = [s?.family ?? 0, d?.family ?? 0, r.family].find((f) => f !== 0) ?? 0;
      if (s && d && s.family !== d.family) {
        sink.error(dstTok!, `address "${dstTok!.text}" is ${familyName(d.family)}, but the rule is ${familyName(s.family)} (address "${srcTok!.text}")`);
        return null;
      }
      rules.push({ ...r, src: s, dst: d, family: fam as Family, matches: r.matches.map((m) => ({ ...m })) });
    }
  }
  if (command.val === 'I') return { kind: 'insert', chain, pos: insertPos, num: insertNum, rules };
  if (command.val === 'D' || command.val === 'C') return { kind: command.val === 'D' ? 'delete' : 'check', chain, rules };
  return { kind: 'append', chain, rules };
}
