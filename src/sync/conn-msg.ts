/**
 * Connection state messages (NET_T_STATE_CT_NEW / UPD / DEL) in conntrackd's attribute
 * encoding: conntrack-tools src/build.c ct2msg() and src/parse.c msg2ct(). After the
 * header, attributes { u16 nta_len (header included, unpadded), u16 nta_attr, data }
 * each padded to 4 bytes, in ct2msg's order: address group, status, l4proto, the
 * protocol's own (TCP: ports, state, window scales; UDP: ports; ICMP: type, code, id),
 * timeout, mark, NAT, helper name. Integers are big-endian, addresses in network order,
 * except the values libnetfilter_conntrack keeps in network order that ct_build_u16/u32 pass
 * through htons/htonl once more: ICMP id, NAT ports and NAT IPv4 addresses go on the wire
 * byte-swapped (little-endian from the x86 conntrackd captured in the unit test's fixtures),
 * and parse.c's ntohs/ntohl undoes it; so do we, in both directions.
 */
import { get16, get32, put16, put32 } from '../packet/bytes';

/** A network-order u16/u32 that ct_build_u16/u32 swapped (see above). */
function getSwapped16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}
function putSwapped16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}
function getSwapped32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
function putSwapped32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../packet/view';
import { TUPLE_WORDS, T_DST, T_META, T_PORTS, T_SRC } from '../conntrack/layout';
import { NETHDR_SIZ, writeHeader } from './nethdr';

/* enum nta_attr */
export const NTA_IPV4 = 0;
export const NTA_IPV6 = 1;
export const NTA_L4PROTO = 2;
export const NTA_PORT = 3;
export const NTA_TCP_STATE = 4;
export const NTA_STATUS = 5;
export const NTA_TIMEOUT = 6;
export const NTA_MARK = 7;
export const NTA_MASTER_IPV4 = 8;
export const NTA_MASTER_IPV6 = 9;
export const NTA_MASTER_L4PROTO = 10;
export const NTA_MASTER_PORT = 11;
export const NTA_SNAT_IPV4 = 12;
export const NTA_DNAT_IPV4 = 13;
export const NTA_SPAT_PORT = 14;
export const NTA_DPAT_PORT = 15;
export const NTA_NAT_SEQ_ADJ = 16;
export const NTA_SCTP_STATE = 17;
export const NTA_SCTP_VTAG_ORIG = 18;
export const NTA_SCTP_VTAG_REPL = 19;
export const NTA_DCCP_STATE = 20;
export const NTA_DCCP_ROLE = 21;
export const NTA_ICMP_TYPE = 22;
export const NTA_ICMP_CODE = 23;
export const NTA_ICMP_ID = 24;
export const NTA_TCP_WSCALE_ORIG = 25;
export const NTA_TCP_WSCALE_REPL = 26;
export const NTA_HELPER_NAME = 27;
export const NTA_LABELS = 28;
export const NTA_SNAT_IPV6 = 29;
export const NTA_DNAT_IPV6 = 30;
export const NTA_SYNPROXY = 31;
export const NTA_MAX = 32;

const NTA_HDR = 4;
/** NFCT_HELPER_NAME_MAX: the helper attribute's largest nta_len (parse.c max_size) */
const HELPER_NAME_MAX = 16;
/** NTA_LABELS_MAX_SIZE + header */
const LABELS_MAX = NTA_HDR + 1024;

/**
 * The exact nta_len of each fixed-size attribute (parse.c's h[].size: NTA_SIZE(data)), 0 for
 * the variable ones; a message with another length is malformed, as msg2ct() says.
 */
const ATTR_SIZE = new Uint16Array(NTA_MAX);
for (const [a, n] of [
  [NTA_IPV4, 8],
  [NTA_IPV6, 32],
  [NTA_L4PROTO, 1],
  [NTA_PORT, 4],
  [NTA_TCP_STATE, 1],
  [NTA_STATUS, 4],
  [NTA_TIMEOUT, 4],
  [NTA_MARK, 4],
  [NTA_MASTER_IPV4, 8],
  [NTA_MASTER_IPV6, 32],
  [NTA_MASTER_L4PROTO, 1],
  [NTA_MASTER_PORT, 4],
  [NTA_SNAT_IPV4, 4],
  [NTA_DNAT_IPV4, 4],
  [NTA_SPAT_PORT, 2],
  [NTA_DPAT_PORT, 2],
  [NTA_NAT_SEQ_ADJ, 24],
  [NTA_SCTP_STATE, 1],
  [NTA_SCTP_VTAG_ORIG, 4],
  [NTA_SCTP_VTAG_REPL, 4],
  [NTA_DCCP_STATE, 1],
  [NTA_DCCP_ROLE, 1],
  [NTA_ICMP_TYPE, 1],
  [NTA_ICMP_CODE, 1],
  [NTA_ICMP_ID, 2],
  [NTA_TCP_WSCALE_ORIG, 1],
  [NTA_TCP_WSCALE_REPL, 1],
  [NTA_SNAT_IPV6, 16],
  [NTA_DNAT_IPV6, 16],
  [NTA_SYNPROXY, 12],
] as const)
  ATTR_SIZE[a] = NTA_HDR + n;

