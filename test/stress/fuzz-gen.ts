/**
 * Packet generator and driver for fuzzing the whole pipeline (Firewall.processBatch):
 * shared by test/unit/fuzz-pipeline.test.ts (fast) and test/stress/fuzz-pipeline.test.ts
 * (≥ 10 M packets). Not a test file itself.
 *
 * The stream interleaves real flows (TCP handshakes with correct sequence numbers,
 * data, FIN/RST; UDP both ways; ICMP echo; FTP control connections announcing
 * PORT/PASV data connections so expectations exist) with garbage: random bytes,
 * bit flips, truncations, length-field lies, IPv6 extension-header chains, ICMP
 * errors embedding ICMP errors, TCP option garbage, zero windows, wscale > 14.
 * Time is fake and advances (sometimes by minutes) so timeouts and GC run.
 * Addresses only from 198.18.0.0/15 and 2001:2::/48.
 */
import { Firewall, type RuleEvaluator } from '../../src/pipeline/firewall';
import { loadRuleText } from '../../src/pipeline/load-rules';
import { defaultTunables, type TunableValues } from '../../src/conntrack/sysctl';
import { checkConntrack } from '../../src/conntrack/check';
import {
  INDEX_STRIDE,
  IX_CAPLEN,
  IX_FAMILY,
  IX_FLAGS,
  IX_HOOK,
  IX_INDEV,
  IX_MARK,
  IX_OFFSET,
  IX_ORIGLEN,
  IX_OUTDEV,
  NF_ACCEPT,
  NF_DROP,
  NF_INET_FORWARD,
  NF_INET_LOCAL_IN,
  NF_INET_LOCAL_OUT,
  PKTF_CSUM_NOT_READY,
  PKTF_TRUNCATED,
} from '../../src/queue/layout';
import type { Batch } from '../../src/queue/queue';
import type { PacketContext } from '../../src/conntrack/context';
import { HELPER_FTP } from '../../src/conntrack/helpers/registry';
import { icmp, icmpError, icmpv6, ipv4, ipv6, tcp, udp, udplite, type Ipv6Ext, type TcpOptions } from '../helpers/packets';
import { IPS_ASSURED } from '../../src/conntrack/constants';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';

export class Rng {
  constructor(public s: number) {
    if (this.s === 0) this.s = 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
}

/** ifindex → name, as the gateway.rules interfaces */
export const IFNAMES: Record<number, string> = { 1: 'lo', 2: 'lan0', 3: 'wan0', 4: 'dmz0' };
const LAN = 2;
const WAN = 3;
const DMZ = 4;

/** One packet to feed: bytes plus queue metadata. */
export interface FuzzPacket {
  bytes: Uint8Array;
  hook: number;
  family: number;
  indev: number;
  outdev: number;
  flags: number;
  /** caplen < bytes.length: the queue copied only a prefix */
  caplen?: number;
}

interface TcpFlow {
  kind: 'tcp';
  v6: boolean;
  c: string;
  s: string;
  cp: number;
  sp: number;
  cseq: number;
  sseq: number;
  stage: number; // 0 none, 1 SYN sent, 2 SYN-ACK, 3 established, 4 closing, 5 done
  cin: number; // client side ifindex
  sin: number; // server side ifindex
  ftp: boolean;
}
interface UdpFlow {
  kind: 'udp' | 'icmp';
  v6: boolean;
  c: string;
  s: string;
  cp: number;
  sp: number;
  cin: number;
  sin: number;
  n: number;
}
type Flow = TcpFlow | UdpFlow;

const v4 = (r: Rng, net: number): string => `198.${18 + (net >> 8)}.${net & 0xff}.${1 + r.below(250)}`;
const v6a = (r: Rng, net: number): string => `2001:2:0:${net.toString(16)}::${(1 + r.below(0xfffe)).toString(16)}`;

export class Generator {
  private flows: Flow[] = [];
  /** recent valid packets, for ICMP errors about them and for mutation */
  private recent: FuzzPacket[] = [];

  /** 'attack': only new spoofed SYN/UDP flows; 'flows': only real flows, many new ones (fills the table with ASSURED entries → table full) */
  phase: 'mix' | 'flows' | 'attack' = 'mix';

