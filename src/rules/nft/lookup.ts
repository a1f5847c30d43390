/**
 * An nftables comparison of one packet field against values, ranges or a set (nft_cmp,
 * nft_range, nft_lookup, nft_bitwise before them), where no iptables match has the same
 * semantics: the field is loaded as nft_payload / nft_meta / nft_ct load it, and when the
 * load fails (no such header, a fragment, no conntrack) the rule does not match, whatever
 * the operator (NFT_BREAK), without iptables' hotdrop.
 */
import type { PacketContext } from '../../conntrack/context';
import type { CompiledMatch, MatchModule } from '../types';
import { l4HeaderReadable } from '../matches/util';

/** The fields a lookup loads, with the width of their value in 32-bit words. */
export const LOOKUP_FIELDS = {
  'ip saddr': 1,
  'ip daddr': 1,
  'ip6 saddr': 4,
  'ip6 daddr': 4,
  'ip protocol': 1,
  'ip6 nexthdr': 1,
  'meta l4proto': 1,
  'tcp sport': 1,
  'tcp dport': 1,
  'udp sport': 1,
  'udp dport': 1,
  'th sport': 1,
  'th dport': 1,
  'tcp flags': 1,
  'icmp type': 1,
  'icmpv6 type': 1,
  'icmp code': 1,
  'icmpv6 code': 1,
  'meta mark': 1,
  'ct mark': 1,
  'meta iif': 1,
  'meta oif': 1,
  'ct helper': 1,
} as const;

export type LookupField = keyof typeof LOOKUP_FIELDS;

export interface LookupState {
  field: LookupField;
  /** nft_bitwise before the comparison (0xffffffff: none; one-word fields only) */
  mask: number;
  /**
   * 'in': the value lies in one of the ranges (==, a set, a range, a prefix);
   * 'bits': value & bits is not zero (the `in` operator of flag fields: tcp flags syn).
   */
  op: 'in' | 'bits';
  /** [lo, hi] inclusive, each `words` 32-bit words (big-endian word order), sorted, disjoint */
  ranges: [number[], number[]][];
  bits: number;
  inv: boolean;
  /** the nft expression, for messages and `rules -L` */
  text: string;
  /** a named set's ranges, which change at run time (then `ranges` is what they were at load) */
  live?: LookupRanges;
}

/**
 * The ranges one lookup reads, as typed arrays replaced whole when a named set changes (so
 * a packet sees the old or the new elements, and reading them allocates nothing).
 */
export class LookupRanges {
  /** one-word fields: lo[i], hi[i] */
  lo = new Float64Array(0);
  hi = new Float64Array(0);
  /** four-word fields: lo4[4i..4i+3], hi4[4i..4i+3] */
  lo4 = new Uint32Array(0);
  hi4 = new Uint32Array(0);
  constructor(readonly words: 1 | 4) {}

  set(ranges: [number[], number[]][]): this {
    if (this.words === 1) {
      this.lo = Float64Array.from(ranges.map((r) => r[0][0]));
      this.hi = Float64Array.from(ranges.map((r) => r[1][0]));
    } else {
      this.lo4 = Uint32Array.from(ranges.flatMap((r) => r[0]));
      this.hi4 = Uint32Array.from(ranges.flatMap((r) => r[1]));
    }
    return this;
  }
}

const F_SADDR4 = 1;
const F_DADDR4 = 2;
const F_SADDR6 = 3;
const F_DADDR6 = 4;
const F_IPPROTO = 5;
const F_L4PROTO = 6;
const F_TCP_SPORT = 7;
const F_TCP_DPORT = 8;
const F_UDP_SPORT = 9;
const F_UDP_DPORT = 10;
const F_TH_SPORT = 11;
const F_TH_DPORT = 12;
const F_TCP_FLAGS = 13;
const F_ICMP_TYPE = 14;
const F_ICMP6_TYPE = 15;
const F_MARK = 16;
const F_CTMARK = 17;
const F_NEXTHDR = 18;
const F_IIF = 19;
const F_OIF = 20;
const F_CTHELPER = 21;
const F_ICMP_CODE = 22;
const F_ICMP6_CODE = 23;

