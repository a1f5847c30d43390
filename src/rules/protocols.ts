/**
 * -p as xtables_parse_protocol reads it: a number 0..255 (base 0), one of iptables' own
 * names (xtables_chain_protos), else getprotobyname() over /etc/protocols.
 */
import { etcLines, readEtcFile } from './etc-files';
import { xtablesStrtoui } from './number';

export const PROTOCOLS_FILE = '/etc/protocols';

/** xtables_chain_protos (libxtables/xtables.c) */
const BUILTIN: Record<string, number> = {
  tcp: 6,
  sctp: 132,
  udp: 17,
  udplite: 136,
  icmp: 1,
  'ipv6-icmp': 58,
  icmpv6: 58,
  esp: 50,
  ah: 51,
  'mobility-header': 135,
  'ipv6-mh': 135,
  mh: 135,
  all: 0,
};

let cached: Map<string, number> | null = null;

export function parseProtocols(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const words of etcLines(text)) {
    if (!/^[0-9]+$/.test(words[1]) || Number(words[1]) > 255) continue;
    for (const name of [words[0], ...words.slice(2)]) if (!m.has(name)) m.set(name, Number(words[1]));
  }
  return m;
}

/** For tests: use this table instead of the machine's (null = read the file again). */
export function setProtocols(m: Map<string, number> | null): void {
  cached = m;
}

/** The protocol number of -p TEXT (already lower-cased, as do_parse does), or -1. */
export function protocolNumber(text: string): number {
  const n = xtablesStrtoui(text, 0, 255);
  if (n >= 0) return n;
  if (text in BUILTIN) return BUILTIN[text];
  cached ??= parseProtocols(readEtcFile(PROTOCOLS_FILE) ?? '');
  return cached.get(text) ?? -1;
}

/** getprotobynumber()'s name for N (the first /etc/protocols line with that number), or null. */
export function protocolName(n: number): string | null {
  cached ??= parseProtocols(readEtcFile(PROTOCOLS_FILE) ?? '');
  for (const [name, v] of cached) if (v === n) return name;
  return null;
}
