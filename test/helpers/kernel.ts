/**
 * Kernel differential test helpers: a lab whose gw uses the kernel's own conntrack, a capture
 * of every packet arriving at gw, the kernel's view afterwards (conntrack -L / -L expect / -S,
 * per-rule counters) and nfqwall's view of the same capture (`nfqwall replay --table --json`).
 *
 * Needs root. Everything runs inside the lab's namespaces; processes are stopped by PID.
 */
import { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Lab, LAB_ADDR, Role } from '../../src/lab/netns';

export const ROOT = path.resolve(__dirname, '..', '..');
export const NFQWALL = path.join(ROOT, 'bin', 'nfqwall.js');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

import { watch } from './watch';
export { watch };

// ---------------------------------------------------------------------------------------------
// conntrack -L lines (kernel's conntrack-tools and nfqwall's formatter print the same format)

export interface CtTuple {
  src: string;
  dst: string;
  /** "sport=1 dport=2" or "type=8 code=0 id=7" or "" */
  l4: string;
}
export interface CtEntry {
  proto: string;
  timeout: number;
  state: string;
  orig: CtTuple;
  reply: CtTuple;
  unreplied: boolean;
  assured: boolean;
  helper?: string;
  line: string;
}

export function parseCtLine(line: string): CtEntry | null {
  const tok = line.trim().split(/\s+/);
  if (tok.length < 4 || !/^\d+$/.test(tok[1])) return null;
  const e: CtEntry = {
    proto: tok[0],
    timeout: Number(tok[2]),
    state: '',
    orig: { src: '', dst: '', l4: '' },
    reply: { src: '', dst: '', l4: '' },
    unreplied: false,
    assured: false,
    line: line.trim(),
  };
  let i = 3;
  if (!tok[3].includes('=') && !tok[3].startsWith('[')) e.state = tok[i++];
  let cur: CtTuple | null = null;
  let nsrc = 0;
  for (; i < tok.length; i++) {
    const t = tok[i];
    if (t === '[UNREPLIED]') e.unreplied = true;
    else if (t === '[ASSURED]') e.assured = true;
    else if (t.startsWith('src=')) {
      cur = nsrc++ === 0 ? e.orig : e.reply;
      cur.src = t.slice(4);
    } else if (t.startsWith('dst=') && cur) cur.dst = t.slice(4);
    else if (/^(sport|dport|type|code|id)=/.test(t) && cur) cur.l4 += (cur.l4 ? ' ' : '') + t;
    else if (t.startsWith('helper=')) e.helper = t.slice(7);
    else if (/^(mark|use|zone|secctx|labels)=/.test(t)) cur = null;
  }
  return e;
}

export function parseCtList(text: string): CtEntry[] {
  return text
    .split('\n')
    .map(parseCtLine)
    .filter((e): e is CtEntry => e !== null);
}

/** Timeout classes of the kernel's defaults; a remaining timeout maps to the smallest class ≥ it. */
const TIMEOUT_CLASSES = [10, 30, 60, 120, 300, 600, 3600, 432000];
export function timeoutClass(t: number): number {
  for (const c of TIMEOUT_CLASSES) if (t <= c) return c;
  return Infinity;
}

export const tupleKey = (t: CtTuple) => `${t.src}>${t.dst} ${t.l4}`;
export const entryKey = (e: CtEntry) => `${e.proto} ${tupleKey(e.orig)}`;

/** The comparable part of an entry: everything but the exact timeout, use= and mark=. */
export function comparable(e: CtEntry) {
  return {
    proto: e.proto,
    state: e.state,
    orig: tupleKey(e.orig),
    reply: tupleKey(e.reply),
    unreplied: e.unreplied,
    assured: e.assured,
    timeoutClass: timeoutClass(e.timeout),
    ...(e.helper ? { helper: e.helper } : {}),
  };
}