const FIELD_IDS: Record<LookupField, number> = {
  'ip saddr': F_SADDR4,
  'ip daddr': F_DADDR4,
  'ip6 saddr': F_SADDR6,
  'ip6 daddr': F_DADDR6,
  'ip protocol': F_IPPROTO,
  'meta l4proto': F_L4PROTO,
  'tcp sport': F_TCP_SPORT,
  'tcp dport': F_TCP_DPORT,
  'udp sport': F_UDP_SPORT,
  'udp dport': F_UDP_DPORT,
  'th sport': F_TH_SPORT,
  'th dport': F_TH_DPORT,
  'tcp flags': F_TCP_FLAGS,
  'icmp type': F_ICMP_TYPE,
  'icmpv6 type': F_ICMP6_TYPE,
  'meta mark': F_MARK,
  'ct mark': F_CTMARK,
  'ip6 nexthdr': F_NEXTHDR,
  'meta iif': F_IIF,
  'meta oif': F_OIF,
  'ct helper': F_CTHELPER,
  'icmp code': F_ICMP_CODE,
  'icmpv6 code': F_ICMP6_CODE,
};

/** Whether a transport header load at this offset and length succeeds (nft_payload: no fragment, header present). */
function l4Loadable(ctx: PacketContext, bytes: number): boolean {
  const v = ctx.view;
  return v.fragOffset === 0 && v.l4len >= bytes && l4HeaderReadable(v);
}

/** Whether the last load1 failed (a flag, not a return value: see load1). */
let loadFailed = false;

/**
 * The one-word value of a field as a signed 32-bit integer (loadFailed says whether the load
 * failed): a value above 2^31 returned as a number would be a heap number, one allocation
 * per packet.
 */
function load1(f: number, ctx: PacketContext): number {
  const v = ctx.view;
  loadFailed = false;
  switch (f) {
    case F_SADDR4:
      return ctx.family === 4 ? v.src[0] | 0 : fail();
    case F_DADDR4:
      return ctx.family === 4 ? v.dst[0] | 0 : fail();
    case F_IPPROTO:
      return ctx.family === 4 ? v.proto : fail();
    case F_L4PROTO:
      return v.proto;
    case F_NEXTHDR:
      // the fixed header's next header field (network header + 6), not the protocol after extension headers
      return ctx.family === 6 ? v.buf[v.off + 6] : fail();
    case F_TCP_SPORT:
      return v.proto === 6 && l4Loadable(ctx, 2) ? v.sport : fail();
    case F_TCP_DPORT:
      return v.proto === 6 && l4Loadable(ctx, 4) ? v.dport : fail();
    case F_UDP_SPORT:
      return v.proto === 17 && l4Loadable(ctx, 2) ? v.sport : fail();
    case F_UDP_DPORT:
      return v.proto === 17 && l4Loadable(ctx, 4) ? v.dport : fail();
    case F_TH_SPORT:
      return l4Loadable(ctx, 2) ? (v.buf[v.l4off] << 8) | v.buf[v.l4off + 1] : fail();
    case F_TH_DPORT:
      return l4Loadable(ctx, 4) ? (v.buf[v.l4off + 2] << 8) | v.buf[v.l4off + 3] : fail();
    case F_TCP_FLAGS:
      return v.proto === 6 && l4Loadable(ctx, 14) ? v.tcpFlags : fail();
    case F_ICMP_TYPE:
      return ctx.family === 4 && v.proto === 1 && l4Loadable(ctx, 1) ? v.icmpType : fail();
    case F_ICMP6_TYPE:
      return ctx.family === 6 && v.proto === 58 && l4Loadable(ctx, 1) ? v.icmpType : fail();
    case F_ICMP_CODE:
      return ctx.family === 4 && v.proto === 1 && l4Loadable(ctx, 2) ? v.icmpCode : fail();
    case F_ICMP6_CODE:
      return ctx.family === 6 && v.proto === 58 && l4Loadable(ctx, 2) ? v.icmpCode : fail();
    case F_MARK:
      return ctx.mark | 0;
    case F_CTMARK:
      return ctx.entry >= 0 ? ctx.ctmark | 0 : fail();
    // nft_meta_store_ifindex: 0 without a device (no input device at output)
    case F_IIF:
      return ctx.indev | 0;
    case F_OIF:
      return ctx.outdev | 0;
    case F_CTHELPER:
      return ctHelper(ctx);
  }
  return fail();
}

