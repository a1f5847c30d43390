/**
 * nft's JSON values of one field type (libnftables-json(5) "immediate", "prefix", "range",
 * "set", named set "@NAME") turned into sorted disjoint [lo, hi] word ranges.
 */
import { parseIp4, parseIp6 } from '../addr';
import { protocolNumber } from '../protocols';
import type { LookupRanges } from './lookup';
import { isObject, kindOf, NftError } from './path';

/** How the values of a field are written. */
export type ValueKind = 'addr4' | 'addr6' | 'port' | 'proto' | 'icmp' | 'icmp6' | 'tcpflags' | 'mark' | 'ifindex' | 'helper' | 'icmpcode' | 'icmp6code';

export const ICMP_TYPES: Record<string, number> = {
  'echo-reply': 0,
  'destination-unreachable': 3,
  'source-quench': 4,
  redirect: 5,
  'echo-request': 8,
  'router-advertisement': 9,
  'router-solicitation': 10,
  'time-exceeded': 11,
  'parameter-problem': 12,
  'timestamp-request': 13,
  'timestamp-reply': 14,
  'info-request': 15,
  'info-reply': 16,
  'address-mask-request': 17,
  'address-mask-reply': 18,
};

export const ICMPV6_TYPES: Record<string, number> = {
  'destination-unreachable': 1,
  'packet-too-big': 2,
  'time-exceeded': 3,
  'parameter-problem': 4,
  'echo-request': 128,
  'echo-reply': 129,
  'mld-listener-query': 130,
  'mld-listener-report': 131,
  'mld-listener-done': 132,
  'mld-listener-reduction': 132,
  'nd-router-solicit': 133,
  'nd-router-advert': 134,
  'nd-neighbor-solicit': 135,
  'nd-neighbor-advert': 136,
  'nd-redirect': 137,
  'router-renumbering': 138,
  'ind-neighbor-solicit': 141,
  'ind-neighbor-advert': 142,
  'mld2-listener-report': 143,
};

/** nft's icmp_code and icmpv6_code names */
export const ICMP_CODES: Record<string, number> = {
  'net-unreachable': 0,
  'host-unreachable': 1,
  'prot-unreachable': 2,
  'port-unreachable': 3,
  'frag-needed': 4,
  'net-prohibited': 9,
  'host-prohibited': 10,
  'admin-prohibited': 13,
};
export const ICMPV6_CODES: Record<string, number> = {
  'no-route': 0,
  'admin-prohibited': 1,
  'addr-unreachable': 3,
  'port-unreachable': 4,
  'policy-fail': 5,
  'reject-route': 6,
};

export const TCP_FLAGS: Record<string, number> = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ecn: 0x40, cwr: 0x80 };

export type Range = [number[], number[]];

/** Named sets of a table, for "@NAME" references: their element lists, as nft wrote them. */
export interface SetDirectory {
  get(name: string): NamedSetRef | undefined;
}

export interface NamedSetRef {
  readonly elems: unknown[];
  readonly path: string;
  readonly type: unknown;
  /** a map's data type, undefined for a set */
  readonly map: unknown;
  readonly kind: ValueKind | null;
  readonly live: LookupRanges;
}

const MAX: Record<ValueKind, number> = {
  addr4: 0xffffffff,
  addr6: 0,
  port: 0xffff,
  proto: 0xff,
  icmp: 0xff,
  icmp6: 0xff,
  tcpflags: 0xff,
  mark: 0xffffffff,
  ifindex: 0xffffffff,
  helper: 0xffffffff,
  icmpcode: 0xff,
  icmp6code: 0xff,
};

/** One scalar value (a number, a name, an address). */
export function scalar(kind: ValueKind, v: unknown, path: string): number[] {
  const bad = (why: string): never => {
    throw new NftError(path, `${why}: ${JSON.stringify(v)}`);
  };
  if (kind === 'addr4') {
    const a = typeof v === 'string' ? parseIp4(v) : -1;
    return a >= 0 ? [a >>> 0] : bad('not an IPv4 address');
  }
  if (kind === 'addr6') {
    const a = typeof v === 'string' ? parseIp6(v) : null;
    return a ? a.map((w) => w >>> 0) : bad('not an IPv6 address');
  }
  if (kind === 'tcpflags') {
    if (typeof v === 'string' && v in TCP_FLAGS) return [TCP_FLAGS[v]];
    if (Array.isArray(v)) return [v.reduce((acc: number, x, i) => acc | scalar(kind, x, `${path}[${i}]`)[0], 0)];
    if (isObject(v) && kindOf(v) === '|' && Array.isArray(v['|'])) return scalar(kind, v['|'], `${path}["|"]`);
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX[kind]) return [v];
  if (typeof v === 'string') {
    if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(v)) return scalar(kind, Number(v), path);
    if (kind === 'proto') {
      const p = protocolNumber(v);
      if (p >= 0) return [p];
    }
    if (kind === 'icmp' && v in ICMP_TYPES) return [ICMP_TYPES[v]];
    if (kind === 'icmp6' && v in ICMPV6_TYPES) return [ICMPV6_TYPES[v]];
    if (kind === 'icmpcode' && v in ICMP_CODES) return [ICMP_CODES[v]];
    if (kind === 'icmp6code' && v in ICMPV6_CODES) return [ICMPV6_CODES[v]];
  }
  return bad(
    `not a ${kind === 'port' ? 'port' : kind === 'proto' ? 'protocol' : kind === 'mark' ? 'mark' : kind.endsWith('code') ? 'code' : kind.startsWith('icmp') ? 'type' : 'value'} nfqwall knows`,
  );
}

