/**
 * The message header of conntrackd's sync protocol (conntrack-tools include/network.h,
 * src/network.c), protocol version 1 as conntrackd 1.4.x speaks it:
 *
 *   byte 0   version << 4 | type      (struct nethdr's bit fields on a little-endian host)
 *   byte 1   flags (NET_F_*)
 *   2..3     len, big-endian: the whole message, header included
 *   4..7     seq, big-endian: one per message sent, from time(NULL) at start
 *   8..15    from, to (big-endian): only in ACK / NACK / RESYNC control messages (struct nethdr_ack)
 *
 * A datagram carries one or more messages back to back (conntrackd fills one up to the MTU).
 */
import { get16, get32, put16, put32 } from '../packet/bytes';

export const CONNTRACKD_PROTOCOL_VERSION = 1;
/** NETHDR_SIZ: sizeof(struct nethdr) aligned to 4 */
export const NETHDR_SIZ = 8;
/** NETHDR_ACK_SIZ: sizeof(struct nethdr_ack) */
export const NETHDR_ACK_SIZ = 16;

export const NET_T_STATE_CT_NEW = 0;
export const NET_T_STATE_CT_UPD = 1;
export const NET_T_STATE_CT_DEL = 2;
export const NET_T_STATE_EXP_NEW = 3;
export const NET_T_STATE_EXP_UPD = 4;
export const NET_T_STATE_EXP_DEL = 5;
export const NET_T_STATE_MAX = NET_T_STATE_EXP_DEL;
export const NET_T_CTL = 10;

export const NET_F_RESYNC = 1 << 1;
export const NET_F_NACK = 1 << 2;
export const NET_F_ACK = 1 << 3;
export const NET_F_ALIVE = 1 << 4;
export const NET_F_HELLO = 1 << 5;
export const NET_F_HELLO_BACK = 1 << 6;

/** A decoded header (reused by the receiver). */
export interface NetHeader {
  version: number;
  type: number;
  flags: number;
  len: number;
  seq: number;
  /** ACK/NACK/RESYNC only, else 0 */
  from: number;
  to: number;
}

export function newHeader(): NetHeader {
  return { version: 0, type: 0, flags: 0, len: 0, seq: 0, from: 0, to: 0 };
}

/** IS_DATA: a state message, with no flag but HELLO / HELLO_BACK. */
export function isData(h: NetHeader): boolean {
  return h.type <= NET_T_STATE_MAX && (h.flags & ~(NET_F_HELLO | NET_F_HELLO_BACK)) === 0;
}

export function isCtl(h: NetHeader, flag: number): boolean {
  return h.type === NET_T_CTL && (h.flags & flag) !== 0;
}

/** Control messages that carry the from/to range. */
function hasRange(type: number, flags: number): boolean {
  return type === NET_T_CTL && (flags & (NET_F_ACK | NET_F_NACK | NET_F_RESYNC)) !== 0;
}

/**
 * Reads the header at buf[off] with `remain` bytes left in the datagram. Returns false when
 * it cannot be a message (shorter than a header, or a length beyond the datagram): the rest
 * of the datagram is then unreadable, as conntrackd's channel handler stops there.
 */
export function readHeader(buf: Uint8Array, off: number, remain: number, out: NetHeader): boolean {
  if (remain < NETHDR_SIZ) return false;
  const b0 = buf[off];
  out.version = b0 >>> 4;
  out.type = b0 & 0x0f;
  out.flags = buf[off + 1];
  out.len = get16(buf, off + 2);
  out.seq = get32(buf, off + 4);
  out.from = out.to = 0;
  if (out.len < NETHDR_SIZ || out.len > remain) return false;
  if (hasRange(out.type, out.flags)) {
    if (out.len < NETHDR_ACK_SIZ) return false;
    out.from = get32(buf, off + 8);
    out.to = get32(buf, off + 12);
  }
  return true;
}

/** Writes a header of a message of `len` bytes at buf[off]. */
export function writeHeader(buf: Uint8Array, off: number, type: number, flags: number, len: number, seq: number): void {
  buf[off] = (CONNTRACKD_PROTOCOL_VERSION << 4) | (type & 0x0f);
  buf[off + 1] = flags & 0xff;
  put16(buf, off + 2, len);
  put32(buf, off + 4, seq >>> 0);
}

/**
 * Writes a control message (ALIVE, RESYNC request, ACK, NACK) at buf[off] and returns its
 * length: 16 bytes with the from/to range for ACK / NACK / RESYNC (nethdr_set_ack), else 8.
 */
export function writeCtl(buf: Uint8Array, off: number, flags: number, seq: number, from = 0, to = 0): number {
  const len = hasRange(NET_T_CTL, flags) ? NETHDR_ACK_SIZ : NETHDR_SIZ;
  writeHeader(buf, off, NET_T_CTL, flags, len, seq);
  if (len === NETHDR_ACK_SIZ) {
    put32(buf, off + 8, from >>> 0);
    put32(buf, off + 12, to >>> 0);
  }
  return len;
}
