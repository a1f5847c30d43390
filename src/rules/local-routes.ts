/**
 * The gateway's local routing table (`ip route show table local`, IPv4 and IPv6) as -m addrtype
 * needs it: the routes the kernel adds for every address (local ADDR, broadcast BCAST, local
 * 127.0.0.0/8, IPv6 local/anycast/multicast) and any an operator adds there. One copy per
 * thread, filled synchronously when a rule set using addrtype goes into service, then kept
 * current from rtnetlink through `ip -o monitor route address` (iproute2): each route change
 * re-reads the table, so an address added or removed changes LOCAL as soon as the daemon's
 * event loop reads the change. Lookups (per packet) allocate nothing.
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { followIpMonitor } from './ip-monitor';
import * as fs from 'node:fs';
import { formatAddr, parseIp4, parseIp6 } from './addr';
import { sysIfindex } from './ifname';

/** rtnetlink route types (include/uapi/linux/rtnetlink.h RTN_*) */
export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;
export const RTN_BROADCAST = 3;
export const RTN_ANYCAST = 4;
export const RTN_MULTICAST = 5;
const TYPES: Record<string, number> = {
  unicast: RTN_UNICAST,
  local: RTN_LOCAL,
  broadcast: RTN_BROADCAST,
  anycast: RTN_ANYCAST,
  multicast: RTN_MULTICAST,
  blackhole: 6,
  unreachable: 7,
  prohibit: 8,
  throw: 9,
  nat: 10,
  xresolve: 11,
};

export interface LocalRoute {
  family: 4 | 6;
  /** 4 words (IPv4: word 0) */
  addr: number[];
  prefix: number;
  type: number;
  /** the route's device (0 when unknown) */
  ifindex: number;
}