/** Entries keyed by original tuple, sorted, comparable form. */
export function comparableTable(entries: CtEntry[]) {
  return entries.map(comparable).sort((a, b) => (a.orig < b.orig ? -1 : a.orig > b.orig ? 1 : a.proto < b.proto ? -1 : 1));
}

// ---------------------------------------------------------------------------------------------
// iptables counters

export interface RuleCounter {
  pkts: number;
  bytes: number;
  target: string;
  rest: string;
}

/** Parses `iptables -L CHAIN -v -x -n` (rules only, in order). */
export function parseCounters(text: string): RuleCounter[] {
  const rows: RuleCounter[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S*)\s+(.*)$/.exec(line);
    if (!m) continue;
    rows.push({ pkts: Number(m[1]), bytes: Number(m[2]), target: m[3], rest: m[4] });
  }
  return rows;
}

export const CTSTATES = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED'] as const;
export type CtStateCounts = Record<(typeof CTSTATES)[number], number>;

/**
 * mangle PREROUTING counter rules, one per ctstate, for packets from the lab's prefixes
 * (link-local noise such as MLD reports and DAD is left out on both sides).
 */
/** ICMPv6 router/neighbour solicitation/advertisement and redirect. */
export const ND_TYPES = [133, 134, 135, 136, 137];

export function isNeighbourDiscovery(p: { proto: number; icmpType?: number }): boolean {
  return p.proto === 58 && p.icmpType !== undefined && ND_TYPES.includes(p.icmpType);
}

