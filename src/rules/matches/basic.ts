/**
 * The built-in part of every rule (struct ipt_ip / ip6t_ip6): -p, -s/-d, -i/-o.
 * Parsing helpers here; the per-packet checks are inlined in eval.ts.
 */

/** Protocol names iptables knows without /etc/protocols, plus the common ones from it. */
export const PROTO_NAMES: Record<string, number> = {
  all: 0,
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  ipv6: 41,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  'ipv6-icmp': 58,
  ospf: 89,
  sctp: 132,
  udplite: 136,
  dccp: 33,
  mh: 135,
};

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

/** Parses a -p argument: name or number 0..255. Returns -1 when unknown. */
export function parseProto(s: string): number {
  const lower = s.toLowerCase();
  if (lower in PROTO_NAMES) return PROTO_NAMES[lower];
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    return n <= 255 ? n : -1;
  }
  return -1;
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

/** Validates an interface pattern (-i/-o): at most 15 characters, `+` only as the last one. */
export function checkIface(s: string): string | null {
  if (s.length === 0) return 'empty interface name';
  if (s.length >= IFNAMSIZ) return `interface name "${s}" is longer than ${IFNAMSIZ - 1} characters`;
  if (/[\s/:]/.test(s)) return `bad interface name "${s}"`;
  return null;
}

/** The kernel's ifname_compare with the mask iptables builds: "eth+" is a prefix, else exact. */
export function ifaceMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith('+')) return name.startsWith(pattern.slice(0, -1));
  return name === pattern;
}