function prefixRange(kind: ValueKind, p: Record<string, unknown>, path: string): Range {
  if (kind !== 'addr4' && kind !== 'addr6') throw new NftError(path, 'a prefix of a field that is not an address');
  const words = scalar(kind, p.addr, `${path}.addr`);
  const bits = words.length * 32;
  const len = p.len;
  if (typeof len !== 'number' || !Number.isInteger(len) || len < 0 || len > bits) throw new NftError(`${path}.len`, `bad prefix length ${JSON.stringify(len)}`);
  const lo: number[] = [];
  const hi: number[] = [];
  words.forEach((w, i) => {
    const keep = Math.max(0, Math.min(32, len - i * 32));
    const mask = keep === 0 ? 0 : keep === 32 ? 0xffffffff : (0xffffffff << (32 - keep)) >>> 0;
    lo.push((w & mask) >>> 0);
    hi.push((w | ~mask) >>> 0);
  });
  return [lo, hi];
}

function cmpWords(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** One element: a value, a prefix, a range, or { elem: { val } } (a set element with attributes). */
export function element(kind: ValueKind, v: unknown, path: string): Range {
  const k = kindOf(v);
  if (k === 'prefix' && isObject((v as Record<string, unknown>).prefix))
    return prefixRange(kind, (v as { prefix: Record<string, unknown> }).prefix, `${path}.prefix`);
  if (k === 'range') {
    const r = (v as { range: unknown }).range;
    if (!Array.isArray(r) || r.length !== 2) throw new NftError(`${path}.range`, 'a range is [LOW, HIGH]');
    const lo = scalar(kind, r[0], `${path}.range[0]`);
    const hi = scalar(kind, r[1], `${path}.range[1]`);
    if (cmpWords(lo, hi) > 0) throw new NftError(`${path}.range`, 'range out of order');
    return [lo, hi];
  }
  if (k === 'elem' && isObject((v as { elem: unknown }).elem)) return element(kind, (v as { elem: { val: unknown } }).elem.val, `${path}.elem.val`);
  if (isObject(v)) throw new NftError(path, `unsupported value "${k ?? JSON.stringify(v)}"`);
  const w = scalar(kind, v, path);
  return [w, w];
}

/** The right-hand side of a match: one element, an anonymous set { set: [...] } or "@NAME". */
export function ranges(kind: ValueKind, right: unknown, path: string, sets: SetDirectory): Range[] {
  let list: [unknown, string][];
  if (typeof right === 'string' && right.startsWith('@')) {
    const named = sets.get(right.slice(1));
    if (!named) throw new NftError(path, `no set "${right.slice(1)}" in this table`);
    if (named.map !== undefined) throw new NftError(path, `"${right.slice(1)}" is a map, not a set`);
    if (Array.isArray(named.type)) throw new NftError(path, `set "${right.slice(1)}" holds concatenations: the rule's key is one field`);
    list = named.elems.map((e, i) => [e, `${named.path}.elem[${i}]`]);
  } else if (kindOf(right) === 'set') {
    const s = (right as { set: unknown }).set;
    if (!Array.isArray(s)) throw new NftError(`${path}.set`, 'a set is a list of elements');
    list = s.map((e, i) => [e, `${path}.set[${i}]`]);
  } else list = [[right, path]];
  return mergeRanges(list.map(([e, p]) => element(kind, e, p)));
}

/** Sorted, with overlaps and neighbours merged, so that a lookup's ranges are disjoint. */
export function mergeRanges(list: Range[]): Range[] {
  const out = list.slice().sort((a, b) => cmpWords(a[0], b[0]));
  const merged: Range[] = [];
  for (const r of out) {
    const last = merged[merged.length - 1];
    if (last && cmpWords(r[0], last[1]) <= 0) {
      if (cmpWords(r[1], last[1]) > 0) last[1] = r[1];
    } else merged.push([r[0].slice(), r[1].slice()]);
  }
  return merged;
}

/** The ranges of the named set "@NAME" names, when it is one: its lookups follow its elements as they change. */
export function liveRanges(right: unknown, sets: SetDirectory, kind: ValueKind, path: string): LookupRanges | undefined {
  const named = typeof right === 'string' && right.startsWith('@') ? sets.get(right.slice(1)) : undefined;
  if (!named || named.kind === null) return undefined; // a type nfqwall does not change: the ranges read at load
  if (named.kind !== kind) throw new NftError(path, `set "${(right as string).slice(1)}" is of type ${JSON.stringify(named.type)}, not of this field's`);
  return named.live;
}

/** Whether the right-hand side is one plain value (no set, range or prefix). */
export function isSingle(right: unknown): boolean {
  return typeof right === 'number' || (typeof right === 'string' && !right.startsWith('@'));
}
