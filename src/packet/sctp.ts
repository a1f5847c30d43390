/**
 * SCTP common header and chunks (RFC 9260 §3), read the way the kernel reads them:
 * nf_ct_get_tuple takes the ports from the first 4 bytes, sctp_error wants the whole
 * 12-byte common header, and nf_conntrack_proto_sctp.c / xt_sctp.c walk the chunks by their
 * length field rounded up to 4. The checksum is CRC32c (sctp_compute_cksum). Hot path: no
 * allocation.
 */
import { get16, get32 } from './bytes';
import { Malformed, type PacketView } from './view';

/** Size of the common header (struct sctphdr) and of a chunk header (struct sctp_chunkhdr). */
export const SCTP_HEADER_LEN = 12;
export const SCTP_CHUNK_HEADER_LEN = 4;

/* chunk types (enum sctp_cid) */
export const SCTP_CID_DATA = 0;
export const SCTP_CID_INIT = 1;
export const SCTP_CID_INIT_ACK = 2;
export const SCTP_CID_SACK = 3;
export const SCTP_CID_HEARTBEAT = 4;
export const SCTP_CID_HEARTBEAT_ACK = 5;
export const SCTP_CID_ABORT = 6;
export const SCTP_CID_SHUTDOWN = 7;
export const SCTP_CID_SHUTDOWN_ACK = 8;
export const SCTP_CID_ERROR = 9;
export const SCTP_CID_COOKIE_ECHO = 10;
export const SCTP_CID_COOKIE_ACK = 11;
export const SCTP_CID_SHUTDOWN_COMPLETE = 14;

/** The T bit of ABORT and SHUTDOWN_COMPLETE (SCTP_CHUNK_FLAG_T). */
export const SCTP_CHUNK_FLAG_T = 0x01;

/**
 * Parses the SCTP common header at v.l4off: ports as soon as 4 bytes are present (the tuple),
 * TRUNCATED_L4 below the 12-byte header (sctp_error's "short packet"; xt_sctp hotdrops it).
 * The payload is everything after the common header: the chunks.
 */
export function parseSctp(buf: Uint8Array, v: PacketView): boolean {
  const o = v.l4off;
  const l = v.l4len;
  if (l < 4) {
    v.malformed = Malformed.TRUNCATED_L4;
    return false;
  }
  v.sport = get16(buf, o);
  v.dport = get16(buf, o + 2);
  if (l < SCTP_HEADER_LEN) {
    v.malformed = Malformed.TRUNCATED_L4;
    return false;
  }
  v.payloadOff = o + SCTP_HEADER_LEN;
  v.payloadLen = l - SCTP_HEADER_LEN;
  return true;
}

/** The verification tag of the common header (unsigned). */
export function sctpVtag(v: PacketView): number {
  return get32(v.buf, v.l4off + 4);
}

/** The chunk header at `off` is readable: skb_header_pointer(offset, sizeof(struct sctp_chunkhdr)) succeeds. */
export function sctpChunkReadable(v: PacketView, off: number): boolean {
  return off + SCTP_CHUNK_HEADER_LEN <= v.l4off + v.l4len;
}

/** The chunk's length field. */
export function sctpChunkLength(buf: Uint8Array, off: number): number {
  return get16(buf, off + 2);
}

/** Where the chunk after the one at `off` starts: offset += (ntohs(sch->length) + 3) & ~3. */
export function sctpNextChunk(buf: Uint8Array, off: number): number {
  return off + ((sctpChunkLength(buf, off) + 3) & ~3);
}

/**
 * CRC32c (Castagnoli, reflected polynomial 0x82f63b78), sliced by 8: T[k * 256 + n] is the CRC
 * register after byte n followed by k zero bytes, so eight bytes take one step.
 */
const T = new Uint32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  T[n] = c >>> 0;
}
for (let k = 1; k < 8; k++) for (let n = 0; n < 256; n++) T[k * 256 + n] = (T[(k - 1) * 256 + n] >>> 8) ^ T[T[(k - 1) * 256 + n] & 0xff];

/** Continues a CRC32c register `crc` (not inverted) over buf[off, off+len). */
export function crc32cUpdate(crc: number, buf: Uint8Array, off: number, len: number): number {
  const end = off + len;
  let i = off;
  for (; i + 8 <= end; i += 8) {
    const w = crc ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    crc =
      T[1792 + (w & 0xff)] ^
      T[1536 + ((w >>> 8) & 0xff)] ^
      T[1280 + ((w >>> 16) & 0xff)] ^
      T[1024 + (w >>> 24)] ^
      T[768 + buf[i + 4]] ^
      T[512 + buf[i + 5]] ^
      T[256 + buf[i + 6]] ^
      T[buf[i + 7]];
  }
  for (; i < end; i++) crc = T[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  return crc >>> 0;
}

/** crc32c(~0, data) inverted: the standard CRC32c of buf[off, off+len) (0xe3069283 for "123456789"). */
export function crc32c(buf: Uint8Array, off: number, len: number): number {
  return ~crc32cUpdate(0xffffffff, buf, off, len) >>> 0;
}

/**
 * sctp_compute_cksum: the CRC32c of the SCTP packet buf[off, off+len) with its checksum field
 * (bytes 8-11) counted as zero. The field holds this value least significant byte first.
 */
export function sctpChecksum(buf: Uint8Array, off: number, len: number): number {
  let crc = crc32cUpdate(0xffffffff, buf, off, 8);
  for (let i = 0; i < 4; i++) crc = T[crc & 0xff] ^ (crc >>> 8);
  crc = crc32cUpdate(crc >>> 0, buf, off + SCTP_HEADER_LEN, len - SCTP_HEADER_LEN);
  return ~crc >>> 0;
}

/** Whether the SCTP packet buf[off, off+len) carries its correct CRC32c (len >= 12). */
export function verifySctpChecksum(buf: Uint8Array, off: number, len: number): boolean {
  const stored = (buf[off + 8] | (buf[off + 9] << 8) | (buf[off + 10] << 16) | (buf[off + 11] << 24)) >>> 0;
  return stored === sctpChecksum(buf, off, len);
}
