/** The reject statement: -j REJECT with the ICMP / ICMPv6 type nft_reject sends per family. */
import type { ParsedTarget } from '../types';
import type { RejectState } from '../targets/REJECT';
import { iptablesTarget, requireFamily, type RuleBuild } from './build';
import { isObject, NftError } from './path';

/** nft's code names per reject type → the --reject-with names for IPv4 and IPv6 (null: that family is not sent to). */
const CODES: Record<string, Record<string, [string | null, string | null]>> = {
  icmp: {
    'net-unreachable': ['icmp-net-unreachable', null],
    'host-unreachable': ['icmp-host-unreachable', null],
    'prot-unreachable': ['icmp-proto-unreachable', null],
    'port-unreachable': ['icmp-port-unreachable', null],
    'net-prohibited': ['icmp-net-prohibited', null],
    'host-prohibited': ['icmp-host-prohibited', null],
    'admin-prohibited': ['icmp-admin-prohibited', null],
  },
  icmpv6: {
    'no-route': [null, 'icmp6-no-route'],
    'admin-prohibited': [null, 'icmp6-adm-prohibited'],
    'addr-unreachable': [null, 'icmp6-addr-unreachable'],
    'port-unreachable': [null, 'icmp6-port-unreachable'],
    'policy-fail': [null, 'icmp6-policy-fail'],
    'reject-route': [null, 'icmp6-reject-route'],
  },
  // nft_reject_icmp_code / nft_reject_icmpv6_code
  icmpx: {
    'port-unreachable': ['icmp-port-unreachable', 'icmp6-port-unreachable'],
    'admin-prohibited': ['icmp-admin-prohibited', 'icmp6-adm-prohibited'],
    'no-route': ['icmp-net-unreachable', 'icmp6-no-route'],
    'host-unreachable': ['icmp-host-unreachable', 'icmp6-addr-unreachable'],
  },
};

export function rejectTarget(b: RuleBuild, v: unknown, path: string): ParsedTarget {
  const o = v === null ? {} : v;
  if (!isObject(o)) throw new NftError(path, 'reject takes { type, expr }');
  const fam = b.rule.family;
  const type = typeof o.type === 'string' ? o.type : fam === 4 ? 'icmp' : fam === 6 ? 'icmpv6' : 'icmpx';
  if (type === 'tcp reset') return iptablesTarget(b, 'REJECT', [['reject-with', ['tcp-reset']]], `${path}.reject`);
  const code = typeof o.expr === 'string' ? o.expr : 'port-unreachable';
  const names = CODES[type]?.[code];
  if (!names) throw new NftError(`${path}.reject`, `unsupported reject ${type} ${code}`);
  const [n4, n6] = names;
  // reject with icmp / icmpv6 in an inet table: nft adds the meta nfproto dependency before the rule's tests
  if (!n6 || !n4) {
    if (b.impure) throw new NftError(`${path}.reject`, `reject with ${type} after a limit is not supported`);
    requireFamily(b, n4 ? 4 : 6, `${path}.reject`);
  }
  const t4 = n4 ? iptablesTarget(b, 'REJECT', [['reject-with', [n4]]], `${path}.reject`) : null;
  const t6 = n6 ? iptablesTarget(b, 'REJECT', [['reject-with', [n6]]], `${path}.reject`) : null;
  const t = (t4 ?? t6)!;
  const s = t.state as RejectState;
  s.v4 = t4 ? (t4.state as RejectState).v4 : -1;
  s.v6 = t6 ? (t6.state as RejectState).v6 : -1;
  return t;
}
