/**
 * The NFLOG link type (LINKTYPE_NFLOG, 239: what `tcpdump -i nflog:N -w` writes): an nfgenmsg
 * header (family, version 0, the group as resource id, big endian) and the nfnetlink_log
 * attributes as TLVs (length and type in the writing host's byte order, values in network
 * order, each padded to 4 bytes), in the order __build_packet_message puts them.
 * `nfqwall nflog --pcap` writes a stream of these; the reader takes NFULA_PAYLOAD out of them.
 */
export const LINKTYPE_NFLOG = 239;
export const NFULA_PACKET_HDR = 1;
export const NFULA_MARK = 2;
export const NFULA_IFINDEX_INDEV = 4;
export const NFULA_IFINDEX_OUTDEV = 5;
export const NFULA_PAYLOAD = 9;
export const NFULA_PREFIX = 10;

export interface NflogFrame {
  group: number;
  /** 4 or 6 */
  family: number;
  hook: number;
  indev: number;
  outdev: number;
  mark: number;
  prefix: string;
  data: Uint8Array;
}

/** One frame (nfgenmsg + TLVs). */
export function encodeNflogFrame(f: NflogFrame): Uint8Array {
  const prefix = Buffer.from(f.prefix + '\0');
  const tlvs: [number, Uint8Array][] = [];
  const be16 = (n: number) => Uint8Array.of(n >>> 8, n & 0xff);
  const be32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  tlvs.push([NFULA_PACKET_HDR, Uint8Array.of(...be16(f.family === 6 ? 0x86dd : 0x0800), f.hook, 0)]);
  // xt_NFLOG always passes its prefix: an empty one is a lone NUL
  tlvs.push([NFULA_PREFIX, prefix]);
  if (f.indev) tlvs.push([NFULA_IFINDEX_INDEV, be32(f.indev)]);
  if (f.outdev) tlvs.push([NFULA_IFINDEX_OUTDEV, be32(f.outdev)]);
  if (f.mark) tlvs.push([NFULA_MARK, be32(f.mark >>> 0)]);
  tlvs.push([NFULA_PAYLOAD, f.data]);
  let size = 4;
  for (const [, v] of tlvs) size += (4 + v.length + 3) & ~3;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out[0] = f.family === 6 ? 10 : 2;
  out[1] = 0;
  dv.setUint16(2, f.group, false);
  let p = 4;
  for (const [type, v] of tlvs) {
    dv.setUint16(p, 4 + v.length, true);
    dv.setUint16(p + 2, type, true);
    out.set(v, p + 4);
    p += (4 + v.length + 3) & ~3;
  }
  return out;
}

/** The attributes of a frame: type → value (little-endian TLV headers; a bad length ends the walk). */
export function nflogAttributes(frame: Uint8Array): { family: number; group: number; attrs: Map<number, Uint8Array> } {
  const attrs = new Map<number, Uint8Array>();
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  for (let p = 4; p + 4 <= frame.length;) {
    const len = dv.getUint16(p, true);
    if (len < 4 || p + len > frame.length) break;
    attrs.set(dv.getUint16(p + 2, true) & 0x7fff, frame.subarray(p + 4, p + len));
    p += (len + 3) & ~3;
  }
  return { family: frame[0] === 10 ? 6 : 4, group: frame.length >= 4 ? dv.getUint16(2, false) : 0, attrs };
}

/** A pcap file header (little endian, microseconds) for a stream of frames of this link type. */
export function pcapFileHeader(linkType: number, snaplen = 262144): Uint8Array {
  const h = new Uint8Array(24);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, 0xa1b2c3d4, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setUint32(16, snaplen, true);
  dv.setUint32(20, linkType, true);
  return h;
}

/** One pcap record: header and frame. */
export function pcapRecord(tsMs: number, frame: Uint8Array, origLen = frame.length): Uint8Array {
  const r = new Uint8Array(16 + frame.length);
  const dv = new DataView(r.buffer);
  const us = Math.round(tsMs * 1000);
  dv.setUint32(0, Math.floor(us / 1e6), true);
  dv.setUint32(4, us % 1e6, true);
  dv.setUint32(8, frame.length, true);
  dv.setUint32(12, Math.max(origLen, frame.length), true);
  r.set(frame, 16);
  return r;
}
