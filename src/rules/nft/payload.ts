/**
 * `match` on a payload field ({ payload: { protocol, field } }): addresses and protocol
 * as the rule's base fields where the iptables form says the same (-s/-d/-p), every other
 * test as a lookup with nft_payload's load semantics.
 */
import { prefixMask } from '../addr';
import type { AddrSpec } from '../types';
import { addLookup, hintProto, requireFamily, type RuleBuild } from './build';
import type { LookupField } from './lookup';
import { opRanges, type MatchOp } from './ops';
import { NftError } from './path';
import { liveRanges, type Range, type ValueKind } from './values';

export interface FieldInfo {
  lookup: LookupField;
  kind: ValueKind;
  max: number;
  family?: 4 | 6;
  proto?: number;
  /** a bit field: the `in` operator tests for any of the bits */
  flags?: boolean;
  /** a protocol field that is not the rule's protocol (-p: the protocol after IPv6 extension headers) */
  header?: boolean;
}

export const FIELDS: Record<string, FieldInfo> = {
  'ip saddr': { lookup: 'ip saddr', kind: 'addr4', max: 0xffffffff, family: 4 },
  'ip daddr': { lookup: 'ip daddr', kind: 'addr4', max: 0xffffffff, family: 4 },
  'ip protocol': { lookup: 'ip protocol', kind: 'proto', max: 0xff, family: 4 },
  'meta l4proto': { lookup: 'meta l4proto', kind: 'proto', max: 0xff },
  'ip6 nexthdr': { lookup: 'ip6 nexthdr', kind: 'proto', max: 0xff, family: 6, header: true },
  'ip6 saddr': { lookup: 'ip6 saddr', kind: 'addr6', max: 0, family: 6 },
  'ip6 daddr': { lookup: 'ip6 daddr', kind: 'addr6', max: 0, family: 6 },
  'tcp sport': { lookup: 'tcp sport', kind: 'port', max: 0xffff, proto: 6 },
  'tcp dport': { lookup: 'tcp dport', kind: 'port', max: 0xffff, proto: 6 },
  'udp sport': { lookup: 'udp sport', kind: 'port', max: 0xffff, proto: 17 },
  'udp dport': { lookup: 'udp dport', kind: 'port', max: 0xffff, proto: 17 },
  'th sport': { lookup: 'th sport', kind: 'port', max: 0xffff },
  'th dport': { lookup: 'th dport', kind: 'port', max: 0xffff },
  'tcp flags': { lookup: 'tcp flags', kind: 'tcpflags', max: 0xff, proto: 6, flags: true },
  'icmp type': { lookup: 'icmp type', kind: 'icmp', max: 0xff, family: 4, proto: 1 },
  'icmpv6 type': { lookup: 'icmpv6 type', kind: 'icmp6', max: 0xff, family: 6, proto: 58 },
  'icmp code': { lookup: 'icmp code', kind: 'icmpcode', max: 0xff, family: 4, proto: 1 },
  'icmpv6 code': { lookup: 'icmpv6 code', kind: 'icmp6code', max: 0xff, family: 6, proto: 58 },
  'meta iif': { lookup: 'meta iif', kind: 'ifindex', max: 0xffffffff },
  'meta oif': { lookup: 'meta oif', kind: 'ifindex', max: 0xffffffff },
  'meta mark': { lookup: 'meta mark', kind: 'mark', max: 0xffffffff },
  'ct mark': { lookup: 'ct mark', kind: 'mark', max: 0xffffffff },
  'ct helper': { lookup: 'ct helper', kind: 'helper', max: 0xffffffff },
};

/** A prefix test as -s / -d say it: one prefix (or address) of the field's family. */
function asAddrSpec(r: Range[], family: 4 | 6): AddrSpec | null {
  if (r.length !== 1) return null;
  const [lo, hi] = r[0];
  for (let p = lo.length * 32; p >= 0; p--) {
    const mask = prefixMask(family, p);
    if (lo.every((w, i) => (w & mask[i]) >>> 0 === w && (w | ~mask[i]) >>> 0 === hi[i])) return { family, addr: [...lo, 0, 0, 0].slice(0, 4), mask, prefix: p };
  }
  return null;
}

export function payloadMatch(b: RuleBuild, op: MatchOp, left: Record<string, unknown>, mask: number | null, right: unknown, path: string): void {
  fieldMatch(b, `${String(left.protocol)} ${String(left.field)}`, op, mask, right, path);
}

/** A test of one field by name ("tcp dport", "meta l4proto"). */
export function fieldMatch(b: RuleBuild, name: string, op: MatchOp, mask: number | null, right: unknown, path: string): void {
  const f = FIELDS[name];
  if (!f) throw new NftError(`${path}.left`, `unsupported payload field "${name}"`);
  if (mask !== null && f.kind !== 'tcpflags') throw new NftError(`${path}.left`, `a mask on ${name} is not supported`);
  if (f.family) requireFamily(b, f.family, path);
  if (f.proto) hintProto(b, f.proto);
  const text = `${name} ${op} ${JSON.stringify(right)}`;
  if (f.flags && op === 'in') {
    const { ranges } = opRanges(f.kind, '==', right, `${path}.right`, b.sets, f.max);
    if (ranges.length !== 1 || ranges[0][0][0] !== ranges[0][1][0]) throw new NftError(`${path}.right`, `"in" on ${name} takes one value`);
    addLookup(b, { field: f.lookup, op: 'bits', bits: ranges[0][0][0], mask: mask ?? 0xffffffff, text });
    return;
  }
  const { ranges, inv } = opRanges(f.kind, op, right, `${path}.right`, b.sets, f.max);
  const live = liveRanges(right, b.sets, f.kind, `${path}.right`);
  if (live) {
    // a named set: a lookup that follows the set's elements, never a base field fixed at load
    addLookup(b, { field: f.lookup, ranges, inv, mask: mask ?? 0xffffffff, text, live });
    return;
  }
  const r = b.rule;
  if (!b.impure && (f.kind === 'addr4' || f.kind === 'addr6')) {
    const spec = asAddrSpec(ranges, f.family!);
    const src = name.endsWith('saddr');
    if (spec && (src ? r.src : r.dst) === null) {
      if (src) [r.src, r.srcInv] = [spec, inv];
      else [r.dst, r.dstInv] = [spec, inv];
      return;
    }
  }
  if (!b.impure && f.kind === 'proto' && !f.header && ranges.length === 1 && ranges[0][0][0] === ranges[0][1][0] && !r.protoInv) {
    const v = ranges[0][0][0];
    if (r.proto === 0) {
      [r.proto, r.protoInv] = [v, inv];
      return;
    }
    if (r.proto === v && !inv) return;
  }
  addLookup(b, { field: f.lookup, ranges, inv, mask: mask ?? 0xffffffff, text });
}
