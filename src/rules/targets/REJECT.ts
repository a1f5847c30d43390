/**
 * -j REJECT: libipt_REJECT.c / libip6t_REJECT.c options; the reply is built like the
 * kernel's nf_reject_ipv4.c (nf_send_reset, nf_send_unreach → icmp_send) and
 * nf_reject_ipv6.c (nf_send_reset6, nf_send_unreach6 → icmpv6_send), then the packet
 * is dropped. Building (pure, unit-testable) and sending (raw sockets) are separate.
 */
import type { CompiledTarget, Family, TargetModule, TargetServices } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { NF_DROP, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, PKTF_CSUM_NOT_READY, PKTF_CSUM_VERIFIED, PKTF_TRUNCATED } from '../../queue/layout';
import { addrToString, formatIp4 } from '../../packet/format';
import { get16, get32, put16, put32 } from '../../packet/bytes';
import { foldSum, internetChecksum, l4Checksum, pseudoSum, sumBytes } from '../../packet/checksum';
import { NR_ICMP_TYPES, isIcmpError } from '../../packet/icmp';
import { IcmpRateLimiter, Ipv6RoutePrefix, readIcmpLimits } from './icmp-ratelimit';

/** Reject kinds (numbers handed to the reject callback). */
export const RJ_TCP_RESET = 0;
export const RJ_ICMP_NET_UNREACHABLE = 1;
export const RJ_ICMP_HOST_UNREACHABLE = 2;
export const RJ_ICMP_PROT_UNREACHABLE = 3;
export const RJ_ICMP_PORT_UNREACHABLE = 4;
export const RJ_ICMP_NET_PROHIBITED = 5;
export const RJ_ICMP_HOST_PROHIBITED = 6;
export const RJ_ICMP_ADMIN_PROHIBITED = 7;
export const RJ_ICMP6_NO_ROUTE = 8;
export const RJ_ICMP6_ADM_PROHIBITED = 9;
export const RJ_ICMP6_ADDR_UNREACH = 10;
export const RJ_ICMP6_PORT_UNREACH = 11;
export const RJ_ICMP6_POLICY_FAIL = 12;
export const RJ_ICMP6_REJECT_ROUTE = 13;

/** ICMP (v4: type 3) or ICMPv6 (type 1) code per kind; -1 for tcp-reset. */
export const REJECT_CODE: readonly number[] = [-1, 0, 1, 2, 3, 9, 10, 13, 0, 1, 3, 4, 5, 6];

/** Long names as iptables-save / ip6tables-save print them. */
export const REJECT_NAMES: readonly string[] = [
  'tcp-reset',
  'icmp-net-unreachable',
  'icmp-host-unreachable',
  'icmp-proto-unreachable',
  'icmp-port-unreachable',
  'icmp-net-prohibited',
  'icmp-host-prohibited',
  'icmp-admin-prohibited',
  'icmp6-no-route',
  'icmp6-adm-prohibited',
  'icmp6-addr-unreachable',
  'icmp6-port-unreachable',
  'icmp6-policy-fail',
  'icmp6-reject-route',
];

/** name → [kind for IPv4 or -1, kind for IPv6 or -1] (aliases of both tools). */
const REJECT_WITH: Record<string, [number, number]> = {
  'icmp-net-unreachable': [1, -1],
  'net-unreach': [1, -1],
  'icmp-host-unreachable': [2, -1],
  'host-unreach': [2, -1],
  'icmp-proto-unreachable': [3, -1],
  'proto-unreach': [3, -1],
  'icmp-port-unreachable': [4, -1],
  'icmp-net-prohibited': [5, -1],
  'net-prohib': [5, -1],
  'icmp-host-prohibited': [6, -1],
  'host-prohib': [6, -1],
  'icmp-admin-prohibited': [7, -1],
  'admin-prohib': [7, -1],
  'icmp6-no-route': [-1, 8],
  'no-route': [-1, 8],
  'icmp6-adm-prohibited': [-1, 9],
  'adm-prohibited': [-1, 9],
  'icmp6-addr-unreachable': [-1, 10],
  'addr-unreach': [-1, 10],
  'icmp6-port-unreachable': [-1, 11],
  'icmp6-policy-fail': [-1, 12],
  'policy-fail': [-1, 12],
  'icmp6-reject-route': [-1, 13],
  'reject-route': [-1, 13],
  'port-unreach': [4, 11],
  'tcp-reset': [0, 0],
  'tcp-rst': [0, 0],
};

