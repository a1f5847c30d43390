/**
 * UDP and UDP-Lite header parsing (the kernel's udp_error / udplite_error in
 * net/netfilter/nf_conntrack_proto_udp.c). Hot path: no allocation.
 */
import { IPPROTO_UDPLITE, Malformed, type PacketView } from './view';

/**
 * Parses the UDP (or UDP-Lite) header at v.l4off. UDP: the length field must
 * satisfy 8 <= len <= bytes present (BAD_UDP_LEN); the payload is the len - 8
 * bytes after the header. UDP-Lite: the field is the checksum coverage, 0 =
 * whole datagram, otherwise 8 <= coverage <= bytes present; the payload is
 * everything after the header. Ports are read as soon as 4 bytes are present.
 */
export function parseUdp(buf: Uint8Array, v: PacketView): boolean {
  const o = v.l4off;
  const l = v.l4len;
  if (l < 4) {
    v.malformed = Malformed.TRUNCATED_L4;
    return false;
  }
  v.sport = (buf[o] << 8) | buf[o + 1];
  v.dport = (buf[o + 2] << 8) | buf[o + 3];
  if (l < 8) {
    v.malformed = Malformed.TRUNCATED_L4;
    return false;
  }
  const ulen = (buf[o + 4] << 8) | buf[o + 5];
  v.udpLen = ulen;
  if (v.proto === IPPROTO_UDPLITE) {
    if (ulen !== 0 && (ulen < 8 || ulen > l)) {
      v.malformed = Malformed.BAD_UDP_LEN;
      return false;
    }
    v.payloadOff = o + 8;
    v.payloadLen = l - 8;
    return true;
  }
  if (ulen < 8 || ulen > l) {
    v.malformed = Malformed.BAD_UDP_LEN;
    return false;
  }
  v.payloadOff = o + 8;
  v.payloadLen = ulen - 8;
  return true;
}
