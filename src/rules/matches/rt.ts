/**
 * -m rt (ip6tables): libip6t_rt.c and ip6t_rt.c rt_mt6. The routing header is found as
 * ipv6_find_hdr(NEXTHDR_ROUTING) finds it: a walk over the extension headers the kernel knows
 * (hop-by-hop, routing, fragment, AH, destination options; no next header ends it), ended by
 * any other protocol or by a fragment with a non-zero offset (no routing header: no match);
 * a header that cannot be read hot-drops the packet, as does a routing header shorter than its
 * 4 fixed bytes. A header longer than the rest of the packet does not match. --rt-type,
 * --rt-segsleft N[:M], --rt-len (each with `!`); the type 0 address options (--rt-0-res,
 * --rt-0-addrs, --rt-0-not-strict) are refused. The walk reads the bytes the queue copied.
 */
import type { CompiledMatch, MatchModule, MatchRuntime, Token, ParseEnv } from '../types';
import type { PacketContext } from '../../conntrack/context';

const NEXTHDR_HOP = 0;
const NEXTHDR_ROUTING = 43;
const NEXTHDR_FRAGMENT = 44;
const NEXTHDR_AUTH = 51;
const NEXTHDR_DEST = 60;
const U32_MAX = 0xffffffff;

export interface RtState {
  type: number | null;
  typeInv: boolean;
  segsMin: number;
  segsMax: number;
  segsInv: boolean;
  len: number | null;
  lenInv: boolean;
}

function u32(tok: Token, opt: string, env: ParseEnv, max = U32_MAX): number | null {
  const v = /^(0x[0-9a-fA-F]+|[0-9]+)$/.test(tok.text) ? Number(tok.text) : NaN;
  if (!(v >= 0 && v <= max)) {
    env.error(tok, `rt: bad value for option "--${opt}", or out of range (0-${max}).`);
    return null;
  }
  return v;
}

export const rtMatch: MatchModule<RtState> = {
  name: 'rt',
  family: 6,
  options: [
    { name: 'rt-type', invertible: true, args: 1 },
    { name: 'rt-segsleft', invertible: true, args: 1 },
    { name: 'rt-len', invertible: true, args: 1 },
  ],
  unsupported: ['rt-0-res', 'rt-0-addrs', 'rt-0-not-strict'],
  create: () => ({ type: null, typeInv: false, segsMin: 0, segsMax: U32_MAX, segsInv: false, len: null, lenInv: false }),
  parse(s, opt, args, inv, _optTok, env) {
    const tok = args[0];
    if (opt === 'rt-type') {
      const v = u32(tok, opt, env, 255);
      if (v === null) return;
      s.type = v;
      s.typeInv = inv;
    } else if (opt === 'rt-len') {
      const v = u32(tok, opt, env);
      if (v === null) return;
      s.len = v;
      s.lenInv = inv;
    } else {
      const parts = tok.text.split(':');
      if (parts.length > 2) return env.error(tok, `rt: bad value for option "--rt-segsleft", or out of range (0-${U32_MAX}).`);
      const lo = parts[0] === '' ? 0 : u32({ ...tok, text: parts[0] }, opt, env);
      const hi = parts.length === 1 ? lo : parts[1] === '' ? U32_MAX : u32({ ...tok, text: parts[1] }, opt, env);
      if (lo === null || hi === null) return;
      s.segsMin = lo;
      s.segsMax = hi;
      s.segsInv = inv;
    }
  },
  finalize() {},
  familyOf: () => 6,
  save(s) {
    const out: string[] = [];
    if (s.type !== null) out.push(...(s.typeInv ? ['!'] : []), '--rt-type', String(s.type));
    if (!(s.segsMin === 0 && s.segsMax === U32_MAX))
      out.push(...(s.segsInv ? ['!'] : []), '--rt-segsleft', s.segsMin === s.segsMax ? String(s.segsMin) : `${s.segsMin}:${s.segsMax}`);
    if (s.len !== null) out.push(...(s.lenInv ? ['!'] : []), '--rt-len', String(s.len));
    return out;
  },
  compile(s, env) {
    return new RtMatch(s, env.runtime);
  },
};

class RtMatch implements CompiledMatch {
  private readonly type: number;
  private readonly typeInv: boolean;
  private readonly segsMin: number;
  private readonly segsMax: number;
  private readonly segsInv: boolean;
  private readonly len: number;
  private readonly lenInv: boolean;
  constructor(
    s: RtState,
    private readonly rt: MatchRuntime,
  ) {
    this.type = s.type ?? -1;
    this.typeInv = s.typeInv;
    this.segsMin = s.segsMin;
    this.segsMax = s.segsMax;
    this.segsInv = s.segsInv;
    this.len = s.len ?? -1;
    this.lenInv = s.lenInv;
  }

  /** ipv6_find_hdr(skb, &ptr, NEXTHDR_ROUTING, NULL, NULL): the header's offset, -1 = -ENOENT, -2 = -EBADMSG */
  private findRoutingHeader(ctx: PacketContext): number {
    const v = ctx.view;
    const buf = v.buf;
    const end = v.off + Math.min(v.len, v.ipTotalLen);
    let start = v.off + 40;
    if (v.off + 7 > end) return -2;
    let nexthdr = buf[v.off + 6];
    for (;;) {
      if (nexthdr === NEXTHDR_ROUTING) return start + 4 <= end ? start : -2;
      if (!(nexthdr === NEXTHDR_HOP || nexthdr === NEXTHDR_FRAGMENT || nexthdr === NEXTHDR_AUTH || nexthdr === NEXTHDR_DEST)) return -1;
      if (start + 2 > end) return -2;
      let hdrlen: number;
      if (nexthdr === NEXTHDR_FRAGMENT) {
        if (start + 4 > end) return -2;
        if (((buf[start + 2] << 8) | buf[start + 3]) & ~7) return -1;
        hdrlen = 8;
      } else if (nexthdr === NEXTHDR_AUTH) hdrlen = (buf[start + 1] + 2) << 2;
      else hdrlen = (buf[start + 1] + 1) << 3;
      nexthdr = buf[start];
      start += hdrlen;
    }
  }

  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    if (v.ipVersion !== 6) return false;
    const ptr = this.findRoutingHeader(ctx);
    if (ptr < 0) {
      if (ptr === -2) this.rt.hotdrop = 1;
      return false;
    }
    const buf = v.buf;
    const hdrlen = (buf[ptr + 1] + 1) << 3;
    if (v.off + v.ipTotalLen - ptr < hdrlen) return false;
    const segs = buf[ptr + 3];
    if ((segs >= this.segsMin && segs <= this.segsMax) === this.segsInv) return false;
    if (this.len >= 0 && (this.len === hdrlen) === this.lenInv) return false;
    if (this.type >= 0 && (this.type === buf[ptr + 2]) === this.typeInv) return false;
    return true;
  }
}
