/**
 * Address parsing and printing for rules: IPv4 / IPv6 literals into u32 words
 * (network order read big-endian, like PacketView), CIDR prefixes and masks,
 * and the iptables-save spelling back.
 */
import { cNumber, xtablesStrtoui } from './number';
import { networkByName } from './networks';
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
 * xtables_numeric_to_ipaddr / _ipmask (libxtables/xtables.c): up to four parts split at
 * '.', each a number 0..255 as strtoul reads it in base 0; an address with fewer parts
 * is a network and the missing bytes are zero ("172.16.0" = 172.16.0.0, "10" = 10.0.0.0),
 * a mask needs all four. Only the first 19 characters are read. → u32, or -1.
 */
export function numericToIp4(text: string, isMask: boolean): number {
  const parts = text.slice(0, 19).split('.');
  if (parts.length > 4 || (isMask && parts.length < 4)) return -1;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const b = i < parts.length ? xtablesStrtoui(parts[i], 0, 255) : 0;
    if (b < 0) return -1;
    v = v * 256 + b;
  }
  return v >>> 0;
}

/**
 * glibc's inet_aton (exact: nothing may follow), which getaddrinfo() applies to the
 * names iptables could not read as numbers: "a", "a.b" (b 24 bits), "a.b.c" (c 16 bits)
 * or "a.b.c.d", each part decimal, 0x… hex or 0… octal. → u32, or -1.
 */
export function inetAton(text: string): number {
  const parts = text.split('.');
  if (parts.length > 4) return -1;
  const vals: number[] = [];
  for (const p of parts) {
    // glibc takes a bare "0x" as 0
    const v = /^0[xX]$/.test(p) ? 0 : cNumber(p);
    if (v < 0) return -1;
    vals.push(v);
  }
  const last = vals.length - 1;
  const lastBits = 32 - 8 * last;
  if (vals[last] >= 2 ** lastBits) return -1;
  let v = 0;
  for (let i = 0; i < last; i++) {
    if (vals[i] > 255) return -1;
    v = v * 256 + vals[i];
  }
  return (v * 2 ** lastBits + vals[last]) >>> 0;
}

function hostnameError(name: string): string {
  return `host names are not supported ("${name}"): use an address (iptables would resolve the name once, at load time, through DNS or /etc/hosts)`;
}

/** parse_ipmask / parse_ip6mask: a prefix length (base 0) or a mask in address form. → mask words, or an error. */
export function parseMask(family: 4 | 6, text: string): number[] | string {
  if (family === 4) {
    const m = numericToIp4(text, true);
    if (m >= 0) return [m, 0, 0, 0];
  } else {
    const m = parseIp6(text);
    if (m) return m;
  }
  const max = family === 4 ? 32 : 128;
  const bits = xtablesStrtoui(text, 0, max);
  if (bits < 0 && /^[0-9]+$/.test(text)) return `bad prefix length "/${text}" (at most ${max})`;
  if (bits < 0) return `bad mask "/${text}" (a prefix length 0..${family === 4 ? 32 : 128} or a${family === 4 ? ' dotted' : 'n IPv6'} mask)`;
  return prefixMask(family, bits);
}

/** The address part of one list element, IPv4 as iptables reads it or an IPv6 literal. */
function parseHost(text: string, family: 4 | 6): number[] | null {
  if (family === 4) {
    let v = numericToIp4(text, false);
    if (v < 0) v = networkByName(text);
    if (v < 0) v = inetAton(text);
    return v < 0 ? null : [v, 0, 0, 0];
  }
  return parseIp6(text);
}

/**
 * -s/-d as xtables_ipparse_multiple / xtables_ip6parse_multiple read them: a comma list
 * of ADDR[/MASK] (the address masked, as iptables stores it). "ANY/0" matches every
 * address of either family: null. Returns one entry per element, or why not an address.
 */
export function parseAddrList(text: string): (AddrSpec | null)[] | string {
  const out: (AddrSpec | null)[] = [];
  for (const raw of text.split(',')) {
    const item = raw.replace(/^[ \t\n\v\f\r]+/, '');
    if (item.length > 255) return `address "${item.slice(0, 40)}…" is too long`;
    const slash = item.lastIndexOf('/');
    const host = slash >= 0 ? item.slice(0, slash) : item;
    const maskText = slash >= 0 ? item.slice(slash + 1) : null;
    // A zero prefix makes iptables ignore the address, in both families.
    if (maskText !== null && xtablesStrtoui(maskText, 0, 0) === 0) {
      out.push(null);
      continue;
    }
    const family: 4 | 6 | 0 = parseHost(host, 4) ? 4 : parseHost(host, 6) ? 6 : 0;
    if (family === 0) {
      if (host === '') return `empty address in "${text}"`;
      if (/^[0-9.]+$/.test(host) || /^0[xX]/.test(host)) return `bad address "${host}" (IPv4: up to four numbers 0..255 separated by dots)`;
      if (host.includes(':')) return `bad address "${host}" (not an IPv6 address)`;
      return hostnameError(host);
    }
    const addr = parseHost(host, family)!;
    const mask = maskText === null ? prefixMask(family, family === 4 ? 32 : 128) : parseMask(family, maskText);
    if (typeof mask === 'string') return mask;
    for (let i = 0; i < 4; i++) addr[i] = (addr[i] & mask[i]) >>> 0;
    out.push({ family, addr, mask, prefix: maskPrefix(family, mask) });
  }
  return out;
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