/** One connection as a sync message carries it. -1 = attribute absent. */
export interface SyncConn {
  /** the ORIG tuple in the table's layout (conntrack/layout.ts) */
  tuple: Uint32Array;
  status: number;
  /** TCP_CONNTRACK_* */
  tcpState: number;
  wscaleOrig: number;
  wscaleRepl: number;
  /** seconds left */
  timeout: number;
  mark: number;
  /** '' = none */
  helper: string;
  /** the master's ORIG tuple (an expected connection), TUPLE_WORDS, or null */
  master: Uint32Array | null;
  /** NAT: the reply tuple's destination (SNAT) / source (DNAT) address words, null if absent */
  snat: Uint32Array | null;
  dnat: Uint32Array | null;
  /** NAT: the reply tuple's destination (SPAT) / source (DPAT) port */
  spat: number;
  dpat: number;
}

export function newSyncConn(): SyncConn {
  return {
    tuple: new Uint32Array(TUPLE_WORDS),
    status: 0,
    tcpState: -1,
    wscaleOrig: -1,
    wscaleRepl: -1,
    timeout: -1,
    mark: -1,
    helper: '',
    master: null,
    snat: null,
    dnat: null,
    spat: -1,
    dpat: -1,
  };
}

/** Does conntrackd's ct2msg() carry this protocol's tuple completely (ports or ICMP id/type/code)? */
export function syncsProto(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6;
}

// ------------------------------------------------------------------ encoding

function putAttr(buf: Uint8Array, o: number, attr: number, dataLen: number): number {
  const len = NTA_HDR + dataLen;
  put16(buf, o, len);
  put16(buf, o + 2, attr);
  const end = o + ((len + 3) & ~3);
  for (let i = o + len; i < end; i++) buf[i] = 0;
  return o + NTA_HDR;
}

function u8Attr(buf: Uint8Array, o: number, attr: number, v: number): number {
  buf[putAttr(buf, o, attr, 1)] = v & 0xff;
  return o + 8;
}

function u32Attr(buf: Uint8Array, o: number, attr: number, v: number): number {
  put32(buf, putAttr(buf, o, attr, 4), v);
  return o + 8;
}

function swapped16Attr(buf: Uint8Array, o: number, attr: number, v: number): number {
  putSwapped16(buf, putAttr(buf, o, attr, 2), v);
  return o + 8;
}

function swapped32Attr(buf: Uint8Array, o: number, attr: number, v: number): number {
  putSwapped32(buf, putAttr(buf, o, attr, 4), v);
  return o + 8;
}

/** An address group {src, dst} (nfct_attr_grp_ipv4 / _ipv6) from tuple t. */
function addrAttr(buf: Uint8Array, o: number, attr4: number, t: Uint32Array): number {
  const v6 = t[T_META] >>> 8 === 6;
  const words = v6 ? 4 : 1;
  let d = putAttr(buf, o, v6 ? attr4 + 1 : attr4, 8 * words);
  for (let i = 0; i < words; i++, d += 4) put32(buf, d, t[T_SRC + i]);
  for (let i = 0; i < words; i++, d += 4) put32(buf, d, t[T_DST + i]);
  return d;
}

function addrWordsAttr(buf: Uint8Array, o: number, attr: number, w: Uint32Array, words: number): number {
  let d = putAttr(buf, o, attr, 4 * words);
  for (let i = 0; i < words; i++, d += 4) put32(buf, d, w[i]);
  return d;
}

/**
 * Writes message `type` (NET_T_STATE_CT_*) for c at buf[off] with sequence number seq, as
 * ct2msg() + BUILD_NETMSG_FROM_CT would. Returns its length. buf must hold 256 bytes from off.
 */