export interface RejectState {
  /** kind for IPv4 / IPv6 packets (-1: the rule cannot apply to that family) */
  v4: number;
  v6: number;
  /** the name as written (null = default) */
  name: string | null;
}

export const rejectTarget: TargetModule<RejectState> = {
  name: 'REJECT',
  tables: ['filter'],
  options: [{ name: 'reject-with', invertible: false, args: 1 }],
  create: () => ({ v4: RJ_ICMP_PORT_UNREACHABLE, v6: RJ_ICMP6_PORT_UNREACH, name: null }),
  parse(s, _opt, args, _inv, optTok, env) {
    if (s.name !== null) return env.error(optTok, '--reject-with given twice');
    const k = REJECT_WITH[args[0].text];
    if (!k) return env.error(args[0], `unknown --reject-with type "${args[0].text}"`);
    s.v4 = k[0];
    s.v6 = k[1];
    s.name = args[0].text;
  },
  finalize(s, rule, at, env) {
    // reject_tg_check: TCP RST only for -p tcp (not negated).
    if (s.v4 === RJ_TCP_RESET && (rule.proto !== 6 || rule.protoInv)) env.error(at, 'REJECT --reject-with tcp-reset needs "-p tcp"');
  },
  familyOf(s): Family {
    if (s.v4 < 0) return 6;
    if (s.v6 < 0) return 4;
    return 0;
  },
  save(s, family) {
    if (s.name === null) {
      if (family === 4) return ['--reject-with', REJECT_NAMES[s.v4]];
      if (family === 6) return ['--reject-with', REJECT_NAMES[s.v6]];
      return [];
    }
    if (s.v4 === RJ_TCP_RESET) return ['--reject-with', 'tcp-reset'];
    if (s.v4 >= 0 && s.v6 >= 0) {
      if (family === 4) return ['--reject-with', REJECT_NAMES[s.v4]];
      if (family === 6) return ['--reject-with', REJECT_NAMES[s.v6]];
      return ['--reject-with', 'port-unreach'];
    }
    return ['--reject-with', REJECT_NAMES[s.v4 >= 0 ? s.v4 : s.v6]];
  },
  compile: (s, env) => new RejectAction(s.v4, s.v6, env.services),
};

/** Sends the reply (through the services' sender, which may decide to send nothing), then drops. */
class RejectAction implements CompiledTarget {
  constructor(
    private readonly v4: number,
    private readonly v6: number,
    private readonly services: TargetServices,
  ) {}
  run(ctx: PacketContext): number {
    this.services.reject(ctx.family === 6 ? this.v6 : this.v4, ctx);
    return NF_DROP;
  }
}

// ---------------------------------------------------------------------------
// Building

const IP_DEFAULT_TTL = 64;
const IPV6_DEFAULT_HOPLIMIT = 64;
/** icmp_send: the error fits in 576 bytes (IP header 20 + ICMP header 8 + quote). */
const ICMP_QUOTE_MAX = 576 - 20 - 8;
/** icmp6_send: IPV6_MIN_MTU - ipv6 header - icmp6 header. */
const ICMP6_QUOTE_MAX = 1280 - 40 - 8;

function isV4Broadcast(a: number): boolean {
  return a === 0xffffffff;
}
function isV4Multicast(a: number): boolean {
  return a >>> 28 === 0xe;
}
function isV6Multicast(w: ArrayLike<number>): boolean {
  return w[0] >>> 24 === 0xff;
}
function isV6Unspecified(w: ArrayLike<number>): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0;
}

/** Bytes of the original IP packet present in the buffer. */
function captured(ctx: PacketContext): number {
  const v = ctx.view;
  return Math.max(0, Math.min(v.buf.length - v.off, v.len, v.ipTotalLen || v.len));
}

/** Whether the L4 checksum of the original can be (and has to be) verified, as nf_ip_checksum would. */
function canVerify(ctx: PacketContext): boolean {
  const v = ctx.view;
  return (
    (ctx.pktFlags & (PKTF_CSUM_NOT_READY | PKTF_CSUM_VERIFIED | PKTF_TRUNCATED)) === 0 && ctx.hook !== NF_INET_LOCAL_OUT && v.off + v.ipTotalLen <= v.buf.length
  );
}

/**
 * nf_reject_verify_csum + nf_ip_checksum / nf_ip6_checksum: true when the original's
 * checksum is fine or not checked.
 */
