/**
 * The built-in part of every rule (struct ipt_ip / ip6t_ip6): -p, -s/-d, -i/-o.
 * Parsing helpers here; the per-packet checks are inlined in eval.ts.
 */
import { protocolNumber } from '../protocols';

/** Name iptables-save prints for a protocol number. */
const PROTO_SAVE: Record<number, string> = {
  1: 'icmp',
  2: 'igmp',
  6: 'tcp',
  17: 'udp',
  33: 'dccp',
  47: 'gre',
  50: 'esp',
  51: 'ah',
  58: 'ipv6-icmp',
  132: 'sctp',
  136: 'udplite',
};

/** Parses a -p argument (src/rules/protocols.ts): name or number 0..255. Returns -1 when unknown. */
export function parseProto(s: string): number {
  return protocolNumber(s.toLowerCase());
}

export function protoName(p: number): string {
  return PROTO_SAVE[p] ?? String(p);
}

/** Family a protocol implies (-p icmp is IPv4 only, -p ipv6-icmp IPv6 only). */
export function protoFamily(p: number): 0 | 4 | 6 {
  if (p === 1) return 4;
  if (p === 58) return 6;
  return 0;
}

export const IFNAMSIZ = 16;

/**
 * Validates an interface pattern (-i/-o) as xtables_parse_interface does: not empty, at most
 * 15 bytes; a trailing `+` makes it a prefix. Characters no device name has ('/', ' ', ':')
 * are allowed, as in iptables (which only warns): such a rule never matches.
 */
export function checkIface(s: string): string | null {
  if (s.length === 0) return 'empty interface name';
  if (Buffer.byteLength(s) >= IFNAMSIZ) return `interface name "${s}" is longer than ${IFNAMSIZ - 1} characters`;
  return null;
}

/** The kernel's ifname_compare with the mask iptables builds: "eth+" is a prefix, else exact. */
export function ifaceMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith('+')) return name.startsWith(pattern.slice(0, -1));
  return name === pattern;
}
