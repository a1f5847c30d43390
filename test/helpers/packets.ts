/**
 * Packet builder for tests (packet parsing, conntrack, rules, REJECT…).
 *
 * Every function returns a plain Uint8Array. L4 builders return the L4 bytes;
 * wrapping them in ipv4()/ipv6() fills in the L4 checksum with the
 * pseudo-header of that IP header (unless the L4 builder was given an explicit
 * `checksum`), and the IPv4 header checksum. The protocol number is inferred
 * from the L4 builder (pass `proto` / `nextHeader` for raw bytes).
 *
 *   ipv4({ src, dst, proto, ttl, id, tos, df, mf, flags, fragOffset, options, totalLength, ihl, checksum }, l4)
 *       src/dst: text ('198.18.0.1'); defaults 198.18.0.1 → 198.18.0.2, ttl 64.
 *       flags: the 3-bit field (2 = DF, 1 = MF) or use df/mf; fragOffset in bytes (multiple of 8).
 *       options: raw option bytes, padded with zeros (EOL) to a multiple of 4.
 *       totalLength / ihl / checksum: override the computed value (for malformed packets).
 *   ipv6({ src, dst, nextHeader, hopLimit, trafficClass, flowLabel, payloadLength, extHeaders }, l4)
 *       defaults 2001:2::1 → 2001:2::2, hop limit 64.
 *       extHeaders: in order, each one of
 *         { type: 0 | 43 | 60, bytes? }          hop-by-hop / routing / destination options, bytes = total length (multiple of 8, default 8)
 *         { type: 44, fragOffset?, more?, id? }  fragment header (fragOffset in bytes)
 *         { type: 51, bytes? }                   AH, bytes = total length (multiple of 4, default 12)
 *       any of them may carry `next` to override its next-header byte.
 *   tcp({ sport, dport, seq, ack, flags, window, urgent, options, payload, doff, checksum })
 *       flags: number or letters 'FSRPAUEC' (e.g. 'SA' = SYN+ACK; default 'S').
 *       options: { mss, wscale, sackPerm, sack: [[left, right], …], timestamp: [val, ecr], raw }
 *         emitted in that order (raw bytes last), padded with EOL to a multiple of 4.
 *   udp({ sport, dport, payload, length, checksum })          checksum 0 = "no checksum".
 *   udplite({ sport, dport, payload, coverage, checksum })
 *   sctp({ sport, dport, vtag, chunks: [{ type, flags, data, length }], checksum })   CRC32c filled in;
 *       sctpInitValue(initTag, tsn) is the value of an INIT / INIT_ACK chunk.
 *   icmp({ type, code, id, seq, payload, checksum })          ICMPv4, default echo request (8).
 *   icmpv6({ type, code, id, seq, payload, checksum })        ICMPv6, default echo request (128).
 *   icmpError(type, code, innerPacket, { rest })              ICMP error carrying innerPacket (the
 *       bytes of an IP packet, usually a built packet possibly sliced); ICMPv6 when the inner packet is
 *       IPv6. rest = the 32-bit "unused / MTU / pointer" word.
 *   concat(...parts), bytes(text | number[] | Uint8Array)
 *
 * Payloads: Uint8Array, number[] or a string (UTF-8).
 */
import { l4Checksum, ipv4HeaderChecksum } from '../../src/packet/checksum';
import { put16, put32 } from '../../src/packet/bytes';
import { sctpChecksum } from '../../src/packet/sctp';
import { parseAddr } from '../../src/packet/format';

export type Bytes = Uint8Array | number[] | string;

interface L4Meta {
  proto: number;
  csumOffset: number; // where the checksum field is, -1 = none
  fixed: boolean; // explicit checksum given: do not recompute
  coverage?: number; // UDP-Lite
}
const meta = new WeakMap<Uint8Array, L4Meta>();

export function bytes(b: Bytes | undefined): Uint8Array {
  if (b === undefined) return new Uint8Array(0);
  if (typeof b === 'string') return new Uint8Array(Buffer.from(b, 'utf8'));
  return Uint8Array.from(b);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function addr(text: string, family: 4 | 6): Uint32Array {
  const a = parseAddr(text);
  if (a === null || a.family !== family) throw new Error(`packets: not an IPv${family} address: ${text}`);
  return a.words;
}

const TCP_FLAG_LETTERS = 'FSRPAUEC';
function tcpFlags(f: number | string | undefined): number {
  if (f === undefined) return 0x02;
  if (typeof f === 'number') return f & 0xff;
  let v = 0;
  for (const ch of f.toUpperCase()) {
    const i = TCP_FLAG_LETTERS.indexOf(ch);
    if (i < 0) throw new Error(`packets: unknown TCP flag letter ${ch}`);
    v |= 1 << i;
  }
  return v;
}

export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackPerm?: boolean;
  sack?: Array<[number, number]>;
  timestamp?: [number, number];
  raw?: Bytes;
}

