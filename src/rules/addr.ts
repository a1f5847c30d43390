/**
 * Address parsing and printing for rules: IPv4 / IPv6 literals into u32 words
 * (network order read big-endian, like PacketView), CIDR prefixes and masks,
 * and the iptables-save spelling back.
 */
import type { AddrSpec } from './types';
import { addrToString, parseIpv4Text, parseIpv6Text } from '../packet/format';

/** Dotted-quad IPv4 → u32, or -1 (src/packet/format.ts). */
export const parseIp4 = parseIpv4Text;
/** An IPv6 literal (with :: and an optional trailing dotted quad) → 4 u32 words, or null (src/packet/format.ts). */
export const parseIp6 = parseIpv6Text;
/** Address printing, for the rules' users: src/packet/format.ts (inet_ntop forms, as iptables-save prints them). */
export { formatIp4, formatIp6Full } from '../packet/format';
export const formatAddr: (family: 4 | 6, words: ArrayLike<number>) => string = addrToString;

export function prefixMask(family: 4 | 6, prefix: number): number[] {
  const m = [0, 0, 0, 0];
  const words = family === 4 ? 1 : 4;
  let left = prefix;
  for (let i = 0; i < words; i++) {
    if (left >= 32) m[i] = 0xffffffff;
    else if (left > 0) m[i] = (0xffffffff << (32 - left)) >>> 0;
    left -= 32;
  }
  return m;
}

/** Prefix length of a mask, or -1 when it is not contiguous. */
export function maskPrefix(family: 4 | 6, mask: readonly number[]): number {
  const words = family === 4 ? 1 : 4;
  let n = 0;
  let ended = false;
  for (let i = 0; i < words; i++) {
    for (let b = 31; b >= 0; b--) {
      const set = (mask[i] >>> b) & 1;
      if (set) {
        if (ended) return -1;
        n++;
      } else ended = true;
    }
  }
  return n;
}

/**
 * Parses ADDR[/PREFIX|/MASK] as iptables -s/-d do. Returns the spec (address already
 * masked, as iptables stores it) or an error message.
 */
export function parseAddrSpec(s: string): AddrSpec | string {
  const slash = s.indexOf('/');
  const a = slash >= 0 ? s.slice(0, slash) : s;
  const m = slash >= 0 ? s.slice(slash + 1) : null;
  let family: 4 | 6;
  let addr: number[];
  const v4 = parseIp4(a);
  if (v4 >= 0) {
    family = 4;
    addr = [v4, 0, 0, 0];
  } else {
    const v6 = parseIp6(a);
    if (!v6) {
      if (a.includes(',')) return `multiple addresses in one rule are not supported ("${s}"): write one rule per address`;
      if (/^[A-Za-z0-9.-]+$/.test(a) && /[A-Za-z]/.test(a) && !a.includes(':')) return `host names are not supported ("${a}"): use an address`;
      return `bad address "${a}"`;
    }
    family = 6;
    addr = v6;
  }
  let mask: number[];
  if (m === null) mask = prefixMask(family, family === 4 ? 32 : 128);
  else if (/^[0-9]{1,3}$/.test(m)) {
    const p = Number(m);
    if (p > (family === 4 ? 32 : 128)) return `bad prefix length "/${m}" (at most ${family === 4 ? 32 : 128})`;
    mask = prefixMask(family, p);
  } else if (family === 4 && parseIp4(m) >= 0) {
    mask = [parseIp4(m), 0, 0, 0];
  } else if (family === 6 && parseIp6(m)) {
    mask = parseIp6(m)!;
  } else return `bad netmask "/${m}"`;
  for (let i = 0; i < 4; i++) addr[i] = (addr[i] & mask[i]) >>> 0;
  return { family, addr, mask, prefix: maskPrefix(family, mask) };
}

/** iptables-save spelling of an address spec: ADDR/PREFIX or ADDR/MASK. */
export function formatAddrSpec(a: AddrSpec): string {
  const base = addrToString(a.family, a.addr);
  if (a.prefix >= 0) return `${base}/${a.prefix}`;
  return `${base}/${addrToString(a.family, a.mask)}`;
}

/** Compare two addresses word by word (unsigned): -1, 0, 1. */
export function cmpAddr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (let i = 0; i < 4; i++) {
    if (a[i] !== b[i]) return a[i] >>> 0 < b[i] >>> 0 ? -1 : 1;
  }
  return 0;
}
