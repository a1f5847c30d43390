/**
 * -m string: libxt_string.c revision 1 (--string / --hex-string PATTERN, invertible; --algo
 * bm|kmp; --from, --to; --icase) and xt_string.c string_mt: skb_find_text() over the packet
 * from its IP header, bytes [--from, --to), the whole pattern inside that range; --icase folds
 * ASCII letters as the textsearch algorithms do. Boyer-Moore and KMP find the same matches in
 * a linear buffer, which is what the queue delivers; the kernel's bm can miss a match that
 * spans two pages of a non-linear (GRO) packet, nfqwall does not.
 */
import type { CompiledMatch, MatchModule, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';

const XT_STRING_MAX_PATTERN_SIZE = 128;

export interface StringState {
  pattern: number[] | null;
  inv: boolean;
  algo: string;
  from: number;
  to: number;
  icase: boolean;
}

/** parse_hex_string: literal characters, `|41 42|` hex bytes, `\` escapes the next character. */
function parseHex(tok: Token, env: ParseEnv): number[] | null {
  const s = tok.text;
  const out: number[] = [];
  let hex = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '|') {
      hex = !hex;
      continue;
    }
    if (hex) {
      if (c === ' ') continue;
      const pair = s.slice(i, i + 2);
      if (!/^[0-9a-f]{2}$/i.test(pair)) {
        env.error(tok, `bad hex string "${s}" (invalid hex char at ${i})`);
        return null;
      }
      out.push(parseInt(pair, 16));
      i++;
      continue;
    }
    if (c === '\\' && i + 1 < s.length) i++;
    out.push(s.charCodeAt(i) & 0xff);
  }
  if (hex) {
    env.error(tok, `bad hex string "${s}" (unterminated |)`);
    return null;
  }
  return out;
}

const isPrint = (b: number) => b >= 0x20 && b < 0x7f;

export const stringMatch: MatchModule<StringState> = {
  name: 'string',
  options: [
    { name: 'string', invertible: true, args: 1 },
    { name: 'hex-string', invertible: true, args: 1 },
    { name: 'algo', invertible: false, args: 1 },
    { name: 'from', invertible: false, args: 1 },
    { name: 'to', invertible: false, args: 1 },
    { name: 'icase', invertible: false, args: 0 },
  ],
  create: () => ({ pattern: null, inv: false, algo: '', from: 0, to: 65535, icase: false }),
  parse(s, opt, args, inv, optTok, env) {
    const a = args[0];
    switch (opt) {
      case 'string':
      case 'hex-string': {
        if (s.pattern) return env.error(optTok, 'only one --string or --hex-string is allowed');
        const p = opt === 'string' ? Array.from(Buffer.from(a.text, 'latin1')) : parseHex(a, env);
        if (!p) return;
        if (p.length === 0 || p.length > XT_STRING_MAX_PATTERN_SIZE)
          return env.error(a, `bad pattern length ${p.length} (1 to ${XT_STRING_MAX_PATTERN_SIZE} bytes)`);
        s.pattern = p;
        s.inv = inv;
        return;
      }
      case 'algo':
        if (a.text !== 'bm' && a.text !== 'kmp') return env.error(a, `bad --algo "${a.text}" (bm or kmp)`);
        s.algo = a.text;
        return;
      case 'from':
      case 'to': {
        if (!/^[0-9]+$/.test(a.text) || Number(a.text) > 65535) return env.error(a, `bad value for option "--${opt}", or out of range (0-65535)`);
        if (opt === 'from') s.from = Number(a.text);
        else s.to = Number(a.text);
        return;
      }
      default:
        s.icase = true;
    }
  },
  finalize(s, _rule, at, env) {
    if (!s.pattern) return env.error(at, 'string match needs --string or --hex-string');
    if (!s.algo) return env.error(at, 'string match needs --algo bm or --algo kmp');
    if (s.from > s.to) env.error(at, `string match: --from ${s.from} is after --to ${s.to}`);
  },
  familyOf: () => 0,
  save(s) {
    const p = s.pattern!;
    const out: string[] = [];
    if (s.inv) out.push('!');
    if (p.every(isPrint)) out.push('--string', '"' + String.fromCharCode(...p).replace(/["\\]/g, (c) => '\\' + c) + '"');
    else out.push('--hex-string', `"|${p.map((b) => b.toString(16).padStart(2, '0')).join('')}|"`);
    out.push('--algo', s.algo);
    if (s.from !== 0) out.push('--from', String(s.from));
    if (s.to !== 65535) out.push('--to', String(s.to));
    if (s.icase) out.push('--icase');
    return out;
  },
  compile(s) {
    return new StringMatch(s);
  },
};

const fold = (b: number) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b);

class StringMatch implements CompiledMatch {
  private readonly pat: Uint8Array;
  private readonly inv: boolean;
  private readonly from: number;
  private readonly to: number;
  private readonly icase: boolean;
  constructor(s: StringState) {
    this.icase = s.icase;
    this.pat = Uint8Array.from(s.icase ? s.pattern!.map(fold) : s.pattern!);
    this.inv = s.inv;
    this.from = s.from;
    this.to = s.to;
  }
  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    const buf = v.buf;
    const base = v.off;
    const end = Math.min(this.to, v.len); // the bytes the queue delivered
    const p = this.pat;
    const n = p.length;
    let found = false;
    for (let i = this.from; i + n <= end && !found; i++) {
      let j = 0;
      if (this.icase) while (j < n && fold(buf[base + i + j]) === p[j]) j++;
      else while (j < n && buf[base + i + j] === p[j]) j++;
      found = j === n;
    }
    return found !== this.inv;
  }
}