export interface TcpSpec {
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  flags?: number | string;
  window?: number;
  urgent?: number;
  options?: TcpOptions;
  payload?: Bytes;
  /** Data offset in 32-bit words, overriding the computed one (for malformed packets). */
  doff?: number;
  checksum?: number;
}

export function tcpOptionBytes(o: TcpOptions | undefined): Uint8Array {
  if (!o) return new Uint8Array(0);
  const out: number[] = [];
  if (o.mss !== undefined) out.push(2, 4, (o.mss >>> 8) & 0xff, o.mss & 0xff);
  if (o.sackPerm) out.push(4, 2);
  if (o.timestamp) {
    const t = new Uint8Array(10);
    t[0] = 8;
    t[1] = 10;
    put32(t, 2, o.timestamp[0]);
    put32(t, 6, o.timestamp[1]);
    out.push(...t);
  }
  if (o.wscale !== undefined) out.push(3, 3, o.wscale & 0xff);
  if (o.sack && o.sack.length > 0) {
    const s = new Uint8Array(2 + 8 * o.sack.length);
    s[0] = 5;
    s[1] = s.length;
    o.sack.forEach(([l, r], i) => {
      put32(s, 2 + 8 * i, l);
      put32(s, 6 + 8 * i, r);
    });
    out.push(...s);
  }
  if (o.raw !== undefined) out.push(...bytes(o.raw));
  while (out.length % 4 !== 0) out.push(0);
  return Uint8Array.from(out);
}

export function tcp(s: TcpSpec = {}): Uint8Array {
  const opts = tcpOptionBytes(s.options);
  const payload = bytes(s.payload);
  const hlen = 20 + opts.length;
  const b = new Uint8Array(hlen + payload.length);
  put16(b, 0, s.sport ?? 40000);
  put16(b, 2, s.dport ?? 80);
  put32(b, 4, s.seq ?? 1000);
  put32(b, 8, s.ack ?? 0);
  b[12] = ((s.doff ?? hlen / 4) & 0x0f) << 4;
  b[13] = tcpFlags(s.flags);
  put16(b, 14, s.window ?? 65535);
  put16(b, 16, s.checksum ?? 0);
  put16(b, 18, s.urgent ?? 0);
  b.set(opts, 20);
  b.set(payload, hlen);
  meta.set(b, { proto: 6, csumOffset: 16, fixed: s.checksum !== undefined });
  return b;
}

export interface UdpSpec {
  sport?: number;
  dport?: number;
  payload?: Bytes;
  /** UDP length field override. */
  length?: number;
  checksum?: number;
}

export function udp(s: UdpSpec = {}): Uint8Array {
  const payload = bytes(s.payload);
  const b = new Uint8Array(8 + payload.length);
  put16(b, 0, s.sport ?? 40000);
  put16(b, 2, s.dport ?? 53);
  put16(b, 4, s.length ?? b.length);
  put16(b, 6, s.checksum ?? 0);
  b.set(payload, 8);
  meta.set(b, { proto: 17, csumOffset: 6, fixed: s.checksum !== undefined });
  return b;
}

export interface UdpliteSpec {
  sport?: number;
  dport?: number;
  payload?: Bytes;
  /** Checksum coverage field (0 = whole datagram, the default). */
  coverage?: number;
  checksum?: number;
}

export function udplite(s: UdpliteSpec = {}): Uint8Array {
  const payload = bytes(s.payload);
  const b = new Uint8Array(8 + payload.length);
  put16(b, 0, s.sport ?? 40000);
  put16(b, 2, s.dport ?? 5000);
  put16(b, 4, s.coverage ?? 0);
  put16(b, 6, s.checksum ?? 0);
  b.set(payload, 8);
  meta.set(b, { proto: 136, csumOffset: 6, fixed: s.checksum !== undefined, coverage: s.coverage ?? 0 });
  return b;
}

