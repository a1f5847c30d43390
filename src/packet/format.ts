/**
 * Address text, parsed and printed: the one place for it (rules, the control socket,
 * conntrack listings, LOG and REJECT all use these). Not for the hot path: they allocate
 * strings. Addresses are u32 words in network order as in PacketView (IPv4: word 0).
 */

/** An IPv4 address word as a dotted quad. */
export function formatIp4(w: number): string {
  w = w >>> 0;
  return `${w >>> 24}.${(w >>> 16) & 0xff}.${(w >>> 8) & 0xff}.${w & 0xff}`;
}

/** The kernel's %pI6: eight 4-digit groups, no compression (nf_log lines). */
export function formatIp6Full(w: ArrayLike<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < 4; i++) {
    parts.push(((w[i] >>> 16) & 0xffff).toString(16).padStart(4, '0'), (w[i] & 0xffff).toString(16).padStart(4, '0'));
  }
  return parts.join(':');
}

/**
 * Formats an address like glibc's inet_ntop: IPv4 dotted quad; IPv6 in
 * lower-case hex without leading zeros, the first longest run of two or more
 * zero groups replaced by "::", and the last 32 bits in dotted form for
 * IPv4-compatible (::a.b.c.d, first six groups zero and the seventh not) and
 * IPv4-mapped (::ffff:a.b.c.d) addresses. family: 4/6 (AF_INET 2 / AF_INET6 10 accepted).
 */
export function addrToString(family: number, words: ArrayLike<number>): string {
  if (family === 4 || family === 2) return formatIp4(words[0]);
  const g: number[] = [];
  for (let i = 0; i < 4; i++) {
    const w = words[i] >>> 0;
    g.push(w >>> 16, w & 0xffff);
  }
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (g[i] === 0) {
      if (curBase === -1) {
        curBase = i;
        curLen = 1;
      } else curLen++;
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
      out += formatIp4(words[3]);
      return out;
    }
    out += g[i].toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** Parses dotted-quad IPv4 (exactly four decimal parts 0-255, no leading '+' or spaces) into a u32, or -1. */
export function parseIpv4Text(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let w = 0;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return -1;
    const n = Number(p);
    if (n > 255) return -1;
    w = w * 256 + n;
  }
  return w >>> 0;
}

/**
 * Parses an IPv6 literal (hex groups, one "::", an embedded dotted IPv4 tail such as
 * ::ffff:1.2.3.4; no zone, no prefix) into 4 u32 words, or null.
 */
export function parseIpv6Text(text: string): number[] | null {
  if (text.indexOf(':') < 0) return null;
  let body = text;
  let tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  const lastPart = body.slice(lastColon + 1);
  if (lastPart.indexOf('.') >= 0) {
    const w = parseIpv4Text(lastPart);
    if (w < 0) return null;
    tail = [w >>> 16, w & 0xffff];
    body = body.slice(0, lastColon + 1);
    // "…:" left; a lone trailing ':' is fine only if it is part of "::" or follows a group
    if (!body.endsWith('::')) body = body.slice(0, -1);
  }
  const dbl = body.indexOf('::');
  if (dbl >= 0 && body.indexOf('::', dbl + 1) >= 0) return null;
  const parseGroups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const p of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseGroups(body.slice(0, dbl));
    const rest = parseGroups(body.slice(dbl + 2));
    if (head === null || rest === null) return null;
    const total = head.length + rest.length + tail.length;
    if (total > 7) return null; // "::" stands for at least one zero group
    groups = [...head, ...new Array<number>(8 - total).fill(0), ...rest, ...tail];
  } else {
    const all = parseGroups(body);
    if (all === null) return null;
    groups = [...all, ...tail];
    if (groups.length !== 8) return null;
  }
  const words: number[] = [];
  for (let i = 0; i < 4; i++) words.push(((groups[2 * i] << 16) | groups[2 * i + 1]) >>> 0);
  return words;
}

/**
 * Parses an IPv4 (dotted quad) or IPv6 address in text form.
 * Returns { family: 4 | 6, words } or null when the text is not an address.
 */
export function parseAddr(text: string): { family: 4 | 6; words: Uint32Array } | null {
  if (typeof text !== 'string' || text.length === 0) return null;
  const words = new Uint32Array(4);
  if (text.indexOf(':') < 0) {
    const w = parseIpv4Text(text);
    if (w < 0) return null;
    words[0] = w;
    return { family: 4, words };
  }
  const w6 = parseIpv6Text(text);
  if (!w6) return null;
  words.set(w6);
  return { family: 6, words };
}
