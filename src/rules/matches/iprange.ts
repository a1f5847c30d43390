/** -m iprange: libxt_iprange.c (--src-range / --dst-range FROM[-TO]), xt_iprange.c revision 1. */
import type { CompiledMatch, Family, MatchModule, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { cmpAddr, numericToIp4, parseIp6 } from '../addr';
import { addrToString } from '../../packet/format';

export interface Range {
  family: 4 | 6;
  min: number[];
  max: number[];
}

export interface IprangeState {
  src: Range | null;
  srcInv: boolean;
  dst: Range | null;
  dstInv: boolean;
}

/** xtables_numeric_to_ipaddr / _ip6addr: "198.18.0" is 198.18.0.0, parts in base 0. */
function parseOne(s: string): { family: 4 | 6; w: number[] } | null {
  const v4 = numericToIp4(s, false);
  if (v4 >= 0) return { family: 4, w: [v4, 0, 0, 0] };
  const v6 = parseIp6(s);
  return v6 ? { family: 6, w: v6 } : null;
}

function parseRange(tok: Token, env: ParseEnv): Range | null {
  const t = tok.text;
  const dash = t.indexOf('-');
  const a = parseOne(dash < 0 ? t : t.slice(0, dash));
  const b = dash < 0 ? a : parseOne(t.slice(dash + 1));
  if (!a || !b) {
    env.error(tok, `bad address range "${t}"`);
    return null;
  }
  if (a.family !== b.family) {
    env.error(tok, `address range "${t}" mixes IPv4 and IPv6`);
    return null;
  }
  // a reversed range is accepted (the kernel only warns that it never matches), as in iptables
  return { family: a.family, min: a.w, max: b.w };
}

export const iprangeMatch: MatchModule<IprangeState> = {
  name: 'iprange',
  options: [
    { name: 'src-range', invertible: true, args: 1 },
    { name: 'dst-range', invertible: true, args: 1 },
  ],
  create: () => ({ src: null, srcInv: false, dst: null, dstInv: false }),
  parse(s, opt, args, inv, optTok, env) {
    const r = parseRange(args[0], env);
    if (!r) return;
    if (opt === 'src-range') {
      if (s.src) return env.error(optTok, '--src-range given twice');
      s.src = r;
      s.srcInv = inv;
    } else {
      if (s.dst) return env.error(optTok, '--dst-range given twice');
      s.dst = r;
      s.dstInv = inv;
    }
    if (s.src && s.dst && s.src.family !== s.dst.family) env.error(args[0], 'iprange mixes IPv4 and IPv6 ranges');
  },
  finalize(s, _rule, at, env) {
    if (!s.src && !s.dst) env.error(at, 'iprange match needs --src-range or --dst-range');
  },
  familyOf(s): Family {
    return s.src ? s.src.family : s.dst ? s.dst.family : 0;
  },
  save(s) {
    const out: string[] = [];
    const fmt = (r: Range) =>
      cmpAddr(r.min, r.max) === 0 ? addrToString(r.family, r.min) : `${addrToString(r.family, r.min)}-${addrToString(r.family, r.max)}`;
    if (s.src) out.push(...(s.srcInv ? ['!'] : []), '--src-range', fmt(s.src));
    if (s.dst) out.push(...(s.dstInv ? ['!'] : []), '--dst-range', fmt(s.dst));
    return out;
  },
  compile(s) {
    return new IprangeMatch(s);
  },
};

/** Unsigned word-wise compare of a packet address with a bound (no allocation). */
function cmpWords(a: Uint32Array, b: Uint32Array, n: number): number {
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

class IprangeMatch implements CompiledMatch {
  private readonly words: number;
  private readonly hasSrc: boolean;
  private readonly hasDst: boolean;
  private readonly srcMin = new Uint32Array(4);
  private readonly srcMax = new Uint32Array(4);
  private readonly dstMin = new Uint32Array(4);
  private readonly dstMax = new Uint32Array(4);
  private readonly srcInv: boolean;
  private readonly dstInv: boolean;
  constructor(s: IprangeState) {
    this.words = (s.src ?? s.dst)!.family === 4 ? 1 : 4;
    this.hasSrc = s.src !== null;
    this.hasDst = s.dst !== null;
    if (s.src) {
      this.srcMin.set(s.src.min);
      this.srcMax.set(s.src.max);
    }
    if (s.dst) {
      this.dstMin.set(s.dst.min);
      this.dstMax.set(s.dst.max);
    }
    this.srcInv = s.srcInv;
    this.dstInv = s.dstInv;
  }
  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    const n = this.words;
    if (this.hasSrc) {
      const out = cmpWords(v.src, this.srcMin, n) < 0 || cmpWords(v.src, this.srcMax, n) > 0;
      if (out !== this.srcInv) return false;
    }
    if (this.hasDst) {
      const out = cmpWords(v.dst, this.dstMin, n) < 0 || cmpWords(v.dst, this.dstMax, n) > 0;
      if (out !== this.dstInv) return false;
    }
    return true;
  }
}