function maskWord(prefix: number, word: number): number {
  const bits = Math.max(0, Math.min(32, prefix - word * 32));
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

export class LocalRoutes {
  private n4 = 0;
  private a4 = new Uint32Array(0);
  private m4 = new Uint32Array(0);
  private t4 = new Uint8Array(0);
  private d4 = new Int32Array(0);
  private n6 = 0;
  private a6 = new Uint32Array(0);
  private m6 = new Uint32Array(0);
  private t6 = new Uint8Array(0);
  private d6 = new Int32Array(0);
  /** bumped on every change */
  version = 0;
  private list: readonly LocalRoute[] = [];

  /** Replaces the table; longest prefixes first, so the first hit is the longest match. */
  set(routes: readonly LocalRoute[]): void {
    const v4 = routes.filter((r) => r.family === 4).sort((a, b) => b.prefix - a.prefix);
    const v6 = routes.filter((r) => r.family === 6).sort((a, b) => b.prefix - a.prefix);
    const a4 = new Uint32Array(v4.length);
    const m4 = new Uint32Array(v4.length);
    const t4 = new Uint8Array(v4.length);
    const d4 = new Int32Array(v4.length);
    v4.forEach((r, i) => {
      m4[i] = maskWord(r.prefix, 0);
      a4[i] = (r.addr[0] & m4[i]) >>> 0;
      t4[i] = r.type;
      d4[i] = r.ifindex;
    });
    const a6 = new Uint32Array(v6.length * 4);
    const m6 = new Uint32Array(v6.length * 4);
    const t6 = new Uint8Array(v6.length);
    const d6 = new Int32Array(v6.length);
    v6.forEach((r, i) => {
      for (let w = 0; w < 4; w++) {
        m6[i * 4 + w] = maskWord(r.prefix, w);
        a6[i * 4 + w] = (r.addr[w] & m6[i * 4 + w]) >>> 0;
      }
      t6[i] = r.type;
      d6[i] = r.ifindex;
    });
    [this.n4, this.a4, this.m4, this.t4, this.d4] = [v4.length, a4, m4, t4, d4];
    [this.n6, this.a6, this.m6, this.t6, this.d6] = [v6.length, a6, m6, t6, d6];
    this.list = [...v4, ...v6];
    this.version++;
  }

  /** What addrtype looks at, one route a line: `TYPE ADDR/PREFIX ifindex N` (`nfqwall rules --local-routes`). */
  lines(): string[] {
    const name = (t: number) => Object.keys(TYPES).find((k) => TYPES[k] === t) ?? String(t);
    return this.list.map((r) => `${name(r.type)} ${formatAddr(r.family, r.addr)}/${r.prefix} ifindex ${r.ifindex}`);
  }

  /**
   * __inet_dev_addr_type: 0.0.0.0/8 and 255.255.255.255 are BROADCAST, 224/4 MULTICAST, else
   * the type of the longest local route (when dev ≠ 0: only if the route is on dev), else UNICAST.
   */
  type4(addr: number, dev: number): number {
    const a = addr >>> 0;
    if (a >>> 24 === 0 || a === 0xffffffff) return RTN_BROADCAST;
    if (a >>> 28 === 0xe) return RTN_MULTICAST;
    for (let i = 0; i < this.n4; i++) {
      if ((a & this.m4[i]) >>> 0 !== this.a4[i]) continue;
      return dev === 0 || dev === this.d4[i] ? this.t4[i] : RTN_UNICAST;
    }
    return RTN_UNICAST;
  }

  /**
   * Whether an IPv6 address is local (match_lookup_rt6): without dev, its longest local route
   * is of type local (RTF_LOCAL); with dev, it is a local address on dev (nf_ipv6_chk_addr).
   */
  local6(addr: ArrayLike<number>, dev: number): boolean {
    for (let i = 0; i < this.n6; i++) {
      let hit = true;
      for (let w = 0; w < 4; w++) if ((addr[w] & this.m6[i * 4 + w]) >>> 0 !== this.a6[i * 4 + w]) hit = false;
      if (!hit) continue;
      if (dev === 0) return this.t6[i] === RTN_LOCAL;
      if (this.t6[i] === RTN_LOCAL && this.d6[i] === dev && this.m6[i * 4 + 3] === 0xffffffff) return true;
    }
    return false;
  }
}

/** `ip -j route show table local` output → routes (interface names through ifindexOf). */
export function parseIpRoutes(json: string, family: 4 | 6, ifindexOf: (name: string) => number): LocalRoute[] {
  const out: LocalRoute[] = [];
  for (const r of JSON.parse(json || '[]') as { type?: string; dst?: string; dev?: string }[]) {
    const type = TYPES[r.type ?? 'unicast'];
    if (!type || !r.dst) continue;
    const [a, p] = r.dst.split('/');
    const words = family === 4 ? (parseIp4(a) >= 0 ? [parseIp4(a), 0, 0, 0] : null) : parseIp6(a);
    if (!words) continue;
    const prefix = p === undefined ? (family === 4 ? 32 : 128) : Number(p);
    out.push({ family, addr: words, prefix, type, ifindex: r.dev ? ifindexOf(r.dev) : 0 });
  }
  return out;
}

const ROUTE_ARGS: [4 | 6, string[]][] = [
  [4, ['-4', '-j', 'route', 'show', 'table', 'local']],
  [6, ['-6', '-j', 'route', 'show', 'table', 'local']],
];

const routes = new LocalRoutes();
let monitor: ChildProcess | null = null;
let fixed = false;
let refreshing = false;
let again = false;

function readSync(): void {
  const all: LocalRoute[] = [];
  for (const [fam, args] of ROUTE_ARGS) all.push(...parseIpRoutes(execFileSync('ip', args, { encoding: 'utf8' }), fam, sysIfindex));
  routes.set(all);
}

function refresh(): void {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  const all: LocalRoute[] = [];
  let left = ROUTE_ARGS.length;
  let failed = false;
  for (const [fam, args] of ROUTE_ARGS) {
    execFile('ip', args, { encoding: 'utf8' }, (err, stdout) => {
      if (err) failed = true;
      else all.push(...parseIpRoutes(stdout, fam, sysIfindex));
      if (--left > 0) return;
      if (!failed) routes.set(all);
      refreshing = false;
      if (again || failed) {
        again = false;
        setTimeout(refresh, failed ? 100 : 0).unref();
      }
    });
  }
}

/**
 * The table for a rule set going into service: read now, then followed. Throws when the
 * table cannot be read (no `ip`): addrtype cannot be evaluated without it.
 */
export function activeLocalRoutes(): LocalRoutes {
  if (fixed || monitor) return routes;
  readSync();
  const child = followIpMonitor(['route', 'address'], refresh, (c) => {
    if (monitor === c) monitor = null;
  });
  monitor = child;
  // a change between the first read and the subscription
  refresh();
  return routes;
}

/** Tests and offline replay: a fixed table instead of the machine's, never followed. */
export function useFixedLocalRoutes(list: readonly LocalRoute[]): LocalRoutes {
  fixed = true;
  routes.set(list);
  return routes;
}

export function localRoutes(): LocalRoutes {
  return routes;
}