  constructor(readonly r: Rng) {}

  private pickSides(v6: boolean): { c: string; s: string; cin: number; sin: number; sp: number } {
    const r = this.r;
    const w = r.below(4);
    if (w === 0) {
      // internet → DMZ web/mail/ftp server
      const sp = [80, 443, 25, 21, 21][r.below(5)];
      const srv =
        sp === 21 ? (v6 ? '2001:2:0:20::30' : '198.18.20.30') : sp === 25 ? (v6 ? '2001:2:0:20::20' : '198.18.20.20') : v6 ? '2001:2:0:20::10' : '198.18.20.10';
      return { c: v6 ? v6a(r, 0x100 + r.below(4)) : v4(r, 0x100 + r.below(4)), s: srv, cin: WAN, sin: DMZ, sp };
    }
    // LAN → internet (a few client hosts, many ports: per-source counts matter)
    const host = r.below(6);
    return {
      c: v6 ? `2001:2:0:10::${host + 1}` : `198.18.10.${host + 1}`,
      s: v6 ? v6a(r, 0x200 + r.below(4)) : v4(r, 0x100 + r.below(8)),
      cin: LAN,
      sin: WAN,
      sp: [80, 443, 53, 123, 22, 8080, 21][r.below(7)],
    };
  }

  private newFlow(): Flow {
    const r = this.r;
    const v6 = r.chance(0.3);
    const sd = this.pickSides(v6);
    const cp = 1024 + r.below(64000);
    const k = r.below(10);
    if (k < 6 && sd.sp !== 53 && sd.sp !== 123) {
      return { kind: 'tcp', v6, ...sd, cp, cseq: r.next(), sseq: r.next(), stage: 0, ftp: sd.sp === 21 };
    }
    return { kind: k < 9 ? 'udp' : 'icmp', v6, ...sd, cp, n: 0 };
  }

  private ip(f: { v6: boolean }, src: string, dst: string, l4: Uint8Array): Uint8Array {
    return f.v6 ? ipv6({ src, dst }, l4) : ipv4({ src, dst, id: this.r.below(65536) }, l4);
  }

  private pkt(f: Flow, fromClient: boolean, bytes: Uint8Array): FuzzPacket {
    const toGw = (fromClient ? f.s : f.c).endsWith('.1') && this.r.chance(0.02);
    return {
      bytes,
      hook: toGw ? NF_INET_LOCAL_IN : NF_INET_FORWARD,
      family: f.v6 ? 6 : 4,
      indev: fromClient ? f.cin : f.sin,
      outdev: toGw ? 0 : fromClient ? f.sin : f.cin,
      flags: 0,
    };
  }

