/**
 * The kernel's ICMP error rate limits, applied to the ICMP errors REJECT sends. The kernel's
 * REJECT goes through icmp_send / icmp6_send, which limit errors per destination host
 * (inet_peer_xrlim_allow: a token bucket of `ratelimit` ms per message, burst 6) and globally
 * (icmp_global_allow: net.ipv4.icmp_msgs_per_sec with a burst of icmp_msgs_burst, shared by
 * IPv4 and IPv6). nfqwall sends through raw sockets, which the kernel does not limit, so the
 * same limits are applied here, read from the sysctls of the namespace the daemon runs in.
 * TCP resets are not limited (nf_send_reset does not go through icmp_send).
 */
import * as fs from 'node:fs';

/** net/ipv4/inetpeer.c: a peer may save up this many messages' worth of tokens. */
const XRLIM_BURST_FACTOR = 6;
/** icmp_global_allow refills no more often than every HZ/50 (20 ms), by at most one second's worth. */
const GLOBAL_MIN_REFILL_MS = 20;
/** inet_peer entries are bounded in the kernel too; beyond this the least recently used is forgotten. */
const DEFAULT_MAX_PEERS = 65536;
/** icmpv6_xrlim_allow's type bitmap holds types 0..ICMPV6_MSG_MAX (255). */
const ICMPV6_PKT_TOOBIG = 2;

export interface IcmpLimits {
  /** net.ipv4.icmp_ratelimit (ms per message per destination) */
  v4RatelimitMs: number;
  /** net.ipv4.icmp_ratemask: bit n set = ICMP type n is limited */
  v4Ratemask: number;
  /** net.ipv6.icmp.ratelimit (ms, scaled down for wider routes) */
  v6RatelimitMs: number;
  /** net.ipv6.icmp.ratemask as a 256-entry bitmap */
  v6Ratemask: Uint8Array;
  /** net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst (global, both families) */
  msgsPerSec: number;
  msgsBurst: number;
}

/** Parses an ICMPv6 ratemask list ("0-1,3-127") into a 256-entry bitmap; throws on bad syntax. */
export function parseV6Ratemask(text: string): Uint8Array {
  const m = new Uint8Array(256);
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const r = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!r) throw new Error(`bad ratemask element '${part}'`);
    const lo = Number(r[1]);
    const hi = r[2] === undefined ? lo : Number(r[2]);
    if (lo > hi || hi > 255) throw new Error(`bad ratemask range '${part}'`);
    for (let t = lo; t <= hi; t++) m[t] = 1;
  }
  return m;
}

/** The kernel's defaults for a new network namespace (6.x). */
export function defaultIcmpLimits(): IcmpLimits {
  return {
    v4RatelimitMs: 1000,
    v4Ratemask: 0x1818,
    v6RatelimitMs: 100,
    v6Ratemask: parseV6Ratemask('0-1,3-127'),
    msgsPerSec: 1000,
    msgsBurst: 50,
  };
}

