/**
 * IPv4 header parsing (the kernel's ip_rcv_core checks, then ipv4_get_l4proto).
 * Hot path: index arithmetic only, no allocation.
 */
import { Malformed, type PacketView } from './view';

/**
 * Parses the IPv4 header at v.off (v.len bytes available). On success sets the
 * L3 fields, clips v.len to tot_len, sets v.l4off/v.l4len and returns true.
 * Fields are filled as soon as they can be read, so a packet that fails a later
 * check keeps its addresses.
 */
export function parseIp4(buf: Uint8Array, v: PacketView): boolean {
  const off = v.off;
  const len = v.len;
  v.ipVersion = 4;
  if (len < 20) {
    v.malformed = Malformed.TOO_SHORT;
    return false;
  }
  const ihl = (buf[off] & 0x0f) << 2;
  v.tos = buf[off + 1];
  const totLen = (buf[off + 2] << 8) | buf[off + 3];
  v.ipTotalLen = totLen;
  v.ipId = (buf[off + 4] << 8) | buf[off + 5];
  const fo = (buf[off + 6] << 8) | buf[off + 7];
  v.dontFragment = (fo >>> 14) & 1;
  v.moreFragments = (fo >>> 13) & 1;
  v.fragOffset = (fo & 0x1fff) << 3;
  v.isFragment = v.moreFragments | (v.fragOffset !== 0 ? 1 : 0);
  v.ttl = buf[off + 8];
  v.proto = buf[off + 9];
  v.src[0] = ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
  v.dst[0] = ((buf[off + 16] << 24) | (buf[off + 17] << 16) | (buf[off + 18] << 8) | buf[off + 19]) >>> 0;

  if (ihl < 20 || ihl > len) {
    v.malformed = Malformed.BAD_IHL;
    return false;
  }
  if (totLen < ihl || totLen > len) {
    // tot_len smaller than the header, or more than the bytes we have (ip_rcv_core drops both)
    v.malformed = Malformed.BAD_TOTAL_LEN;
    return false;
  }
  v.len = totLen; // trailing bytes (Ethernet padding) are not part of the packet
  v.l4off = off + ihl;
  v.l4len = totLen - ihl;
  return true;
}