  /** The next packet of a real flow (advances its state). */
  private flowPacket(f: Flow): FuzzPacket {
    const r = this.r;
    if (f.kind !== 'tcp') {
      const fromClient = f.n === 0 || r.chance(0.5);
      f.n++;
      if (f.kind === 'icmp') {
        const l4 = f.v6 ? icmpv6({ type: fromClient ? 128 : 129, id: f.cp, seq: f.n }) : icmp({ type: fromClient ? 8 : 0, id: f.cp, seq: f.n });
        return this.pkt(f, fromClient, this.ip(f, fromClient ? f.c : f.s, fromClient ? f.s : f.c, l4));
      }
      const payload = r.bytes(r.below(40));
      const l4 = r.chance(0.05)
        ? udplite({ sport: fromClient ? f.cp : f.sp, dport: fromClient ? f.sp : f.cp, payload })
        : udp({ sport: fromClient ? f.cp : f.sp, dport: fromClient ? f.sp : f.cp, payload });
      return this.pkt(f, fromClient, this.ip(f, fromClient ? f.c : f.s, fromClient ? f.s : f.c, l4));
    }
    let fromClient = true;
    let flags = 'A';
    let payload: Uint8Array | string = new Uint8Array(0);
    let options: TcpOptions | undefined;
    let window = 29200;
    switch (f.stage) {
      case 0:
        flags = 'S';
        options = { mss: 1460, sackPerm: true, timestamp: [r.next(), 0], wscale: r.chance(0.05) ? 15 + r.below(200) : r.below(15) };
        f.stage = 1;
        break;
      case 1:
        fromClient = false;
        flags = 'SA';
        options = { mss: 1400, sackPerm: true, wscale: r.below(15) };
        f.stage = 2;
        break;
      case 2:
        f.stage = 3;
        break;
      case 3: {
        fromClient = r.chance(0.5);
        flags = r.chance(0.3) ? 'PA' : 'A';
        if (f.ftp && r.chance(0.4)) {
          if (fromClient) {
            const ip = f.c.split('.');
            payload = f.v6 ? `EPRT |2|${f.c}|${1024 + r.below(60000)}|\r\n` : `PORT ${ip.join(',')},${r.below(256)},${r.below(256)}\r\n`;
          } else {
            payload = f.v6
              ? `229 Entering Extended Passive Mode (|||${1024 + r.below(60000)}|)\r\n`
              : `227 Entering Passive Mode (198,18,20,30,${r.below(256)},${r.below(256)}).\r\n`;
          }
        } else if (r.chance(0.5)) payload = r.bytes(1 + r.below(200));
        if (r.chance(0.03)) window = 0; // zero window
        if (r.chance(0.03)) options = { raw: r.bytes(1 + r.below(30)) }; // option garbage
        if (r.chance(0.01))
          options = {
            sack: [
              [r.next(), r.next()],
              [r.next(), r.next()],
            ],
          };
        if (r.chance(0.05)) f.stage = 4;
        break;
      }
      case 4:
        fromClient = r.chance(0.5);
        flags = r.chance(0.15) ? 'R' : 'FA';
        if (r.chance(0.5)) f.stage = 5;
        break;
      default:
        fromClient = r.chance(0.5);
        flags = r.chance(0.5) ? 'A' : 'R';
    }
    const seq = fromClient ? f.cseq : f.sseq;
    const ack = fromClient ? f.sseq : f.cseq;
    const plen = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    const l4 = tcp({
      sport: fromClient ? f.cp : f.sp,
      dport: fromClient ? f.sp : f.cp,
      seq,
      ack: flags.includes('A') ? ack : 0,
      flags,
      window,
      options,
      payload,
    });
    const adv = plen + (flags.includes('S') || flags.includes('F') ? 1 : 0);
    if (fromClient) f.cseq = (f.cseq + adv) >>> 0;
    else f.sseq = (f.sseq + adv) >>> 0;
    return this.pkt(f, fromClient, this.ip(f, fromClient ? f.c : f.s, fromClient ? f.s : f.c, l4));
  }

  /** An IPv6 packet behind a random extension-header chain. */
  private extChain(): FuzzPacket {
    const r = this.r;
    const exts: Ipv6Ext[] = [];
    const n = r.below(8);
    for (let i = 0; i < n; i++) {
      const t = [0, 43, 60, 44, 51][r.below(5)] as 0 | 43 | 60 | 44 | 51;
      if (t === 44) exts.push({ type: 44, fragOffset: r.chance(0.7) ? 0 : 8 * r.below(100), more: r.chance(0.5), id: r.next() });
      else if (t === 51) exts.push({ type: 51, bytes: 12 + 4 * r.below(4) });
      else exts.push({ type: t, bytes: 8 * (1 + r.below(4)) });
      if (r.chance(0.05)) exts[exts.length - 1].next = r.below(256); // lie about what follows
    }
    const l4 = r.chance(0.5) ? tcp({ sport: 1024 + r.below(60000), dport: 80 }) : udp({ sport: 1024 + r.below(60000), dport: 53 });
    return {
      bytes: ipv6({ src: '2001:2:0:100::7', dst: '2001:2:0:20::10', extHeaders: exts }, l4),
      hook: NF_INET_FORWARD,
      family: 6,
      indev: WAN,
      outdev: DMZ,
      flags: 0,
    };
  }