export function encodeConn(buf: Uint8Array, off: number, type: number, seq: number, c: SyncConn): number {
  const t = c.tuple;
  const proto = t[T_META] & 0xff;
  const v6 = t[T_META] >>> 8 === 6;
  let o = addrAttr(buf, off + NETHDR_SIZ, NTA_IPV4, t);
  o = u32Attr(buf, o, NTA_STATUS, c.status);
  o = u8Attr(buf, o, NTA_L4PROTO, proto);
  if (proto === IPPROTO_TCP) {
    if (c.tcpState >= 0) {
      o = u32Attr(buf, o, NTA_PORT, t[T_PORTS]);
      o = u8Attr(buf, o, NTA_TCP_STATE, c.tcpState);
      if (c.wscaleOrig >= 0 && c.wscaleRepl >= 0) {
        o = u8Attr(buf, o, NTA_TCP_WSCALE_ORIG, c.wscaleOrig);
        o = u8Attr(buf, o, NTA_TCP_WSCALE_REPL, c.wscaleRepl);
      }
    }
  } else if (proto === IPPROTO_UDP) {
    o = u32Attr(buf, o, NTA_PORT, t[T_PORTS]);
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    const p = t[T_PORTS];
    o = u8Attr(buf, o, NTA_ICMP_TYPE, (p >>> 8) & 0xff);
    o = u8Attr(buf, o, NTA_ICMP_CODE, p & 0xff);
    o = swapped16Attr(buf, o, NTA_ICMP_ID, p >>> 16);
  }
  if (c.timeout >= 0) o = u32Attr(buf, o, NTA_TIMEOUT, c.timeout);
  if (c.mark >= 0) o = u32Attr(buf, o, NTA_MARK, c.mark);
  const m = c.master;
  if (m !== null) {
    o = addrAttr(buf, o, NTA_MASTER_IPV4, m);
    const mp = m[T_META] & 0xff;
    o = u8Attr(buf, o, NTA_MASTER_L4PROTO, mp);
    if (mp === IPPROTO_TCP || mp === IPPROTO_UDP) o = u32Attr(buf, o, NTA_MASTER_PORT, m[T_PORTS]);
  }
  if (c.snat !== null) o = v6 ? addrWordsAttr(buf, o, NTA_SNAT_IPV6, c.snat, 4) : swapped32Attr(buf, o, NTA_SNAT_IPV4, c.snat[0]);
  if (c.dnat !== null) o = v6 ? addrWordsAttr(buf, o, NTA_DNAT_IPV6, c.dnat, 4) : swapped32Attr(buf, o, NTA_DNAT_IPV4, c.dnat[0]);
  if (c.spat >= 0) o = swapped16Attr(buf, o, NTA_SPAT_PORT, c.spat);
  if (c.dpat >= 0) o = swapped16Attr(buf, o, NTA_DPAT_PORT, c.dpat);
  if (c.helper !== '') {
    const n = c.helper.length;
    const d = putAttr(buf, o, NTA_HELPER_NAME, n + 1);
    for (let i = 0; i < n; i++) buf[d + i] = c.helper.charCodeAt(i) & 0xff;
    buf[d + n] = 0;
    o += (NTA_HDR + n + 1 + 3) & ~3;
  }
  const len = o - off;
  writeHeader(buf, off, type, 0, len, seq);
  return len;
}

// ------------------------------------------------------------------ decoding

/**
 * Reads the attributes of the state message at buf[off..off+len) into c (reset first), with
 * msg2ct()'s checks: every attribute within the message, at least its header long, a known
 * type, the exact size of a fixed-size one, the helper name within NFCT_HELPER_NAME_MAX.
 * Returns null, or why the message is malformed. Attributes nfqwall has no use for (labels,
 * NAT sequence adjustment, synproxy, DCCP/SCTP state) are checked and skipped.
 */