export interface SctpChunkSpec {
  type: number;
  flags?: number;
  /** the chunk's value (padded with zeros to a multiple of 4 on the wire) */
  data?: Bytes;
  /** length field override (default 4 + data length) */
  length?: number;
}

export interface SctpSpec {
  sport?: number;
  dport?: number;
  vtag?: number;
  chunks?: SctpChunkSpec[];
  /** CRC32c field override (default: the correct one), stored as the value's bytes least significant first */
  checksum?: number;
}

/** An SCTP packet: common header (CRC32c filled in) and chunks. */
export function sctp(s: SctpSpec = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const c of s.chunks ?? []) {
    const data = bytes(c.data);
    const ch = new Uint8Array((4 + data.length + 3) & ~3);
    ch[0] = c.type;
    ch[1] = c.flags ?? 0;
    put16(ch, 2, c.length ?? 4 + data.length);
    ch.set(data, 4);
    parts.push(ch);
  }
  const body = concat(...parts);
  const b = new Uint8Array(12 + body.length);
  put16(b, 0, s.sport ?? 40000);
  put16(b, 2, s.dport ?? 5000);
  put32(b, 4, s.vtag ?? 0);
  b.set(body, 12);
  const c = s.checksum ?? sctpChecksum(b, 0, b.length);
  b[8] = c & 0xff;
  b[9] = (c >>> 8) & 0xff;
  b[10] = (c >>> 16) & 0xff;
  b[11] = (c >>> 24) & 0xff;
  meta.set(b, { proto: 132, csumOffset: -1, fixed: true });
  return b;
}

/** The value of an INIT or INIT_ACK chunk: init tag, a_rwnd, streams, initial TSN (no parameters). */
export function sctpInitValue(initTag: number, tsn = 1): Uint8Array {
  const v = new Uint8Array(16);
  put32(v, 0, initTag);
  put32(v, 4, 65536);
  put16(v, 8, 10);
  put16(v, 10, 10);
  put32(v, 12, tsn);
  return v;
}

export interface IcmpSpec {
  type?: number;
  code?: number;
  id?: number;
  seq?: number;
  payload?: Bytes;
  checksum?: number;
}

function icmpCommon(proto: number, defType: number, s: IcmpSpec): Uint8Array {
  const payload = bytes(s.payload);
  const b = new Uint8Array(8 + payload.length);
  b[0] = s.type ?? defType;
  b[1] = s.code ?? 0;
  put16(b, 2, s.checksum ?? 0);
  put16(b, 4, s.id ?? 0x1234);
  put16(b, 6, s.seq ?? 1);
  b.set(payload, 8);
  meta.set(b, { proto, csumOffset: 2, fixed: s.checksum !== undefined });
  return b;
}

export function icmp(s: IcmpSpec = {}): Uint8Array {
  return icmpCommon(1, 8, s);
}

export function icmpv6(s: IcmpSpec = {}): Uint8Array {
  return icmpCommon(58, 128, s);
}

/** An ICMP (inner IPv4) or ICMPv6 (inner IPv6) error message embedding `inner`. */
export function icmpError(type: number, code: number, inner: Uint8Array, o: { rest?: number; checksum?: number } = {}): Uint8Array {
  const v6 = inner.length > 0 && inner[0] >>> 4 === 6;
  const b = new Uint8Array(8 + inner.length);
  b[0] = type;
  b[1] = code;
  put16(b, 2, o.checksum ?? 0);
  put32(b, 4, o.rest ?? 0);
  b.set(inner, 8);
  meta.set(b, { proto: v6 ? 58 : 1, csumOffset: 2, fixed: o.checksum !== undefined });
  return b;
}

function fillL4Checksum(family: 4 | 6, src: Uint32Array, dst: Uint32Array, proto: number, pkt: Uint8Array, l4off: number, l4: Uint8Array): void {
  const m = meta.get(l4);
  if (!m || m.fixed || m.csumOffset < 0 || m.proto !== proto) return;
  if (m.proto === 1 && family !== 4) return;
  if (m.proto === 58 && family !== 6) return;
  const len = l4.length;
  put16(pkt, l4off + m.csumOffset, 0);
  let c = l4Checksum(family, src, dst, proto, pkt, l4off, len, m.coverage);
  if (c === 0 && (proto === 17 || proto === 136)) c = 0xffff;
  put16(pkt, l4off + m.csumOffset, c);
}

