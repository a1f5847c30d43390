/**
 * TCP header and option parsing (the kernel's tcp_error, tcp_options and
 * tcp_sack in net/netfilter/nf_conntrack_proto_tcp.c). Hot path: no allocation.
 */
import { Malformed, type PacketView } from './view';

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;

/** Largest window scale the kernel accepts (RFC 7323); bigger values are capped. */
export const TCP_MAX_WSCALE = 14;

/**
 * Parses the TCP header at v.l4off (v.l4len bytes). Ports are read as soon as
 * 4 bytes are present (the kernel builds the tuple from them even when
 * tcp_error later declares the segment truncated).
 */
export function parseTcp(buf: Uint8Array, v: PacketView): boolean {
  const o = v.l4off;
  const l = v.l4len;
  if (l < 4) {
    v.malformed = Malformed.TRUNCATED_L4;
    return false;
  }
  v.sport = (buf[o] << 8) | buf[o + 1];
  v.dport = (buf[o + 2] << 8) | buf[o + 3];
  if (l < 20) {
    v.malformed = Malformed.TRUNCATED_L4;
    return false;
  }
  v.seq = ((buf[o + 4] << 24) | (buf[o + 5] << 16) | (buf[o + 6] << 8) | buf[o + 7]) >>> 0;
  v.ack = ((buf[o + 8] << 24) | (buf[o + 9] << 16) | (buf[o + 10] << 8) | buf[o + 11]) >>> 0;
  const doff = (buf[o + 12] >>> 4) << 2;
  v.tcpHeaderLen = doff;
  v.tcpFlags = buf[o + 13];
  v.window = (buf[o + 14] << 8) | buf[o + 15];
  if (doff < 20 || doff > l) {
    v.malformed = Malformed.BAD_TCP_DOFF;
    return false;
  }
  if (doff > 20) parseTcpOptions(buf, o + 20, o + doff, v);
  v.payloadOff = o + doff;
  v.payloadLen = l - doff;
  return true;
}

/**
 * Walks the option bytes [p, end) like the kernel: EOL ends, NOP skips one byte,
 * any other option needs a length byte >= 2 that fits in the remaining bytes,
 * otherwise parsing stops (the packet stays valid). Window scale (len 3, capped
 * at 14), SACK-permitted (len 2) and MSS (len 4) are recorded, the last
 * occurrence winning; the first well-formed SACK option (len 2 + 8n, n >= 1)
 * gives sackRight = the modular maximum of its right edges, later SACK options
 * are ignored (tcp_sack returns after the first).
 */
function parseTcpOptions(buf: Uint8Array, p: number, end: number, v: PacketView): void {
  let sackDone = 0;
  while (p < end) {
    const kind = buf[p];
    if (kind === TCPOPT_EOL) return;
    if (kind === TCPOPT_NOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) return; // no room for the length byte
    const size = buf[p + 1];
    if (size < 2 || size > end - p) return; // silly or partial option
    if (kind === TCPOPT_WINDOW) {
      if (size === 3) {
        const s = buf[p + 2];
        v.optWscale = s > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : s;
      }
    } else if (kind === TCPOPT_SACK_PERM) {
      if (size === 2) v.optSackPerm = 1;
    } else if (kind === TCPOPT_MSS) {
      if (size === 4) v.optMss = (buf[p + 2] << 8) | buf[p + 3];
    } else if (kind === TCPOPT_SACK) {
      if (sackDone === 0 && size >= 10 && ((size - 2) & 7) === 0) {
        sackDone = 1;
        let right = 0;
        for (let q = p + 2; q < p + size; q += 8) {
          const r = ((buf[q + 4] << 24) | (buf[q + 5] << 16) | (buf[q + 6] << 8) | buf[q + 7]) >>> 0;
          // modular "after(r, right)": (int32)(r - right) > 0
          if (q === p + 2 || ((r - right) | 0) > 0) right = r;
        }
        v.hasSack = 1;
        v.sackRight = right;
      }
    }
    p += size;
  }
}
