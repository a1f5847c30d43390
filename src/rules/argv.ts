/**
 * A rule line as iptables-restore hands it to the iptables option parser: split into
 * words by add_param_to_argv() (iptables/xshared.c), then read option by option as
 * glibc's getopt_long() does with iptables' option string and long option table.
 */
import type { Token } from './types';

/**
 * Splits a rule line into words the way add_param_to_argv() does: space, tab and
 * newline separate; only double quotes group ("a b" is one word, and a closing quote
 * ends the word); inside quotes a backslash escapes the next character; outside
 * quotes backslash and single quotes are ordinary characters; an unterminated quote
 * runs to the end of the line. `col` is the 1-based column of a word's first character.
 */
export function splitArgs(line: string, lineNo: number): Token[] {
  const toks: Token[] = [];
  let text = '';
  let start = -1;
  let quoted = false;
  let open = false;
  let escaped = false;
  const flush = () => {
    toks.push({ text, line: lineNo, col: start + 1, quoted });
    text = '';
    start = -1;
    quoted = false;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (open) {
      if (escaped) {
        text += c;
        escaped = false;
      } else if (c === '\\') escaped = true;
      else if (c === '"') {
        open = false;
        flush();
      } else text += c;
      continue;
    }
    if (c === '"') {
      if (start < 0) start = i;
      open = true;
      quoted = true;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n') {
      if (text.length > 0) flush();
      else start = -1;
      continue;
    }
    if (start < 0) start = i;
    text += c;
  }
  if (text.length > 0) flush();
  return toks;
}

/** One entry of the long option table (struct option). */
export interface LongOption {
  name: string;
  /** 0 = no argument, 1 = required, 2 = optional (only as --name=VALUE) */
  hasArg: 0 | 1 | 2;
  /** what the option means: a short option letter for iptables' own options, else the owner's key */
  val: string;
}

/**
 * iptables' own options (original_opts in iptables/xtables.c, 1.8.9): commands and
 * the options every rule has.
 */
export const BASE_LONG_OPTIONS: readonly LongOption[] = [
  { name: 'append', hasArg: 1, val: 'A' },
  { name: 'delete', hasArg: 1, val: 'D' },
  { name: 'check', hasArg: 1, val: 'C' },
  { name: 'insert', hasArg: 1, val: 'I' },
  { name: 'replace', hasArg: 1, val: 'R' },
  { name: 'list', hasArg: 2, val: 'L' },
  { name: 'list-rules', hasArg: 2, val: 'S' },
  { name: 'flush', hasArg: 2, val: 'F' },
  { name: 'zero', hasArg: 2, val: 'Z' },
  { name: 'new-chain', hasArg: 1, val: 'N' },
  { name: 'delete-chain', hasArg: 2, val: 'X' },
  { name: 'rename-chain', hasArg: 1, val: 'E' },
  { name: 'policy', hasArg: 1, val: 'P' },
  { name: 'source', hasArg: 1, val: 's' },
  { name: 'destination', hasArg: 1, val: 'd' },
  { name: 'src', hasArg: 1, val: 's' },
  { name: 'dst', hasArg: 1, val: 'd' },
  { name: 'protocol', hasArg: 1, val: 'p' },
  { name: 'in-interface', hasArg: 1, val: 'i' },
  { name: 'jump', hasArg: 1, val: 'j' },
  { name: 'table', hasArg: 1, val: 't' },
  { name: 'match', hasArg: 1, val: 'm' },
  { name: 'numeric', hasArg: 0, val: 'n' },
  { name: 'out-interface', hasArg: 1, val: 'o' },
  { name: 'verbose', hasArg: 0, val: 'v' },
  { name: 'wait', hasArg: 2, val: 'w' },
  { name: 'wait-interval', hasArg: 2, val: 'W' },
  { name: 'exact', hasArg: 0, val: 'x' },
  { name: 'fragments', hasArg: 0, val: 'f' },
  { name: 'version', hasArg: 0, val: 'V' },
  { name: 'help', hasArg: 2, val: 'h' },
  { name: 'line-numbers', hasArg: 0, val: '0' },
  { name: 'modprobe', hasArg: 1, val: 'M' },
  { name: 'set-counters', hasArg: 1, val: 'c' },
  { name: 'goto', hasArg: 1, val: 'g' },
  { name: 'ipv4', hasArg: 0, val: '4' },
  { name: 'ipv6', hasArg: 0, val: '6' },
];

/** IPT_OPTSTRING (iptables/xshared.h): the short options and whether they take an argument. */
const SHORT_OPTIONS = parseOptstring('A:C:D:E:F::I:L::M:N:P:VX::Z::c:d:i:j:o:p:s:t:R:S::W::46bfg:h::m:nvw::x');

function parseOptstring(s: string): Map<string, 0 | 1 | 2> {
  const m = new Map<string, 0 | 1 | 2>();
  for (let i = 0; i < s.length; i++) {
    let has: 0 | 1 | 2 = 0;
    if (s[i + 1] === ':') has = s[i + 2] === ':' ? 2 : 1;
    m.set(s[i], has);
    i += has;
  }
  return m;
}