export interface Ipv4Spec {
  src?: string;
  dst?: string;
  proto?: number;
  ttl?: number;
  id?: number;
  tos?: number;
  df?: boolean;
  mf?: boolean;
  /** The 3-bit flags field: 2 = DF, 1 = MF (OR-ed with df/mf). */
  flags?: number;
  /** Fragment offset in bytes (multiple of 8). */
  fragOffset?: number;
  options?: Bytes;
  totalLength?: number;
  /** IHL in 32-bit words (override). */
  ihl?: number;
  checksum?: number;
}

export function ipv4(s: Ipv4Spec = {}, l4: Uint8Array = new Uint8Array(0)): Uint8Array {
  const src = addr(s.src ?? '198.18.0.1', 4);
  const dst = addr(s.dst ?? '198.18.0.2', 4);
  const proto = s.proto ?? meta.get(l4)?.proto ?? 253;
  const opts = bytes(s.options);
  const optLen = (opts.length + 3) & ~3;
  const hlen = 20 + optLen;
  const b = new Uint8Array(hlen + l4.length);
  b[0] = 0x40 | ((s.ihl ?? hlen / 4) & 0x0f);
  b[1] = s.tos ?? 0;
  put16(b, 2, s.totalLength ?? b.length);
  put16(b, 4, s.id ?? 0x4242);
  const flags = (s.flags ?? 0) | (s.df ? 2 : 0) | (s.mf ? 1 : 0);
  put16(b, 6, ((flags & 7) << 13) | (((s.fragOffset ?? 0) >>> 3) & 0x1fff));
  b[8] = s.ttl ?? 64;
  b[9] = proto;
  put32(b, 12, src[0]);
  put32(b, 16, dst[0]);
  b.set(opts, 20);
  b.set(l4, hlen);
  fillL4Checksum(4, src, dst, proto, b, hlen, l4);
  put16(b, 10, s.checksum ?? ipv4HeaderChecksum(b, 0, hlen));
  return b;
}

export type Ipv6Ext =
  | { type: 0 | 43 | 60; bytes?: number; next?: number }
  | { type: 44; fragOffset?: number; more?: boolean; id?: number; next?: number }
  | { type: 51; bytes?: number; next?: number };

export interface Ipv6Spec {
  src?: string;
  dst?: string;
  /** Upper-layer protocol (inferred from the L4 builder). */
  nextHeader?: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  payloadLength?: number;
  extHeaders?: Ipv6Ext[];
}

export function ipv6(s: Ipv6Spec = {}, l4: Uint8Array = new Uint8Array(0)): Uint8Array {
  const src = addr(s.src ?? '2001:2::1', 6);
  const dst = addr(s.dst ?? '2001:2::2', 6);
  const proto = s.nextHeader ?? meta.get(l4)?.proto ?? 59;
  const exts = s.extHeaders ?? [];
  const extBytes: Uint8Array[] = [];
  for (let i = 0; i < exts.length; i++) {
    const e = exts[i];
    const next = e.next ?? (i + 1 < exts.length ? exts[i + 1].type : proto);
    let h: Uint8Array;
    if (e.type === 44) {
      h = new Uint8Array(8);
      put16(h, 2, ((e.fragOffset ?? 0) & 0xfff8) | (e.more ? 1 : 0));
      put32(h, 4, e.id ?? 0xabcd);
    } else if (e.type === 51) {
      const n = e.bytes ?? 12;
      h = new Uint8Array(n);
      h[1] = n / 4 - 2;
    } else {
      const n = e.bytes ?? 8;
      h = new Uint8Array(n);
      h[1] = n / 8 - 1;
    }
    h[0] = next;
    extBytes.push(h);
  }
  const ext = concat(...extBytes);
  const b = new Uint8Array(40 + ext.length + l4.length);
  put32(b, 0, (6 << 28) | (((s.trafficClass ?? 0) & 0xff) << 20) | ((s.flowLabel ?? 0) & 0xfffff));
  put16(b, 4, s.payloadLength ?? ext.length + l4.length);
  b[6] = exts.length > 0 ? exts[0].type : proto;
  b[7] = s.hopLimit ?? 64;
  for (let i = 0; i < 4; i++) {
    put32(b, 8 + 4 * i, src[i]);
    put32(b, 24 + 4 * i, dst[i]);
  }
  b.set(ext, 40);
  b.set(l4, 40 + ext.length);
  fillL4Checksum(6, src, dst, proto, b, 40 + ext.length, l4);
  return b;
}