/** nft_ct_get_eval NFT_CT_HELPER: the helper of the packet's own connection; no connection or no helper fails the load */
function ctHelper(ctx: PacketContext): number {
  const h = ctx.entry >= 0 && ctx.conntrack !== null ? ctx.conntrack.helperOf(ctx.entry) : 0;
  return h !== 0 ? h : fail();
}

function fail(): number {
  loadFailed = true;
  return 0;
}

/** The family a field exists in only (0: either). */
export const fieldFamily = (f: LookupField): 0 | 4 | 6 =>
  f.startsWith('ip6 ') || f.startsWith('icmpv6 ') ? 6 : f.startsWith('ip ') || f.startsWith('icmp ') ? 4 : 0;

/** The id loadField takes for a field. */
export const fieldId = (f: LookupField): number => FIELD_IDS[f];

/**
 * A field's value as LOOKUP_FIELDS[field] words into out[at…] (a concatenation's register
 * row); false when the load fails (NFT_BREAK).
 */
export function loadField(f: number, ctx: PacketContext, out: Uint32Array, at: number): boolean {
  if (f === F_SADDR6 || f === F_DADDR6) {
    if (ctx.family !== 6) return false;
    const a = f === F_SADDR6 ? ctx.view.src : ctx.view.dst;
    for (let w = 0; w < 4; w++) out[at + w] = a[w];
    return true;
  }
  out[at] = load1(f, ctx);
  return !loadFailed;
}

class Lookup1 implements CompiledMatch {
  constructor(
    private readonly f: number,
    private readonly mask: number,
    private readonly bitTest: boolean,
    private readonly bits: number,
    private readonly inv: boolean,
    private readonly r: LookupRanges,
  ) {}
  match(ctx: PacketContext): boolean {
    const raw = load1(this.f, ctx);
    if (loadFailed) return false;
    const x = (raw & this.mask) >>> 0;
    if (this.bitTest) return ((x & this.bits) !== 0) !== this.inv;
    // binary search: the last range starting at or below x
    const lo = this.r.lo;
    const hi = this.r.hi;
    let a = 0;
    let b = lo.length - 1;
    while (a < b) {
      const m = (a + b + 1) >> 1;
      if (lo[m] <= x) a = m;
      else b = m - 1;
    }
    const hit = lo.length > 0 && lo[a] <= x && x <= hi[a];
    return hit !== this.inv;
  }
}

/** Four-word (IPv6 address) fields: a linear walk over the ranges, word by word. */
class Lookup4 implements CompiledMatch {
  constructor(
    private readonly src: boolean,
    private readonly inv: boolean,
    private readonly r: LookupRanges,
  ) {}
  match(ctx: PacketContext): boolean {
    if (ctx.family !== 6) return false;
    const a = this.src ? ctx.view.src : ctx.view.dst;
    const lo = this.r.lo4;
    const hi = this.r.hi4;
    const n = lo.length;
    for (let i = 0; i < n; i += 4) {
      if (cmp4(a, lo, i) >= 0 && cmp4(a, hi, i) <= 0) return !this.inv;
    }
    return this.inv;
  }
}

function cmp4(a: Uint32Array, b: Uint32Array, at: number): number {
  for (let w = 0; w < 4; w++) {
    const x = a[w] >>> 0;
    const y = b[at + w];
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export const lookupMatch: MatchModule<LookupState> = {
  name: 'nft-lookup',
  options: [],
  create: () => ({ field: 'meta mark', mask: 0xffffffff, op: 'in', ranges: [], bits: 0, inv: false, text: '' }),
  parse() {},
  finalize() {},
  familyOf: (s) => fieldFamily(s.field),
  save: (s) => ['--nft', JSON.stringify(s.text)],
  compile(s) {
    const f = FIELD_IDS[s.field];
    const words = LOOKUP_FIELDS[s.field];
    const r = s.live ?? new LookupRanges(words).set(s.ranges);
    if (words === 4) return new Lookup4(f === F_SADDR6, s.inv, r);
    return new Lookup1(f, s.mask, s.op === 'bits', s.bits, s.inv, r);
  },
};