export type GetoptResult =
  /** an option: val from the table, the word it was written in, its argument */
  | {
      kind: 'option';
      val: string;
      name: string;
      tok: Token;
      arg: Token | null;
      /** argv[optind - 1] after this option: the argument's own word, or the option's word when the argument was attached (-ptcp) */
      word: Token;
    }
  /** a word that is not an option (getopt's return value 1 with "-" leading the optstring) */
  | { kind: 'word'; tok: Token }
  /** '?': unknown or ambiguous option, or an argument given to one that takes none */
  | { kind: 'unknown'; tok: Token; name: string; ambiguous: LongOption[] }
  /** ':': a required argument is missing */
  | { kind: 'missing'; tok: Token; name: string }
  /** "--": the end of the options; words after it are `rest` */
  | { kind: 'end'; tok: Token; rest: Token[] };

/**
 * getopt_long() over the words of one rule line, in order (iptables' optstring starts
 * with "-", so words that are not options come back in place rather than permuted).
 * Long options may be abbreviated to a unique prefix; the table grows as matches and
 * targets are loaded (their options go right after iptables' own, newest first).
 */
export class Getopt {
  /** index of the next word */
  index = 0;
  /** inside a cluster of short options (-4j), the offset of the next letter */
  private next = 0;
  readonly longOptions: LongOption[] = [...BASE_LONG_OPTIONS];

  constructor(readonly words: Token[]) {}

  /** Adds an extension's options as xtables_options_xfrm does: after the base options, before older ones. */
  addOptions(opts: LongOption[]): void {
    this.longOptions.splice(BASE_LONG_OPTIONS.length, 0, ...opts);
  }

  /** The word after the current option, when it is there and starts with neither '-' nor '!' (xs_has_arg). */
  takeExtraArg(): Token | null {
    const w = this.words[this.index];
    if (!w || w.text.startsWith('-') || w.text.startsWith('!')) return null;
    this.index++;
    return w;
  }

  /** Re-reads the word just returned (iptables' `optind--` after loading the protocol's match). */
  again(tok: Token): void {
    this.index = this.words.indexOf(tok);
    this.next = 0;
  }

  read(): GetoptResult | null {
    if (this.next > 0) return this.short();
    const w = this.words[this.index];
    if (!w) return null;
    if (w.text === '--') {
      this.index++;
      return { kind: 'end', tok: w, rest: this.words.slice(this.index) };
    }
    if (w.text.startsWith('--')) return this.long(w);
    if (w.text.length > 1 && w.text[0] === '-') {
      this.next = 1;
      return this.short();
    }
    this.index++;
    return { kind: 'word', tok: w };
  }

  private long(w: Token): GetoptResult {
    this.index++;
    const body = w.text.slice(2);
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    let found: LongOption | null = null;
    const prefixed: LongOption[] = [];
    for (const o of this.longOptions) {
      if (!o.name.startsWith(name)) continue;
      if (o.name.length === name.length) {
        found = o;
        break;
      }
      prefixed.push(o);
    }
    if (!found && prefixed.length > 0) {
      const [first] = prefixed;
      if (prefixed.some((o) => o.hasArg !== first.hasArg || o.val !== first.val)) return { kind: 'unknown', tok: w, name: `--${name}`, ambiguous: prefixed };
      found = first;
    }
    if (!found || name === '') return { kind: 'unknown', tok: w, name: `--${name}`, ambiguous: [] };
    let arg: Token | null = null;
    if (eq >= 0) {
      if (found.hasArg === 0) return { kind: 'unknown', tok: w, name: `--${found.name}`, ambiguous: [] };
      arg = { text: body.slice(eq + 1), line: w.line, col: w.col + 3 + eq, quoted: w.quoted };
    } else if (found.hasArg === 1) {
      arg = this.words[this.index] ?? null;
      if (!arg) return { kind: 'missing', tok: w, name: `--${found.name}` };
      this.index++;
    }
    return { kind: 'option', val: found.val, name: `--${found.name}`, tok: w, arg, word: this.words[this.index - 1] };
  }

  private short(): GetoptResult {
    const w = this.words[this.index];
    const c = w.text[this.next];
    const at = this.next;
    this.next++;
    const rest = w.text.slice(this.next);
    const done = () => {
      this.next = 0;
      this.index++;
    };
    const has = SHORT_OPTIONS.get(c);
    if (has === undefined) {
      if (rest === '') done();
      return { kind: 'unknown', tok: w, name: `-${c}`, ambiguous: [] };
    }
    const optTok: Token = at === 1 ? w : { ...w, text: `-${c}`, col: w.col + at };
    if (has === 0) {
      if (rest === '') done();
      return { kind: 'option', val: c, name: `-${c}`, tok: optTok, arg: null, word: w };
    }
    done();
    if (rest !== '')
      return { kind: 'option', val: c, name: `-${c}`, tok: optTok, arg: { text: rest, line: w.line, col: w.col + at + 1, quoted: w.quoted }, word: w };
    if (has === 2) return { kind: 'option', val: c, name: `-${c}`, tok: optTok, arg: null, word: w };
    const arg = this.words[this.index];
    if (!arg) return { kind: 'missing', tok: optTok, name: `-${c}` };
    this.index++;
    return { kind: 'option', val: c, name: `-${c}`, tok: optTok, arg, word: arg };
  }
}