  /** ICMP errors about recent packets, sometimes nested (errors embedding errors). */
  private icmpErr(): FuzzPacket | undefined {
    const r = this.r;
    const base = this.recent[r.below(this.recent.length)];
    if (!base) return undefined;
    let inner = base.bytes;
    const depth = 1 + r.below(3);
    const v6 = base.family === 6;
    for (let i = 0; i < depth; i++) {
      if (r.chance(0.3)) inner = inner.slice(0, r.below(inner.length + 1)); // truncated quote
      const type = v6 ? [1, 2, 3, 4][r.below(4)] : [3, 4, 5, 11, 12][r.below(5)];
      const err = icmpError(type, r.below(16), inner);
      inner = v6 ? ipv6({ src: '2001:2:0:100::fe', dst: '2001:2:0:10::1' }, err) : ipv4({ src: '198.19.0.254', dst: '198.18.10.1' }, err);
    }
    return { bytes: inner, hook: NF_INET_FORWARD, family: base.family, indev: base.outdev || WAN, outdev: base.indev, flags: 0 };
  }

  /** Damage a packet: bit flips, truncation, length-field lies, random tail. */
  private mutate(p: FuzzPacket): FuzzPacket {
    const r = this.r;
    let b = p.bytes.slice();
    const ops = 1 + r.below(3);
    for (let i = 0; i < ops; i++) {
      const k = r.below(7);
      if (b.length === 0) break;
      if (k <= 1) {
        const flips = 1 + r.below(8);
        for (let j = 0; j < flips; j++) b[r.below(b.length)] ^= 1 << r.below(8);
      } else if (k === 2) {
        b = b.slice(0, r.below(b.length + 1));
      } else if (k === 3 && b.length >= 8) {
        // IPv4 total length / IHL or IPv6 payload length lie
        if (b[0] >> 4 === 4) {
          if (r.chance(0.5)) {
            const v = r.below(65536);
            b[2] = v >> 8;
            b[3] = v & 0xff;
          } else b[0] = 0x40 | r.below(16);
        } else {
          const v = r.below(65536);
          b[4] = v >> 8;
          b[5] = v & 0xff;
        }
      } else if (k === 4) {
        // L4 length lies: UDP length, TCP data offset (after a 20/40-byte IP header)
        const l4 = b[0] >> 4 === 6 ? 40 : (b[0] & 0xf) * 4;
        if (l4 + 13 < b.length) {
          if (r.chance(0.5)) b[l4 + 12] = (r.below(16) << 4) | (b[l4 + 12] & 0xf);
          else {
            b[l4 + 4] = r.below(256);
            b[l4 + 5] = r.below(256);
          }
        }
      } else if (k === 5) {
        const tail = r.bytes(r.below(64));
        const nb = new Uint8Array(b.length + tail.length);
        nb.set(b);
        nb.set(tail, b.length);
        b = nb;
      } else {
        b[r.below(b.length)] = r.below(256);
      }
    }
    return { ...p, bytes: b };
  }

