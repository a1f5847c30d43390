/**
 * Address parsing and printing for rules: IPv4 / IPv6 literals into u32 words
 * (network order read big-endian, like PacketView), CIDR prefixes and masks,
 * and the iptables-save spelling back.
 */
import type { AddrSpec } from './types';

/** Parses a dotted-quad IPv4 address (exactly four decimal parts 0..255) → u32, or -1. */
export function parseIp4(s: string): number {
  const parts = s.split('.');
  if (parts.length !== 4) return -1;
  let v = 0;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return -1;
    const n = Number(p);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** Parses an IPv6 literal (with :: and an optional trailing dotted quad) → 4 u32 words, or null. */
export function parseIp6(s: string): number[] | null {
  if (s.length === 0 || s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let tail: number[] = [];
  let str = s;
  const lastColon = str.lastIndexOf(':');
  if (lastColon < 0) return null;
  if (str.indexOf('.', lastColon) >= 0) {
    const v4 = parseIp4(str.slice(lastColon + 1));
    if (v4 < 0) return null;
    tail = [v4 >>> 16, v4 & 0xffff];
    str = str.slice(0, lastColon);
    if (str.endsWith(':')) str += ':';
    if (str === '') return null;
  }
  const dbl = str.indexOf('::');
  if (dbl >= 0 && str.indexOf('::', dbl + 1) >= 0) return null;
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseGroups(str.slice(0, dbl));
    const rest = parseGroups(str.slice(dbl + 2));
    if (!head || !rest) return null;
    const fill = 8 - tail.length - head.length - rest.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
  } else {
    const all = parseGroups(str);
    if (!all) return null;
    groups = [...all, ...tail];
    if (groups.length !== 8) return null;
  }
  if (groups.length !== 8) return null;
  const w: number[] = [];
  for (let i = 0; i < 4; i++) w.push(((groups[2 * i] << 16) | groups[2 * i + 1]) >>> 0);
  return w;
}

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

export function formatIp4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** inet_ntop-style compressed IPv6 (longest run of ≥2 zero groups becomes ::). */
export function formatIp6(w: ArrayLike<number>): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push((w[i] >>> 16) & 0xffff, w[i] & 0xffff);
  let bestBase = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) {
    if (i === bestBase) {
      parts.push(i === 0 ? ':' : '');
      i += bestLen - 1;
      if (i === 7) parts.push('');
      continue;
    }
    parts.push(g[i].toString(16));
  }
  return parts.join(':');
}

/** The kernel's %pI6: eight 4-digit groups, no compression (nf_log lines). */
export function formatIp6Full(w: ArrayLike<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < 4; i++) {
    parts.push(((w[i] >>> 16) & 0xffff).toString(16).padStart(4, '0'), (w[i] & 0xffff).toString(16).padStart(4, '0'));
  }
  return parts.join(':');
}

export function formatAddr(family: 4 | 6, w: ArrayLike<number>): string {
  return family === 4 ? formatIp4(w[0]) : formatIp6(w);
}

/** iptables-save spelling of an address spec: ADDR/PREFIX or ADDR/MASK. */
export function formatAddrSpec(a: AddrSpec): string {
  const base = formatAddr(a.family, a.addr);
  if (a.prefix >= 0) return `${base}/${a.prefix}`;
  return `${base}/${formatAddr(a.family, a.mask)}`;
}

/** Compare two addresses word by word (unsigned): -1, 0, 1. */
export function cmpAddr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (let i = 0; i < 4; i++) {
    if (a[i] !== b[i]) return a[i] >>> 0 < b[i] >>> 0 ? -1 : 1;
  }
  return 0;
}