function l4ChecksumOk(ctx: PacketContext, proto: number, l4off: number, l4len: number): boolean {
  if (!canVerify(ctx)) return true;
  const v = ctx.view;
  const b = v.buf;
  if (proto === 17) {
    if (l4len < 8) return true;
    if (get16(b, l4off + 6) === 0) return true; // optional UDP checksum not used (IPv4)
  } else if (proto === 58 || proto === 136 || proto === 51 || proto === 50 || proto === 132 || proto === 47) {
    return true;
  } else if (proto !== 6 && proto !== 1) {
    return true;
  }
  const sum = proto === 1 ? 0 : pseudoSum(ctx.family, v.src, v.dst, proto, l4len);
  return foldSum(sumBytes(b, l4off, l4len, sum)) === 0xffff;
}

/** nf_send_reset: the TCP RST (IPv4) answering ctx's packet, or null when none is sent. */
export function buildTcpReset4(ctx: PacketContext): Uint8Array | null {
  const v = ctx.view;
  const b = v.buf;
  const ip = v.off;
  if (v.fragOffset !== 0 || v.proto !== 6) return null;
  const ihl = (b[ip] & 0x0f) * 4;
  const th = ip + ihl;
  if (captured(ctx) < ihl + 20) return null;
  const flags = b[th + 13];
  if (flags & 0x04) return null; // no RST for RST
  const totLen = v.ipTotalLen;
  if (!l4ChecksumOk(ctx, 6, th, totLen - ihl)) return null;
  const saddr = get32(b, ip + 12);
  const daddr = get32(b, ip + 16);
  if (isV4Broadcast(daddr) || isV4Multicast(daddr)) return null;
  const doff = (b[th + 12] >>> 4) * 4;
  const out = new Uint8Array(40);
  out[0] = 0x45;
  out[1] = 0;
  put16(out, 2, 40);
  put16(out, 4, 0);
  put16(out, 6, 0x4000); // DF
  out[8] = IP_DEFAULT_TTL;
  out[9] = 6;
  put32(out, 12, daddr);
  put32(out, 16, saddr);
  put16(out, 10, internetChecksum(out, 0, 20));
  const t = 20;
  put16(out, t, get16(b, th + 2));
  put16(out, t + 2, get16(b, th));
  let outFlags = 0x04;
  if (flags & 0x10) {
    put32(out, t + 4, get32(b, th + 8)); // seq = their ack
  } else {
    const payload = totLen - ihl - doff;
    const ack = (get32(b, th + 4) + (flags & 0x02 ? 1 : 0) + (flags & 0x01 ? 1 : 0) + payload) >>> 0;
    put32(out, t + 8, ack);
    outFlags |= 0x10;
  }
  out[t + 12] = 5 << 4;
  out[t + 13] = outFlags;
  put16(out, t + 16, l4Checksum(4, [daddr], [saddr], 6, out, t, 20));
  return out;
}

/** nf_send_unreach → icmp_send: the ICMP destination-unreachable (IPv4) or null. */
export function buildIcmpUnreach4(ctx: PacketContext, code: number): Uint8Array | null {
  const v = ctx.view;
  const b = v.buf;
  const ip = v.off;
  const have = captured(ctx);
  if (have < 20) return null;
  if (v.fragOffset !== 0) return null;
  const ihl = (b[ip] & 0x0f) * 4;
  const proto = b[ip + 9];
  const saddr = get32(b, ip + 12);
  const daddr = get32(b, ip + 16);
  if (isV4Broadcast(daddr) || isV4Multicast(daddr)) return null;
  if (saddr === 0 || isV4Broadcast(saddr) || isV4Multicast(saddr)) return null;
  if (proto === 1) {
    if (have < ihl + 1) return null;
    // icmp_send never answers an error, nor a type above NR_ICMP_TYPES
    const type = b[ip + ihl];
    if (type > NR_ICMP_TYPES || isIcmpError(type)) return null;
  }
  if (have >= ihl && !l4ChecksumOk(ctx, proto, ip + ihl, v.ipTotalLen - ihl)) return null;
  const quote = Math.min(have, ICMP_QUOTE_MAX);
  const total = 20 + 8 + quote;
  const out = new Uint8Array(total);
  out[0] = 0x45;
  out[1] = (b[ip + 1] & 0x1e) | 0xc0; // RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL
  put16(out, 2, total);
  out[8] = IP_DEFAULT_TTL;
  out[9] = 1;
  // Source: the original destination when it is ours (INPUT); otherwise 0 so the
  // kernel picks the outgoing interface's address (icmp_send with a non-local route).
  put32(out, 12, ctx.hook === NF_INET_LOCAL_IN ? daddr : 0);
  put32(out, 16, saddr);
  put16(out, 10, internetChecksum(out, 0, 20));
  out[20] = 3;
  out[21] = code;
  out.set(b.subarray(ip, ip + quote), 28);
  put16(out, 22, internetChecksum(out, 20, 8 + quote));
  return out;
}