  /** The next packet of the stream. */
  next(): FuzzPacket {
    const r = this.r;
    const k = this.phase === 'flows' ? r.below(55) : this.phase === 'attack' ? 94 + r.below(6) : r.below(100);
    let p: FuzzPacket | undefined;
    if (k < 55) {
      if (this.flows.length < 8 || r.chance(this.phase === 'flows' ? 0.25 : 0.08)) {
        const f = this.newFlow();
        if (this.flows.length >= 400) this.flows[r.below(this.flows.length)] = f;
        else this.flows.push(f);
      }
      const f = this.flows[r.below(this.flows.length)];
      p = this.flowPacket(f);
      if (f.kind === 'tcp' && f.stage === 5 && r.chance(0.2)) this.flows.splice(this.flows.indexOf(f), 1);
      if (this.recent.length < 64) this.recent.push(p);
      else this.recent[r.below(64)] = p;
    } else if (k < 75) {
      const base = this.recent[r.below(this.recent.length)];
      p = base ? this.mutate(base) : undefined;
    } else if (k < 82) {
      p = this.icmpErr();
    } else if (k < 88) {
      p = this.extChain();
    } else if (k < 94) {
      // pure garbage, IPv4- or IPv6-looking
      const b = r.bytes(r.below(120));
      if (b.length > 0 && r.chance(0.7)) b[0] = r.chance(0.5) ? 0x45 : 0x60;
      p = { bytes: b, hook: NF_INET_FORWARD, family: r.chance(0.5) ? 4 : 6, indev: WAN, outdev: LAN, flags: 0 };
    } else {
      // unrelated SYN / UDP from a spoofed source: new entries to fill the table
      const v6 = r.chance(0.3);
      const src = v6 ? v6a(r, 0x100 + r.below(200)) : v4(r, 0x100 + r.below(200));
      const dst = v6 ? '2001:2:0:20::10' : '198.18.20.10';
      const l4 = r.chance(0.5) ? tcp({ sport: 1024 + r.below(60000), dport: 80, seq: r.next() }) : udp({ sport: 1024 + r.below(60000), dport: 53 });
      p = { bytes: v6 ? ipv6({ src, dst }, l4) : ipv4({ src, dst }, l4), hook: NF_INET_FORWARD, family: v6 ? 6 : 4, indev: WAN, outdev: DMZ, flags: 0 };
    }
    if (!p) return this.next();
    if (r.chance(0.03)) p = { ...p, flags: p.flags | PKTF_CSUM_NOT_READY };
    if (r.chance(0.02)) p = { ...p, hook: NF_INET_LOCAL_OUT, indev: 0, outdev: p.outdev || WAN, flags: p.flags | PKTF_CSUM_NOT_READY };
    if (r.chance(0.02) && p.bytes.length > 1) p = { ...p, caplen: r.below(p.bytes.length), flags: p.flags | PKTF_TRUNCATED };
    return p;
  }
}

/** Rules that decide at random: raw drop / notrack / helper ftp, filter drop (exercises abort). */
export function randomRules(r: Rng): RuleEvaluator {
  return {
    evalRaw(ctx: PacketContext) {
      const k = r.below(100);
      if (k < 2) return NF_DROP;
      if (k < 5) ctx.notrack = 1;
      else if (ctx.view.sport === 21 || ctx.view.dport === 21) ctx.helper = HELPER_FTP;
      else if (k < 32) ctx.helper = HELPER_FTP;
      return NF_ACCEPT;
    },
    evalFilter() {
      return r.below(100) < 10 ? NF_DROP : NF_ACCEPT;
    },
  };
}

export function acceptAllRules(): RuleEvaluator {
  return { evalRaw: () => NF_ACCEPT, evalFilter: () => NF_ACCEPT };
}

/** rules/gateway.rules with fake interface names and a REJECT that sends nothing. */
export function gatewayRules(): RuleEvaluator {
  const file = path.join(__dirname, '../../rules/gateway.rules');
  const res = loadRuleText(fs.readFileSync(file, 'utf8'), file, {
    log: () => {},
    ifname: (i) => IFNAMES[i],
    linkGeneration: () => 1,
    reject: () => {},
  });
  if (!res.rules) throw new Error(`gateway.rules: ${res.errors.join('\n')}`);
  return res.rules;
}

export interface FuzzConfig {
  seed: number;
  packets: number;
  rules: 'accept' | 'random' | 'gateway';
  max: number;
  buckets: number;
  checksum: 0 | 1;
  perSourceMax: number;
  /** run the checker every this many batches */
  checkEvery: number;
  /** Conntrack.prefetchMinEntries (0: pre-touch every batch; default: the Conntrack's) */
  prefetchMinEntries?: number;
}

export interface FuzzResult {
  packets: number;
  accepted: number;
  dropped: number;
  maxCount: number;
  stats: Record<string, number>;
  assuredSeen: number;
  expectMaxSeen: number;
  logs: { warn: number; suppressed: number; tableFull: number };
}

const BATCH = 64;
const SLAB = BATCH * 2048;

export class FuzzFailure extends Error {
  constructor(
    msg: string,
    readonly packets: FuzzPacket[],
    readonly now: number,
  ) {
    super(msg);
  }
}

function makeTunables(cfg: FuzzConfig): TunableValues {
  const t = defaultTunables(2048 * 1024 * 1024);
  t.nf_conntrack_max = cfg.max;
  t.nf_conntrack_buckets = cfg.buckets;
  t.nf_conntrack_expect_max = 8;
  t.nf_conntrack_checksum = cfg.checksum;
  t.per_source_max = cfg.perSourceMax;
  t.nf_conntrack_log_invalid = 255;
  return t;
}

export function makeFirewall(cfg: FuzzConfig, r: Rng): { fw: Firewall; logs: { warn: number; suppressed: number; tableFull: number } } {
  const logs = { warn: 0, suppressed: 0, tableFull: 0 };
  const log = {
    warn: (m: string) => {
      logs.warn++;
      if (m.includes('callbacks suppressed')) logs.suppressed++;
      if (m === 'nf_conntrack: table full, dropping packet') logs.tableFull++;
    },
    info: () => {},
    debug: () => {},
  };
  const rules = cfg.rules === 'accept' ? acceptAllRules() : cfg.rules === 'random' ? randomRules(new Rng(r.next())) : gatewayRules();
  // seeded hash keys: a run is reproducible from its seed
  const keyRng = new Rng(r.next());
  const fw = new Firewall({ tun: makeTunables(cfg), rules, log, random: (b) => b.set(keyRng.bytes(b.length)) });
  if (cfg.prefetchMinEntries !== undefined) fw.ct.prefetchMinEntries = cfg.prefetchMinEntries;
  return { fw, logs };
}

/** Feed `packets` into one batch and decide it; throws FuzzFailure on a broken invariant. */
export function runBatch(fw: Firewall, batch: Batch, packets: FuzzPacket[], now: number): void {
  let off = 0;
  for (let i = 0; i < packets.length; i++) {
    const p = packets[i];
    const row = i * INDEX_STRIDE;
    const cap = Math.min(p.caplen ?? p.bytes.length, p.bytes.length, 2048);
    batch.data.set(p.bytes.subarray(0, cap), off);
    // garbage after the packet in the slab: the parser must not read past caplen
    if (off + cap < batch.data.length) batch.data[off + cap] = 0x45;
    batch.index[row + IX_OFFSET] = off;
    batch.index[row + IX_CAPLEN] = cap;
    batch.index[row + IX_ORIGLEN] = p.bytes.length;
    batch.index[row + IX_HOOK] = p.hook;
    batch.index[row + IX_FAMILY] = p.family === 6 ? 10 : 2;
    batch.index[row + IX_INDEV] = p.indev;
    batch.index[row + IX_OUTDEV] = p.outdev;
    batch.index[row + IX_MARK] = 0;
    batch.index[row + IX_FLAGS] = p.flags;
    off += cap + 1;
  }
  batch.count = packets.length;
  batch.verdicts.fill(0xdeadbeef);
  const before = sum(fw.packets);
  try {
    fw.processBatch(batch, now);
  } catch (err) {
    throw new FuzzFailure(`exception: ${(err as Error).stack}`, packets, now);
  }
  for (let i = 0; i < packets.length; i++) {
    const v = batch.verdicts[i];
    if (v !== NF_ACCEPT && v !== NF_DROP) throw new FuzzFailure(`packet ${i}: verdict ${v}`, packets, now);
  }
  for (let i = packets.length; i < BATCH; i++) {
    if (batch.verdicts[i] !== 0xdeadbeef) throw new FuzzFailure(`verdict written beyond the batch at ${i}`, packets, now);
  }
  if (sum(fw.packets) - before !== packets.length)
    throw new FuzzFailure(`counted ${sum(fw.packets) - before} verdicts for ${packets.length} packets`, packets, now);
}

function sum(a: Float64Array): number {
  let s = 0;
  for (const x of a) s += x;
  return s;
}

export function newBatch(): Batch {
  return {
    queue: 0,
    count: 0,
    data: new Uint8Array(SLAB),
    index: new Uint32Array(BATCH * INDEX_STRIDE),
    verdicts: new Uint32Array(BATCH),
    marks: new Uint32Array(BATCH),
  };
}

/** Run one configuration. Throws FuzzFailure (with the batch that broke it). */
export function fuzz(cfg: FuzzConfig): FuzzResult {
  const r = new Rng(cfg.seed);
  const gen = new Generator(new Rng(r.next()));
  const { fw, logs } = makeFirewall(cfg, r);
  const batch = newBatch();
  let now = 1000;
  let done = 0;
  let batches = 0;
  let maxCount = 0;
  let assuredSeen = 0;
  let expectMaxSeen = 0;
  const pk: FuzzPacket[] = [];
  while (done < cfg.packets) {
    pk.length = 0;
    const n = Math.min(1 + r.below(BATCH), cfg.packets - done);
    for (let i = 0; i < n; i++) pk.push(gen.next());
    runBatch(fw, batch, pk, now);
    done += n;
    batches++;
    // alternate between the garbage-heavy mix and phases of real flows only
    if (r.chance(0.02)) gen.phase = gen.phase === 'mix' ? 'flows' : gen.phase === 'flows' ? 'attack' : 'mix';
    if (fw.ct.count > maxCount) maxCount = fw.ct.count;
    if (fw.ct.expectations.count > expectMaxSeen) expectMaxSeen = fw.ct.expectations.count;
    // fake time: mostly milliseconds, sometimes seconds, rarely minutes/hours
    const t = r.below(1000);
    now += t < 900 ? r.below(20) : t < 990 ? r.below(5000) : r.below(3_600_000);
    if (r.chance(0.3)) fw.tick(now, 1 + r.below(256));
    if (batches % cfg.checkEvery === 0) {
      for (let e = 0; e < fw.ct.table.highWater; e++) if (fw.ct.table.isAlloc(e) && fw.ct.table.status(e) & IPS_ASSURED) assuredSeen++;
      const problems = checkConntrack(fw.ct);
      if (problems.length > 0) throw new FuzzFailure(`checker after batch ${batches}:\n  ${problems.join('\n  ')}`, pk.slice(), now);
    }
  }
  const problems = checkConntrack(fw.ct);
  if (problems.length > 0) throw new FuzzFailure(`checker at the end:\n  ${problems.join('\n  ')}`, pk.slice(), now);
  return {
    packets: done,
    accepted: fw.packets.reduce((s, x, i) => (i & 1 ? s + x : s), 0),
    dropped: fw.packets.reduce((s, x, i) => (i & 1 ? s : s + x), 0),
    maxCount,
    stats: { ...fw.ct.stats },
    assuredSeen,
    expectMaxSeen,
    logs,
  };
}

/** Save a failing batch as test/fixtures/fuzz-<hash>.json (replayed by the unit fuzz test). */
export function saveFixture(cfg: FuzzConfig, f: FuzzFailure): string {
  const body = {
    config: cfg,
    message: f.message.split('\n')[0],
    now: f.now,
    packets: f.packets.map((p) => ({ ...p, bytes: Buffer.from(p.bytes).toString('hex') })),
  };
  const text = JSON.stringify(body, null, 1);
  const name = `fuzz-${createHash('sha256').update(text).digest('hex').slice(0, 12)}.json`;
  const file = path.join(__dirname, '../fixtures', name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text + '\n');
  return file;
}

export interface Fixture {
  config: FuzzConfig;
  now: number;
  packets: Array<Omit<FuzzPacket, 'bytes'> & { bytes: string }>;
}

/** Replay a saved fixture on a fresh firewall of its configuration: throws if it still breaks. */
export function replayFixture(fx: Fixture): void {
  const r = new Rng(fx.config.seed);
  const { fw } = makeFirewall({ ...fx.config, rules: fx.config.rules === 'random' ? 'accept' : fx.config.rules }, r);
  const batch = newBatch();
  const pk = fx.packets.map((p) => ({ ...p, bytes: new Uint8Array(Buffer.from(p.bytes, 'hex')) }));
  // twice: into an empty table, then again with the entries the first pass created
  runBatch(fw, batch, pk, fx.now);
  runBatch(fw, batch, pk, fx.now + 1);
  const problems = checkConntrack(fw.ct);
  if (problems.length > 0) throw new Error(problems.join('\n'));
}