/** Reads the limits from /proc/sys (the current network namespace); a value that cannot be read keeps its default. */
export function readIcmpLimits(procSys = '/proc/sys'): IcmpLimits {
  const l = defaultIcmpLimits();
  const read = (rel: string): string | null => {
    try {
      return fs.readFileSync(`${procSys}/${rel}`, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const int = (rel: string, def: number): number => {
    const t = read(rel);
    return t !== null && /^-?\d+$/.test(t) ? Number(t) : def;
  };
  l.v4RatelimitMs = int('net/ipv4/icmp_ratelimit', l.v4RatelimitMs);
  l.v4Ratemask = int('net/ipv4/icmp_ratemask', l.v4Ratemask);
  l.v6RatelimitMs = int('net/ipv6/icmp/ratelimit', l.v6RatelimitMs);
  l.msgsPerSec = int('net/ipv4/icmp_msgs_per_sec', l.msgsPerSec);
  l.msgsBurst = int('net/ipv4/icmp_msgs_burst', l.msgsBurst);
  const mask6 = read('net/ipv6/icmp/ratemask');
  if (mask6 !== null) {
    try {
      l.v6Ratemask = parseV6Ratemask(mask6);
    } catch {
      // keep the default
    }
  }
  return l;
}

interface Peer {
  tokens: number;
  last: number;
}

export class IcmpRateLimiter {
  /** messages refused by the per-destination / the global limit */
  limitedHost = 0;
  limitedGlobal = 0;
  private readonly peers = new Map<string, Peer>();
  private credit: number;
  private stamp: number;

  constructor(
    readonly limits: IcmpLimits,
    private readonly now: () => number = () => performance.now(),
    private readonly maxPeers = DEFAULT_MAX_PEERS,
  ) {
    this.credit = limits.msgsBurst;
    this.stamp = now();
  }

  /** icmpv4_global_allow + icmpv4_xrlim_allow for an ICMP error of `type`/`code` to `dst`. */
  allow4(dst: string, type: number, code: number): boolean {
    // icmpv4_mask_allow: unknown types, fragmentation-needed and unmasked types are never limited
    if (type > 18 || (type === 3 && code === 4) || ((1 << type) & this.limits.v4Ratemask) === 0) return true;
    return this.limited(`4 ${dst}`, this.limits.v4RatelimitMs);
  }

  /**
   * icmpv6_global_allow + icmpv6_xrlim_allow for an ICMPv6 error of `type` to `dst`.
   * `routePlen` gives the prefix length of the route to dst, asked only for a limited type
   * (wider routes get more bandwidth: the timeout is halved for every 32 bits below 128).
   */
  allow6(dst: string, type: number, routePlen: () => number): boolean {
    if (type === ICMPV6_PKT_TOOBIG || this.limits.v6Ratemask[type & 0xff] === 0) return true;
    const plen = routePlen();
    let tmo = this.limits.v6RatelimitMs;
    if (plen < 128) tmo = tmo / 2 ** ((128 - plen) >> 5);
    return this.limited(`6 ${dst}`, tmo);
  }

  private limited(key: string, tmo: number): boolean {
    const now = this.now();
    if (!this.globalAllow(now)) {
      this.limitedGlobal++;
      return false;
    }
    if (!this.peerAllow(key, tmo, now)) {
      this.limitedHost++;
      return false;
    }
    // icmp_global_consume takes 0..2 credits at random (1 on average); one is taken here
    this.credit--;
    return true;
  }

  private globalAllow(now: number): boolean {
    if (this.credit > 0) return true;
    const delta = Math.min(now - this.stamp, 1000);
    if (delta < GLOBAL_MIN_REFILL_MS) return false;
    const incr = Math.floor((this.limits.msgsPerSec * delta) / 1000);
    if (incr === 0) return false;
    this.stamp = now;
    this.credit = Math.min(this.credit + incr, this.limits.msgsBurst);
    return true;
  }

  /** inet_peer_xrlim_allow; a new peer starts with a full bucket (rate_last = now - 60 s). */
  private peerAllow(key: string, tmo: number, now: number): boolean {
    let p = this.peers.get(key);
    if (p === undefined) {
      if (this.peers.size >= this.maxPeers) this.peers.delete(this.peers.keys().next().value as string);
      p = { tokens: 0, last: now - 60_000 };
    } else {
      this.peers.delete(key); // re-inserted below: the Map's order is least recently used first
    }
    this.peers.set(key, p);
    let token = p.tokens + (now - p.last);
    p.last = now;
    if (token > XRLIM_BURST_FACTOR * tmo) token = XRLIM_BURST_FACTOR * tmo;
    let ok = false;
    if (token >= tmo) {
      token -= tmo;
      ok = true;
    }
    p.tokens = token;
    return ok;
  }
}

/**
 * Longest-prefix match over the main IPv6 routing table (/proc/net/ipv6_route), re-read at most
 * once a second, for allow6's route prefix length. 128 (no scaling) when nothing matches.
 */
export class Ipv6RoutePrefix {
  private routes: { addr: Uint8Array; plen: number }[] = [];
  private readAt = -Infinity;

  constructor(
    private readonly file = '/proc/net/ipv6_route',
    private readonly now: () => number = () => performance.now(),
  ) {}

  plenFor(dst: Uint8Array): number {
    const now = this.now();
    if (now - this.readAt >= 1000) {
      this.readAt = now;
      this.routes = readIpv6Routes(this.file);
    }
    let best = -1;
    for (const r of this.routes) if (r.plen > best && prefixMatches(r.addr, dst, r.plen)) best = r.plen;
    return best < 0 ? 128 : best;
  }
}

function readIpv6Routes(file: string): { addr: Uint8Array; plen: number }[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: { addr: Uint8Array; plen: number }[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[0].length !== 32) continue;
    out.push({ addr: Uint8Array.from(Buffer.from(f[0], 'hex')), plen: parseInt(f[1], 16) });
  }
  return out;
}

function prefixMatches(net: Uint8Array, a: Uint8Array, plen: number): boolean {
  let i = 0;
  for (; plen >= 8; plen -= 8, i++) if (net[i] !== a[i]) return false;
  if (plen === 0) return true;
  const mask = (0xff << (8 - plen)) & 0xff;
  return (net[i] & mask) === (a[i] & mask);
}
