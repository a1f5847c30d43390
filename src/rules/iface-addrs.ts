/**
 * The gateway's interface addresses as the NAT targets need them (`ip -j addr show`, iproute2):
 * MASQUERADE's source address (inet_select_addr: the first primary global address of the output
 * interface whose subnet holds the destination, else its first primary global one; IPv6: the
 * global, not tentative address sharing the longest prefix with the destination, as RFC 6724's
 * last rule of ipv6_dev_get_saddr), REDIRECT's (the input interface's first address). Read when a
 * rule set with a *nat table goes into service, then followed through `ip -o monitor address
 * link`: each change re-reads the list and tells the listeners which addresses went away and
 * which links went down (MASQUERADE's entries die with them, nf_nat_masquerade.c).
 * Not reproduced: inet_select_addr's fallback to other interfaces' addresses when the output
 * interface has none (MASQUERADE then drops), and the route's gateway as the address to match
 * (the packet's destination is used).
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { followIpMonitor } from './ip-monitor';
import { parseIp4, parseIp6, prefixMask } from './addr';

export interface IfaceAddr {
  ifindex: number;
  family: 4 | 6;
  addr: number[];
  prefix: number;
  /** scope global (RT_SCOPE_UNIVERSE) */
  global: boolean;
  secondary: boolean;
  tentative: boolean;
}

export interface IfaceChange {
  /** addresses gone since the last read */
  removed: IfaceAddr[];
  /** interfaces that were up and are not any more (or vanished) */
  down: number[];
}

interface IpAddrJson {
  ifindex?: number;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string; secondary?: boolean; tentative?: boolean }[];
}

/** `ip -j addr show` output → addresses (in the kernel's order per interface) and the interfaces that are up. */
export function parseIpAddrs(json: string): { addrs: IfaceAddr[]; up: Set<number> } {
  const addrs: IfaceAddr[] = [];
  const up = new Set<number>();
  for (const l of JSON.parse(json || '[]') as IpAddrJson[]) {
    const ifindex = l.ifindex ?? 0;
    if ((l.flags ?? []).includes('UP')) up.add(ifindex);
    for (const a of l.addr_info ?? []) {
      const family = a.family === 'inet' ? 4 : a.family === 'inet6' ? 6 : 0;
      if (family === 0 || !a.local) continue;
      const words = family === 4 ? (parseIp4(a.local) >= 0 ? [parseIp4(a.local), 0, 0, 0] : null) : parseIp6(a.local);
      if (!words) continue;
      addrs.push({
        ifindex,
        family,
        addr: words,
        prefix: a.prefixlen ?? (family === 4 ? 32 : 128),
        global: (a.scope ?? 'global') === 'global',
        secondary: a.secondary === true,
        tentative: a.tentative === true,
      });
    }
  }
  return { addrs, up };
}

function inSubnet(a: IfaceAddr, dst: ArrayLike<number>): boolean {
  const m = prefixMask(a.family, a.prefix);
  const n = a.family === 4 ? 1 : 4;
  for (let i = 0; i < n; i++) if (((a.addr[i] ^ dst[i]) & m[i]) !== 0) return false;
  return true;
}

function commonPrefix(a: readonly number[], b: ArrayLike<number>): number {
  let bits = 0;
  for (let i = 0; i < 4; i++) {
    const x = (a[i] ^ b[i]) >>> 0;
    if (x === 0) {
      bits += 32;
      continue;
    }
    return bits + Math.clz32(x);
  }
  return bits;
}

export class IfaceAddrs {
  private byIndex = new Map<number, IfaceAddr[]>();
  private up = new Set<number>();
  private readonly listeners: ((c: IfaceChange) => void)[] = [];

  /** Replaces the list; tells the listeners what went away. */
  set(addrs: readonly IfaceAddr[], up: Set<number>): void {
    const next = new Map<number, IfaceAddr[]>();
    for (const a of addrs) {
      let l = next.get(a.ifindex);
      if (!l) next.set(a.ifindex, (l = []));
      l.push(a);
    }
    const key = (a: IfaceAddr) => `${a.ifindex}/${a.family}/${a.addr.join(',')}`;
    const now = new Set(addrs.map(key));
    const removed = [...this.byIndex.values()].flat().filter((a) => !now.has(key(a)));
    const down = [...this.up].filter((i) => !up.has(i));
    this.byIndex = next;
    this.up = up;
    if (removed.length > 0 || down.length > 0) for (const f of this.listeners) f({ removed, down });
  }

  onChange(f: (c: IfaceChange) => void): void {
    this.listeners.push(f);
  }

  /** TargetServices.natAddress (see the file comment). */
  select(ifindex: number, family: number, dst: ArrayLike<number> | null, out: Uint32Array): boolean {
    const list = this.byIndex.get(ifindex);
    if (!list) return false;
    let pick: IfaceAddr | undefined;
    if (dst === null) {
      pick = list.find((a) => a.family === family);
    } else if (family === 4) {
      const cands = list.filter((a) => a.family === 4 && !a.secondary && a.global);
      pick = cands.find((a) => inSubnet(a, dst)) ?? cands[0];
    } else {
      let best = -1;
      for (const a of list) {
        if (a.family !== 6 || !a.global || a.tentative) continue;
        const c = commonPrefix(a.addr, dst);
        if (c > best) {
          best = c;
          pick = a;
        }
      }
    }
    if (!pick) return false;
    for (let i = 0; i < 4; i++) out[i] = pick.addr[i] >>> 0;
    return true;
  }
}

const ADDR_ARGS = ['-j', 'addr', 'show'];
const addrs = new IfaceAddrs();
let monitor: ChildProcess | null = null;
let fixed = false;
let refreshing = false;
let again = false;

function refresh(): void {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  execFile('ip', ADDR_ARGS, { encoding: 'utf8' }, (err, stdout) => {
    refreshing = false;
    if (!err) {
      const r = parseIpAddrs(stdout);
      addrs.set(r.addrs, r.up);
    }
    if (again || err) {
      again = false;
      setTimeout(refresh, err ? 100 : 0).unref();
    }
  });
}

/** The list for a rule set with a *nat table going into service: read now, then followed. Throws without `ip`. */
export function activeIfaceAddrs(): IfaceAddrs {
  if (fixed || monitor) return addrs;
  const r = parseIpAddrs(execFileSync('ip', ADDR_ARGS, { encoding: 'utf8' }));
  addrs.set(r.addrs, r.up);
  const child = followIpMonitor(['address', 'link'], refresh, (c) => {
    if (monitor === c) monitor = null;
  });
  monitor = child;
  refresh();
  return addrs;
}

/** Tests and offline replay: a fixed list, never followed. */
export function useFixedIfaceAddrs(list: readonly IfaceAddr[], up: readonly number[]): IfaceAddrs {
  fixed = true;
  addrs.set(list, new Set(up));
  return addrs;
}

export function ifaceAddrs(): IfaceAddrs {
  return addrs;
}