export function ctstateCounterRules(v6: boolean): string {
  const src = v6 ? '2001:2::/48' : '198.18.0.0/15';
  const lines = ['*mangle', ':PREROUTING ACCEPT [0:0]'];
  // Neighbour discovery is counted apart: NUD probes come whenever a neighbour entry goes
  // stale, also between the end of the capture and the reading of the counters.
  if (v6) for (const t of ND_TYPES) lines.push(`-A PREROUTING -s ${src} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -m comment --comment nd -j RETURN`);
  for (const s of CTSTATES) lines.push(`-A PREROUTING -s ${src} -m conntrack --ctstate ${s} -j RETURN`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export function isLabSource(src: string): boolean {
  return src.includes(':') ? src.toLowerCase().startsWith('2001:2:') : src.startsWith('198.18.') || src.startsWith('198.19.');
}

// ---------------------------------------------------------------------------------------------
// kernel gateway

export class KernelGw {
  constructor(
    readonly lab: Lab,
    readonly ns: Role | string = 'gw',
  ) {}

  exec(argv: string[], input?: string) {
    return this.lab.exec(this.ns, argv, { check: true, input });
  }

  async restore(v4: string, v6?: string): Promise<void> {
    await this.exec(['iptables-restore', '-w', '--noflush'], v4);
    if (v6 !== undefined) await this.exec(['ip6tables-restore', '-w', '--noflush'], v6);
  }

  async installCtstateCounters(): Promise<void> {
    await this.restore(ctstateCounterRules(false), ctstateCounterRules(true));
  }

  async zeroCounters(tables = ['mangle']): Promise<void> {
    for (const bin of ['iptables', 'ip6tables']) for (const t of tables) await this.exec([bin, '-w', '-t', t, '-Z']);
  }

  async counters(chain: string, table = 'filter', v6 = false): Promise<RuleCounter[]> {
    const r = await this.exec([v6 ? 'ip6tables' : 'iptables', '-w', '-t', table, '-L', chain, '-v', '-x', '-n']);
    return parseCounters(r.stdout);
  }

  /** Sum of v4 and v6 ctstate counters (rules from ctstateCounterRules). */
  async ctstateCounts(): Promise<CtStateCounts> {
    const c = Object.fromEntries(CTSTATES.map((s) => [s, 0])) as CtStateCounts;
    for (const v6 of [false, true]) {
      for (const row of await this.counters('PREROUTING', 'mangle', v6)) {
        const m = /ctstate (\w+)/.exec(row.rest);
        if (m && m[1] in c) c[m[1] as keyof CtStateCounts] += row.pkts;
      }
    }
    return c;
  }

  /** Neighbour discovery packets from lab addresses (counted apart from the ctstate counters). */
  async ndCount(): Promise<number> {
    let n = 0;
    for (const row of await this.counters('PREROUTING', 'mangle', true)) if (/\/\* nd \*\//.test(row.rest)) n += row.pkts;
    return n;
  }

  async sysctl(name: string, value: string | number): Promise<void> {
    await this.exec(['sysctl', '-qw', `${name}=${value}`]);
  }

  async flush(): Promise<void> {
    for (const f of ['ipv4', 'ipv6']) await this.lab.exec(this.ns, ['conntrack', '-F', '-f', f]);
    for (const f of ['ipv4', 'ipv6']) await this.lab.exec(this.ns, ['conntrack', '-F', 'expect', '-f', f]);
  }

  async table(): Promise<CtEntry[]> {
    const out: CtEntry[] = [];
    for (const f of ['ipv4', 'ipv6']) out.push(...parseCtList((await this.exec(['conntrack', '-L', '-f', f])).stdout));
    return out;
  }

  async expectations(): Promise<string[]> {
    const lines: string[] = [];
    for (const f of ['ipv4', 'ipv6']) {
      const r = await this.exec(['conntrack', '-L', 'expect', '-f', f]);
      lines.push(...r.stdout.split('\n').filter((l) => l.trim()));
    }
    return lines;
  }

  /** `conntrack -S` summed over CPUs. */
  async stats(): Promise<Record<string, number>> {
    const r = await this.exec(['conntrack', '-S']);
    const sum: Record<string, number> = {};
    for (const m of r.stdout.matchAll(/(\w+)=(\d+)/g)) if (m[1] !== 'cpu') sum[m[1]] = (sum[m[1]] ?? 0) + Number(m[2]);
    return sum;
  }
}

/**
 * Turns TX checksum offload off (helpers/txcsum_off.py) on the cli and srv veth ends: veth passes packets with partial
 * checksums, which the kernel's conntrack does not verify but a capture replayed offline would
 * see as bad checksums.
 */
export async function disableOffload(lab: Lab): Promise<void> {
  await lab.exec('cli', ['/usr/bin/python3', path.join(ROOT, 'test/helpers/txcsum_off.py'), 'c0'], { check: true });
  await lab.exec('srv', ['/usr/bin/python3', path.join(ROOT, 'test/helpers/txcsum_off.py'), 's0'], { check: true });
}

// ---------------------------------------------------------------------------------------------
// capture at gw

/** A sentinel that is not IP (nfqwall replay and conntrack ignore it): ARP who-has 198.18.1.253 from cli. */
const ARP_SENTINEL_PY = `
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('c0', 0))
mac = s.getsockname()[4]
arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton('198.18.1.1') + b'\\0' * 6 + socket.inet_aton('198.18.1.253')
s.send(b'\\xff' * 6 + mac + b'\\x08\\x06' + arp)
`;

export class Capture {
  private constructor(
    private readonly lab: Lab,
    private readonly child: ChildProcess,
    private readonly w: ReturnType<typeof watch>,
    readonly file: string,
  ) {}

  /**
   * `tcpdump -i any -Q in` inside ns; resolves once tcpdump is listening. Not --immediate-mode:
   * with it libpcap uses TPACKET_V2, whose ring has fixed frames of the snapshot length (256 KiB),
   * so the 64 MiB buffer held only ~256 packets of both directions and a capture of a few hundred
   * packets lost some whenever tcpdump fell behind on a loaded machine. TPACKET_V3 packs packets
   * into the buffer by their size; they reach tcpdump when a block fills or its timeout passes,
   * and stop() waits for the sentinel to be seen.
   */
  static async start(lab: Lab, ns: Role | string, file: string): Promise<Capture> {
    const child = lab.spawn(ns, ['tcpdump', '-i', 'any', '-Q', 'in', '-n', '-q', '-l', '-U', '-B', '65536', '--print', '-w', file, 'ip or ip6 or arp']);
    const w = watch(child);
    await w.waitFor(/listening on/, 'err');
    return new Capture(lab, child, w, file);
  }

  /** Waits until every packet sent so far from cli has been seen (ARP sentinel), then SIGINT and wait for exit. */
  async stop(): Promise<string> {
    for (let i = 0; i < 100 && !/who-has 198\.18\.1\.253/.test(this.w.out); i++) {
      await this.lab.exec('cli', ['/usr/bin/python3', '-c', ARP_SENTINEL_PY], { check: true });
      for (let j = 0; j < 10 && !/who-has 198\.18\.1\.253/.test(this.w.out); j++) await sleep(20);
    }
    if (!/who-has 198\.18\.1\.253/.test(this.w.out)) throw new Error(`capture never saw the sentinel: ${this.w.err}`);
    await this.lab.kill(this.child, 'SIGINT');
    const dropped = /(\d+) packets? dropped by kernel/.exec(this.w.err);
    if (!dropped || dropped[1] !== '0') throw new Error(`capture ${this.file} incomplete: ${this.w.err}`);
    return this.w.out;
  }
}

// ---------------------------------------------------------------------------------------------
// nfqwall replay

export interface ReplayPacket {
  n: number;
  family: number;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  tcpFlags?: string;
  icmpType?: number;
  icmpCode?: number;
  ctstate: string;
  tcpState?: string;
  verdict: string;
}

export interface ReplayResult {
  packets: ReplayPacket[];
  table: CtEntry[];
  expect: string[];
  stderr: string;
}

export async function replay(lab: Lab, file: string, args: string[] = []): Promise<ReplayResult> {
  // runs in gw's namespace only because the lab refuses others; replay itself touches no network
  const r = await lab.exec('gw', ['node', NFQWALL, 'replay', '--json', '--table', '--expect', ...args, file], {
    cwd: ROOT,
    env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
  });
  if (r.code !== 0) throw new Error(`replay failed (${r.code}): ${r.stderr}`);
  const packets: ReplayPacket[] = [];
  const rest: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('{')) packets.push(JSON.parse(line) as ReplayPacket);
    else if (line.trim()) rest.push(line);
  }
  const table = rest.map(parseCtLine).filter((e): e is CtEntry => e !== null && !/^\S+\s+\d+\s+\d+\s+proto=/.test(e.line));
  const expect = rest.filter((l) => /^\d+\s+proto=/.test(l.trim()));
  return { packets, table, expect, stderr: r.stderr };
}

export function replayCtstateCounts(packets: ReplayPacket[]): CtStateCounts {
  const c = Object.fromEntries(CTSTATES.map((s) => [s, 0])) as CtStateCounts;
  for (const p of packets) if (isLabSource(p.src) && !isNeighbourDiscovery(p) && p.ctstate in c) c[p.ctstate as keyof CtStateCounts]++;
  return c;
}

/**
 * Neighbour caches filled on both links before the measured traffic (pings to the gateway's
 * own addresses, which cross no FORWARD rule), so that no first packet waits for neighbour
 * discovery long enough to be retransmitted in one lab and not in the other.
 */
export async function warmNeighbours(lab: Lab): Promise<void> {
  const A = LAB_ADDR;
  await lab.exec('cli', ['ping', '-c', '1', '-W', '2', A.gwCli4]);
  await lab.exec('cli', ['ping', '-6', '-c', '1', '-W', '2', A.gwCli6]);
  await lab.exec('srv', ['ping', '-c', '1', '-W', '2', A.gwSrv4]);
  await lab.exec('srv', ['ping', '-6', '-c', '1', '-W', '2', A.gwSrv6]);
}