export function decodeConn(buf: Uint8Array, off: number, len: number, c: SyncConn): string | null {
  resetConn(c);
  let family = 0;
  let proto = -1;
  let ports = -1;
  let icmpType = -1;
  let icmpCode = -1;
  let icmpId = -1;
  let masterFamily = 0;
  let masterProto = 0;
  const t = c.tuple;
  let o = off + NETHDR_SIZ;
  let left = len - NETHDR_SIZ;
  while (left > NTA_HDR) {
    const alen = get16(buf, o);
    const attr = get16(buf, o + 2);
    if (alen > left) return 'attribute beyond the message';
    if (alen < NTA_HDR) return 'attribute shorter than its header';
    if (attr >= NTA_MAX) return `unknown attribute ${attr}`;
    const size = ATTR_SIZE[attr];
    if (size !== 0 && alen !== size) return `attribute ${attr} of length ${alen}, not ${size}`;
    const d = o + NTA_HDR;
    switch (attr) {
      case NTA_IPV4:
      case NTA_IPV6: {
        family = attr === NTA_IPV4 ? 4 : 6;
        const words = family === 4 ? 1 : 4;
        for (let i = 0; i < 4; i++) t[T_SRC + i] = t[T_DST + i] = 0;
        for (let i = 0; i < words; i++) {
          t[T_SRC + i] = get32(buf, d + 4 * i);
          t[T_DST + i] = get32(buf, d + 4 * (words + i));
        }
        break;
      }
      case NTA_L4PROTO:
        proto = buf[d];
        break;
      case NTA_PORT:
        ports = get32(buf, d);
        break;
      case NTA_TCP_STATE:
        c.tcpState = buf[d];
        break;
      case NTA_STATUS:
        c.status = get32(buf, d);
        break;
      case NTA_TIMEOUT:
        c.timeout = get32(buf, d);
        break;
      case NTA_MARK:
        c.mark = get32(buf, d);
        break;
      case NTA_MASTER_IPV4:
      case NTA_MASTER_IPV6: {
        const m = (c.master = new Uint32Array(TUPLE_WORDS));
        masterFamily = attr === NTA_MASTER_IPV4 ? 4 : 6;
        const words = masterFamily === 4 ? 1 : 4;
        for (let i = 0; i < words; i++) {
          m[T_SRC + i] = get32(buf, d + 4 * i);
          m[T_DST + i] = get32(buf, d + 4 * (words + i));
        }
        break;
      }
      case NTA_MASTER_L4PROTO:
        masterProto = buf[d];
        break;
      case NTA_MASTER_PORT:
        if (c.master === null) c.master = new Uint32Array(TUPLE_WORDS);
        c.master[T_PORTS] = get32(buf, d);
        break;
      case NTA_SNAT_IPV4:
        c.snat = Uint32Array.of(getSwapped32(buf, d), 0, 0, 0);
        break;
      case NTA_DNAT_IPV4:
        c.dnat = Uint32Array.of(getSwapped32(buf, d), 0, 0, 0);
        break;
      case NTA_SNAT_IPV6:
      case NTA_DNAT_IPV6: {
        const w = Uint32Array.of(get32(buf, d), get32(buf, d + 4), get32(buf, d + 8), get32(buf, d + 12));
        if (attr === NTA_SNAT_IPV6) c.snat = w;
        else c.dnat = w;
        break;
      }
      case NTA_SPAT_PORT:
        c.spat = getSwapped16(buf, d);
        break;
      case NTA_DPAT_PORT:
        c.dpat = getSwapped16(buf, d);
        break;
      case NTA_ICMP_TYPE:
        icmpType = buf[d];
        break;
      case NTA_ICMP_CODE:
        icmpCode = buf[d];
        break;
      case NTA_ICMP_ID:
        icmpId = getSwapped16(buf, d);
        break;
      case NTA_TCP_WSCALE_ORIG:
        c.wscaleOrig = buf[d];
        break;
      case NTA_TCP_WSCALE_REPL:
        c.wscaleRepl = buf[d];
        break;
      case NTA_HELPER_NAME: {
        if (alen > HELPER_NAME_MAX) return 'helper name too long';
        let s = '';
        for (let i = d; i < o + alen && buf[i] !== 0; i++) s += String.fromCharCode(buf[i]);
        c.helper = s;
        break;
      }
      case NTA_LABELS:
        if (alen > LABELS_MAX) return 'labels too long';
        break;
      default:
        break;
    }
    const step = (alen + 3) & ~3;
    o += step;
    left -= step;
  }
  if (family === 0) return 'no address attribute';
  if (proto < 0) return 'no layer-4 protocol attribute';
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    if (icmpType < 0 || icmpCode < 0 || icmpId < 0) return 'ICMP message without type, code and id';
    ports = ((icmpId << 16) | (icmpType << 8) | icmpCode) >>> 0;
  } else if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
    if (ports < 0) return 'no port attribute';
  } else ports = ports < 0 ? 0 : ports;
  t[T_META] = (family << 8) | proto;
  t[T_PORTS] = ports >>> 0;
  if (c.master !== null) {
    if (masterFamily === 0) return 'master port without master address';
    c.master[T_META] = (masterFamily << 8) | masterProto;
  }
  return null;
}

function resetConn(c: SyncConn): void {
  c.tuple.fill(0);
  c.status = 0;
  c.tcpState = c.wscaleOrig = c.wscaleRepl = c.timeout = c.mark = c.spat = c.dpat = -1;
  c.helper = '';
  c.master = c.snat = c.dnat = null;
}

/** A copy of c (the decoder's reused object kept in a cache). */
export function copyConn(c: SyncConn): SyncConn {
  return {
    ...c,
    tuple: c.tuple.slice(),
    master: c.master && c.master.slice(),
    snat: c.snat && c.snat.slice(),
    dnat: c.dnat && c.dnat.slice(),
  };
}