/** nf_send_reset6: the TCP RST (IPv6) or null. */
export function buildTcpReset6(ctx: PacketContext): Uint8Array | null {
  const v = ctx.view;
  const b = v.buf;
  if (isV6Multicast(v.src) || isV6Unspecified(v.src) || isV6Multicast(v.dst) || isV6Unspecified(v.dst)) return null;
  if (v.proto !== 6 || v.fragOffset !== 0) return null;
  const th = v.l4off;
  const otcplen = v.off + v.ipTotalLen - th;
  if (otcplen < 20 || th + 20 > v.off + captured(ctx)) return null;
  const flags = b[th + 13];
  if (flags & 0x04) return null;
  if (!l4ChecksumOk(ctx, 6, th, otcplen)) return null;
  const doff = (b[th + 12] >>> 4) * 4;
  const out = new Uint8Array(60);
  out[0] = 0x60;
  put16(out, 4, 20);
  out[6] = 6;
  out[7] = IPV6_DEFAULT_HOPLIMIT;
  for (let i = 0; i < 4; i++) {
    put32(out, 8 + 4 * i, v.dst[i]);
    put32(out, 24 + 4 * i, v.src[i]);
  }
  const t = 40;
  put16(out, t, get16(b, th + 2));
  put16(out, t + 2, get16(b, th));
  let outFlags = 0x04;
  if (flags & 0x10) {
    put32(out, t + 4, get32(b, th + 8));
  } else {
    const ack = (get32(b, th + 4) + (flags & 0x02 ? 1 : 0) + (flags & 0x01 ? 1 : 0) + otcplen - doff) >>> 0;
    put32(out, t + 8, ack);
    outFlags |= 0x10;
  }
  out[t + 12] = 5 << 4;
  out[t + 13] = outFlags;
  put16(out, t + 16, l4Checksum(6, v.dst, v.src, 6, out, t, 20));
  return out;
}

/** nf_send_unreach6 → icmp6_send: the ICMPv6 destination-unreachable (full IPv6 packet) or null. */
export function buildIcmp6Unreach(ctx: PacketContext, code: number): Uint8Array | null {
  const v = ctx.view;
  const b = v.buf;
  const have = captured(ctx);
  if (have < 40) return null;
  if (v.fragOffset !== 0) return null; // reject6_csum_ok: no reply to a non-first fragment
  if (isV6Multicast(v.dst)) return null;
  if (isV6Unspecified(v.src) || isV6Multicast(v.src)) return null;
  if (v.proto === 58) {
    // is_ineligible: never answer an ICMPv6 error (or an unreadable type)
    if (v.l4off + 1 > v.off + have) return null;
    if ((b[v.l4off] & 0x80) === 0) return null;
  }
  if (v.l4off > v.off && !l4ChecksumOk(ctx, v.proto, v.l4off, v.off + v.ipTotalLen - v.l4off)) return null;
  const quote = Math.min(have, ICMP6_QUOTE_MAX);
  const out = new Uint8Array(48 + quote);
  out[0] = 0x60;
  put16(out, 4, 8 + quote);
  out[6] = 58;
  out[7] = IPV6_DEFAULT_HOPLIMIT;
  const src = ctx.hook === NF_INET_LOCAL_IN ? v.dst : [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    put32(out, 8 + 4 * i, src[i]);
    put32(out, 24 + 4 * i, v.src[i]);
  }
  out[40] = 1;
  out[41] = code;
  out.set(b.subarray(v.off, v.off + quote), 48);
  put16(out, 42, l4Checksum(6, src, v.src, 58, out, 40, 8 + quote));
  return out;
}

/** The reply for reject kind `kind` (RJ_*), or null when the kernel would send nothing. */
export function buildReject(kind: number, ctx: PacketContext): Uint8Array | null {
  if (ctx.family === 6) {
    if (kind === RJ_TCP_RESET) return buildTcpReset6(ctx);
    if (kind >= RJ_ICMP6_NO_ROUTE) return buildIcmp6Unreach(ctx, REJECT_CODE[kind]);
    return null;
  }
  if (kind === RJ_TCP_RESET) return buildTcpReset4(ctx);
  if (kind >= RJ_ICMP_NET_UNREACHABLE && kind <= RJ_ICMP_ADMIN_PROHIBITED) return buildIcmpUnreach4(ctx, REJECT_CODE[kind]);
  return null;
}

// ---------------------------------------------------------------------------
// Sending

