/**
 * Network names iptables accepts for IPv4 addresses: getnetbyname() over /etc/networks
 * (name or alias, case-insensitive as nss_files compares them; the number as
 * inet_network reads it). IPv6 has no network names (network_to_ip6addr is empty).
 */
import { etcLines, readEtcFile } from './etc-files';
import { cNumber } from './number';

export const NETWORKS_FILE = '/etc/networks';

let cached: Map<string, number> | null = null;

/** inet_network(): one to four parts (base 0), combined byte by byte. → u32, or -1. */
function inetNetwork(text: string): number {
  const parts = text.split('.');
  if (parts.length > 4) return -1;
  let v = 0;
  for (const p of parts) {
    const n = cNumber(p);
    if (n < 0 || n > 255) return -1;
    v = v * 256 + n;
  }
  return v >>> 0;
}

export function parseNetworks(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const words of etcLines(text)) {
    const v = inetNetwork(words[1]);
    if (v < 0) continue;
    for (const name of [words[0], ...words.slice(2)]) if (!m.has(name.toLowerCase())) m.set(name.toLowerCase(), v);
  }
  return m;
}

/** For tests: use this table instead of the machine's (null = read the file again). */
export function setNetworks(m: Map<string, number> | null): void {
  cached = m;
}

/** The IPv4 network of that name, or -1. */
export function networkByName(name: string): number {
  cached ??= parseNetworks(readEtcFile(NETWORKS_FILE) ?? '');
  return cached.get(name.toLowerCase()) ?? -1;
}