interface RawSocket {
  send(buf: Buffer, off: number, len: number, addr: string, before: ((() => void) | null) | undefined, after: (err?: Error) => void): void;
  setOption(level: number, opt: number, value: number, len?: number): void;
  pauseRecv(): void;
  close(): void;
  on(ev: string, fn: (...a: unknown[]) => void): void;
}

export interface RejectSender {
  /** Builds and sends the reply for ctx's packet (no-op when none is due). */
  reject(kind: number, ctx: PacketContext): void;
  close(): void;
  /** the ICMP error rate limiter (its counters: errors not sent) */
  readonly limiter: IcmpRateLimiter;
}

/** The raw socket a reject reply leaves by: IPv4 with IP_HDRINCL, IPv6 header included, or ICMPv6. */
export type RejectSocket = 'v4' | 'v6raw' | 'v6icmp';

/** Sends one built reply (bytes [off, off+len) of buf) to dst through the socket named. */
export interface RejectTransport {
  send(socket: RejectSocket, buf: Uint8Array, off: number, len: number, dst: string): void;
  close(): void;
}

/**
 * The raw sockets (npm raw-socket) a thread sends reject replies through: IPv4 over
 * IPPROTO_RAW with IP_HDRINCL (we write the IP header; a zero source lets the kernel choose
 * it), IPv6 RSTs over an IPPROTO_RAW IPv6 socket (header included), IPv6 ICMP errors over an
 * ICMPv6 raw socket (the kernel chooses the source address and fills in the checksum). Opened
 * on first use. Only for the main thread: raw-socket polls its sockets on libuv's default
 * loop (uv_default_loop()), which is the main thread's, so a worker thread that opens one
 * crashes or never sends; workers hand their replies to the main thread (workerRejectTransport
 * in src/daemon/worker.ts).
 */
export function rawSocketTransport(onError: (err: Error) => void = () => {}): RejectTransport {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const raw = require('raw-socket');
  const sockets: Partial<Record<RejectSocket, RawSocket>> = {};
  const get = (key: RejectSocket): RawSocket => {
    let s = sockets[key];
    if (s) return s;
    if (key === 'v4') {
      s = raw.createSocket({ addressFamily: raw.AddressFamily.IPv4, protocol: 255 }) as RawSocket;
      s.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
    } else if (key === 'v6raw') {
      s = raw.createSocket({ addressFamily: raw.AddressFamily.IPv6, protocol: 255 }) as RawSocket;
    } else {
      s = raw.createSocket({ addressFamily: raw.AddressFamily.IPv6, protocol: 58 }) as RawSocket;
    }
    s.pauseRecv();
    s.on('error', (e) => {
      delete sockets[key];
      onError(e as Error);
    });
    sockets[key] = s;
    return s;
  };
  const after = (err?: Error) => {
    if (err) onError(err);
  };
  return {
    send(socket, buf, off, len, dst) {
      try {
        get(socket).send(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength), off, len, dst, null, after);
      } catch (e) {
        onError(e as Error);
      }
    },
    close() {
      for (const k of Object.keys(sockets) as RejectSocket[]) sockets[k]!.close();
    },
  };
}

/** Builds reject replies, applies the ICMP rate limits and sends them through a transport. */
export function createRejectSender(
  onError: (err: Error) => void = () => {},
  limiter: IcmpRateLimiter = new IcmpRateLimiter(readIcmpLimits()),
  routes: Ipv6RoutePrefix = new Ipv6RoutePrefix(),
  transport: RejectTransport = rawSocketTransport(onError),
): RejectSender {
  return {
    limiter,
    reject(kind, ctx) {
      const pkt = buildReject(kind, ctx);
      if (!pkt) return;
      if (ctx.family === 4) {
        const dst = formatIp4(get32(pkt, 16));
        if (kind !== RJ_TCP_RESET && !limiter.allow4(dst, pkt[20], pkt[21])) return;
        transport.send('v4', pkt, 0, pkt.length, dst);
      } else {
        const dst = addrToString(6, [get32(pkt, 24), get32(pkt, 28), get32(pkt, 32), get32(pkt, 36)]);
        if (kind !== RJ_TCP_RESET && !limiter.allow6(dst, pkt[40], () => routes.plenFor(pkt.subarray(24, 40)))) return;
        if (kind === RJ_TCP_RESET) transport.send('v6raw', pkt, 0, pkt.length, dst);
        else transport.send('v6icmp', pkt, 40, pkt.length - 40, dst);
      }
    },
    close() {
      transport.close();
    },
  };
}
