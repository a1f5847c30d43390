/**
 * Capture file reading for `nfqwall replay`: classic pcap and pcapng.
 *
 * A file is read through a window of a few MB (PcapReader.open): memory is bounded by the
 * window and the largest block, not by the file's size; a buffer given whole is its own
 * window. Every packet handed out is a subarray of a window (no copy), valid as long as the
 * caller keeps it (a window is never reused). Supported:
 *  - classic pcap in either byte order, microsecond (0xa1b2c3d4) and nanosecond
 *    (0xa1b23c4d) magic, and the "modified" Kuznetzov format (0xa1b2cd34);
 *  - pcapng: Section Header Blocks of either byte order (several sections per
 *    file), Interface Description Blocks (link type, if_tsresol, if_tsoffset),
 *    Enhanced and Simple Packet Blocks; Obsolete Packet Blocks and every other
 *    block type are skipped;
 *  - link types: Ethernet (1; up to two 802.1Q / 802.1ad tags), raw IP (101, 12,
 *    14), IPv4 (228), IPv6 (229), Linux cooked SLL (113) and SLL2 (276), BSD
 *    loopback / null (0) and OpenBSD loop (108).
 *
 * Frames that do not carry IPv4 / IPv6 (ARP, LLDP, other ethertypes, unknown link
 * types, raw frames whose version nibble is not 4 or 6) are skipped and counted.
 *
 * Corrupt or truncated files: the packets before the damage are yielded, then a
 * PcapError is thrown whose message names the file and the offset, e.g.
 * `capture.pcap: truncated packet record at offset 1234`. Every loop advances
 * by at least one record header, so garbage cannot cause an infinite loop.
 */
import * as fs from 'node:fs';
import { LINKTYPE_NFLOG, NFULA_PAYLOAD } from './nflog';

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW_12 = 12;
export const LINKTYPE_RAW_14 = 14;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_MAGIC_MODIFIED = 0xa1b2cd34;
export const PCAPNG_SHB = 0x0a0d0d0a;
export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const PCAPNG_IDB = 0x00000001;
export const PCAPNG_OPB = 0x00000002;
export const PCAPNG_SPB = 0x00000003;
export const PCAPNG_EPB = 0x00000006;

/** libpcap's MAXIMUM_SNAPLEN: larger captured lengths are corruption. */
export const MAX_CAPLEN = 262144;
/** libpcap's pcapng MAX_BLOCKSIZE: a larger block that must be read is corruption. */
export const MAX_BLOCK = 16 * 1024 * 1024;
/** bytes read from a file at a time */
const WINDOW = 4 * 1024 * 1024;

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const ETH_P_QINQ1 = 0x9100; // pre-standard QinQ outer tag

export interface PcapPacket {
  /** Capture time in milliseconds since the Unix epoch (fractional). */
  tsMs: number;
  /** The IP packet (from its first header byte to the end of the captured frame): a subarray of the file buffer. */
  data: Uint8Array;
  /** Length of the frame on the wire (may exceed the captured length). */
  origLen: number;
  /** Captured length of the frame (link-layer header included). */
  capLen: number;
  /** Interface: pcap 0; pcapng the interface id within its section (EPB), 0 for SPB. */
  ifIndex: number;
  /** Link type of the interface the frame was captured on. */
  linkType: number;
  /** 4 or 6, from the link layer (ethertype / protocol / AF) or the version nibble for raw IP. */
  family: number;
  /** 0-based number of this packet among the file's packet records (skipped frames included). */
  record: number;
  /** Byte offset of the record (pcap record header / pcapng block) in the file. */
  offset: number;
}

export interface PcapStats {
  /** Packet records read (pcap records, pcapng EPB/SPB). */
  records: number;
  /** Packets yielded. */
  packets: number;
  /** Frames skipped because they do not carry IPv4/IPv6 (or the link type is unsupported). */
  nonIp: number;
  /** pcapng blocks skipped (OPB, NRB, ISB, DSB, custom, unknown). */
  skippedBlocks: number;
}

export class PcapError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'PcapError';
  }
}

interface Iface {
  linkType: number;
  snaplen: number;
  /** timestamp units per second */
  unitsPerSec: number;
  /** seconds added to every timestamp (if_tsoffset) */
  tsOffsetSec: number;
}

export type CaptureFormat = 'pcap' | 'pcapng';

/** Detects the format from the first four bytes; null if neither. */
export function detectFormat(buf: Uint8Array): CaptureFormat | null {
  if (buf.length < 4) return null;
  const le = (buf[0] | (buf[1] << 8) | (buf[2] << 16) | (buf[3] << 24)) >>> 0;
  const be = ((buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3]) >>> 0;
  for (const m of [le, be]) {
    if (m === PCAP_MAGIC_US || m === PCAP_MAGIC_NS || m === PCAP_MAGIC_MODIFIED) return 'pcap';
  }
  if (le === PCAPNG_SHB) return 'pcapng';
  return null;
}

/**
 * Reader over a whole capture held in memory. Iterate `packets()` (or the reader
 * itself); it throws a PcapError after the last good packet if the file is corrupt.
 */
export class PcapReader implements Iterable<PcapPacket> {
  readonly stats: PcapStats = { records: 0, packets: 0, nonIp: 0, skippedBlocks: 0 };
  readonly format: CaptureFormat;
  /** the window: bytes [base, base + buf.length) of the capture */
  private buf: Uint8Array;
  private dv: DataView;
  private base = 0;
  /** family found by the last decapsulation */
  private fam = 0;
  /** offset of the IP packet found by the last decapsulation */
  private ipOff = 0;

  /** A capture held whole in buf, or (with `file`) the first window of an open file descriptor. */
  constructor(
    buf: Uint8Array,
    readonly name = 'capture',
    private readonly file?: { fd: number; size: number },
  ) {
    this.buf = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.length < 4) throw new PcapError(name, 0, buf.length === 0 ? 'empty file' : 'truncated file header at offset 0');
    const f = detectFormat(buf);
    if (f === null) {
      const hex = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
      throw new PcapError(name, 0, `not a pcap or pcapng file (magic 0x${hex})`);
    }
    this.format = f;
  }

  /** Reads the capture file at path through a window. Throws PcapError when it cannot be read or is not a capture. */
  static open(path: string): PcapReader {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw new PcapError(path, 0, (err as Error).message);
    }
    try {
      const size = fs.fstatSync(fd).size;
      const first = Buffer.allocUnsafe(Math.min(WINDOW, size));
      const got = fs.readSync(fd, first, 0, first.length, 0);
      return new PcapReader(first.subarray(0, got), path, { fd, size });
    } catch (err) {
      fs.closeSync(fd);
      throw err instanceof PcapError ? err : new PcapError(path, 0, (err as Error).message);
    }
  }

  /** Closes the file of PcapReader.open (nothing for a buffer). */
  close(): void {
    if (this.file && this.file.fd >= 0) fs.closeSync(this.file.fd);
    if (this.file) this.file.fd = -1;
  }

  /** The capture's length in bytes. */
  private get size(): number {
    return this.file ? this.file.size : this.buf.length;
  }

  /**
   * Makes bytes [off, off + n) of the window (off relative to it) readable and returns their
   * offset in the (possibly new) window, or -1 when the capture ends first.
   */
  private need(off: number, n: number): number {
    if (off + n <= this.buf.length) return off;
    const at = this.base + off;
    if (!this.file || at + n > this.file.size) return -1;
    const w = Buffer.allocUnsafe(Math.min(Math.max(WINDOW, n), this.file.size - at));
    const got = fs.readSync(this.file.fd, w, 0, w.length, at);
    if (got < n) return -1;
    this.buf = w.subarray(0, got);
    this.dv = new DataView(w.buffer, w.byteOffset, got);
    this.base = at;
    return 0;
  }

  /** u32 at absolute file offset at (read directly for a block not loaded). */
  private u32At(at: number, le: boolean): number {
    if (at >= this.base && at + 4 <= this.base + this.buf.length) return this.dv.getUint32(at - this.base, le);
    const b = Buffer.alloc(4);
    fs.readSync(this.file!.fd, b, 0, 4, at);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, le);
  }

  [Symbol.iterator](): Iterator<PcapPacket> {
    return this.packets();
  }

  packets(): Generator<PcapPacket> {
    return this.format === 'pcap' ? this.readPcap() : this.readPcapng();
  }

  /** offset: within the window */
  private fail(offset: number, reason: string): never {
    const at = this.base + offset;
    throw new PcapError(this.name, at, `${reason} at offset ${at}`);
  }

  // ------------------------------------------------------------------ classic pcap

  private *readPcap(): Generator<PcapPacket> {
    if (this.need(0, 24) < 0) this.fail(0, 'truncated file header');
    let dv = this.dv;
    const mle = dv.getUint32(0, true);
    const le = mle === PCAP_MAGIC_US || mle === PCAP_MAGIC_NS || mle === PCAP_MAGIC_MODIFIED;
    const magic = dv.getUint32(0, le);
    const unitsPerSec = magic === PCAP_MAGIC_NS ? 1e9 : 1e6;
    const hdrLen = magic === PCAP_MAGIC_MODIFIED ? 24 : 16;
    const linkType = dv.getUint32(20, le) & 0xffff; // upper bits: FCS length info
    const iface: Iface = { linkType, snaplen: dv.getUint32(16, le), unitsPerSec, tsOffsetSec: 0 }; // thiszone is always 0 in practice (libpcap ignores it)
    let off = 24;
    while (this.base + off < this.size) {
      const at = this.need(off, hdrLen);
      if (at < 0) this.fail(off, 'truncated packet record');
      off = at;
      dv = this.dv;
      const sec = dv.getUint32(off, le);
      const frac = dv.getUint32(off + 4, le);
      const capLen = dv.getUint32(off + 8, le);
      const origLen = dv.getUint32(off + 12, le);
      if (capLen > MAX_CAPLEN) this.fail(off, `bad packet record (captured length ${capLen})`);
      const whole = this.need(off, hdrLen + capLen);
      if (whole < 0) this.fail(off, 'truncated packet record');
      off = whole;
      const dataOff = off + hdrLen;
      const tsMs = (sec + iface.tsOffsetSec) * 1000 + (frac * 1000) / unitsPerSec;
      const p = this.decap(iface.linkType, dataOff, capLen, tsMs, origLen, 0, off);
      if (p) yield p;
      off = dataOff + capLen;
    }
  }

  // ------------------------------------------------------------------ pcapng

  private *readPcapng(): Generator<PcapPacket> {
    let dv = this.dv;
    let le = true;
    let ifaces: Iface[] = [];
    let lastTs = 0;
    let off = 0;
    let inSection = false;
    while (this.base + off < this.size) {
      const at = this.need(off, 12);
      if (at < 0) this.fail(off, 'truncated block');
      off = at;
      dv = this.dv;
      const rawType = dv.getUint32(off, true);
      if (rawType === PCAPNG_SHB) {
        // byte order of the new section
        const shb = this.need(off, 28);
        if (shb < 0) this.fail(off, 'truncated section header block');
        off = shb;
        dv = this.dv;
        const bom = dv.getUint32(off + 8, true);
        if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = true;
        else if (bom === 0x4d3c2b1a) le = false;
        else this.fail(off, `bad byte-order magic 0x${bom.toString(16)} in section header block`);
        const major = dv.getUint16(off + 12, le);
        if (major !== 1) this.fail(off, `unsupported pcapng version ${major}`);
        ifaces = [];
        inSection = true;
      } else if (!inSection) {
        this.fail(off, 'pcapng block before the section header');
      }
      const type = dv.getUint32(off, le);
      const total = dv.getUint32(off + 4, le);
      if (total < 12 || total % 4 !== 0) this.fail(off, `bad block length ${total}`);
      if (total > this.size - (this.base + off)) this.fail(off, type === PCAPNG_EPB || type === PCAPNG_SPB ? 'truncated packet record' : 'truncated block');
      const used = type === PCAPNG_SHB || type === PCAPNG_IDB || type === PCAPNG_EPB || type === PCAPNG_SPB;
      if (used) {
        // a block that is read is loaded whole (libpcap refuses those beyond MAX_BLOCK)
        if (total > MAX_BLOCK) this.fail(off, `bad block length ${total}`);
        off = this.need(off, total);
        dv = this.dv;
      }
      const trailer = this.u32At(this.base + off + total - 4, le);
      if (trailer !== total) this.fail(off, `block length mismatch (${total} vs trailer ${trailer})`);
      const body = off + 8;
      const bodyEnd = off + total - 4;
      switch (type) {
        case PCAPNG_SHB:
          break;
        case PCAPNG_IDB: {
          if (bodyEnd - body < 8) this.fail(off, 'truncated interface description block');
          const iface: Iface = { linkType: dv.getUint16(body, le), snaplen: dv.getUint32(body + 4, le), unitsPerSec: 1e6, tsOffsetSec: 0 };
          this.idbOptions(iface, body + 8, bodyEnd, le, off);
          ifaces.push(iface);
          break;
        }
        case PCAPNG_EPB: {
          this.stats.records++;
          if (bodyEnd - body < 20) this.fail(off, 'truncated packet record');
          const ifId = dv.getUint32(body, le);
          const tsHigh = dv.getUint32(body + 4, le);
          const tsLow = dv.getUint32(body + 8, le);
          const capLen = dv.getUint32(body + 12, le);
          const origLen = dv.getUint32(body + 16, le);
          const dataOff = body + 20;
          if (capLen > bodyEnd - dataOff) this.fail(off, 'truncated packet record');
          if (ifId >= ifaces.length) this.fail(off, `packet for undefined interface ${ifId}`);
          const iface = ifaces[ifId];
          const units = tsHigh * 4294967296 + tsLow;
          const tsMs = (units * 1000) / iface.unitsPerSec + iface.tsOffsetSec * 1000;
          lastTs = tsMs;
          const p = this.decap(iface.linkType, dataOff, capLen, tsMs, origLen, ifId, off, true);
          if (p) yield p;
          break;
        }
        case PCAPNG_SPB: {
          this.stats.records++;
          if (bodyEnd - body < 4) this.fail(off, 'truncated packet record');
          if (ifaces.length === 0) this.fail(off, 'packet for undefined interface 0');
          const iface = ifaces[0];
          const origLen = dv.getUint32(body, le);
          let capLen = Math.min(origLen, bodyEnd - body - 4);
          if (iface.snaplen > 0) capLen = Math.min(capLen, iface.snaplen);
          // no timestamp in an SPB: it inherits the previous packet's
          const p = this.decap(iface.linkType, body + 4, capLen, lastTs, origLen, 0, off, true);
          if (p) yield p;
          break;
        }
        default:
          this.stats.skippedBlocks++;
      }
      off += total;
    }
  }

  private idbOptions(iface: Iface, o: number, end: number, le: boolean, blockOff: number): void {
    const dv = this.dv;
    while (end - o >= 4) {
      const code = dv.getUint16(o, le);
      const len = dv.getUint16(o + 2, le);
      if (code === 0) return; // opt_endofopt
      const v = o + 4;
      if (len > end - v) this.fail(blockOff, 'truncated interface description block option');
      if (code === 9 && len >= 1) {
        // if_tsresol
        const r = this.buf[v];
        iface.unitsPerSec = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
        if (!Number.isFinite(iface.unitsPerSec) || iface.unitsPerSec <= 0) this.fail(blockOff, `bad if_tsresol ${r}`);
      } else if (code === 14 && len >= 8) {
        // if_tsoffset: signed 64-bit seconds
        const hi = dv.getInt32(le ? v + 4 : v, le);
        const lo = dv.getUint32(le ? v : v + 4, le);
        iface.tsOffsetSec = hi * 4294967296 + lo;
      }
      o = v + ((len + 3) & ~3);
    }
  }

  // ------------------------------------------------------------------ link layers

  private decap(
    linkType: number,
    off: number,
    capLen: number,
    tsMs: number,
    origLen: number,
    ifIndex: number,
    recOff: number,
    counted = false,
  ): PcapPacket | null {
    if (!counted) this.stats.records++;
    const record = this.stats.records - 1;
    if (!this.findIp(linkType, off, capLen)) {
      this.stats.nonIp++;
      return null;
    }
    this.stats.packets++;
    return {
      tsMs,
      data: this.buf.subarray(this.ipOff, off + capLen),
      origLen,
      capLen,
      ifIndex,
      linkType,
      family: this.fam,
      record,
      offset: this.base + recOff,
    };
  }

  /** Sets this.ipOff / this.fam for the frame at buf[off, off+len); false if it is not IP. */
  private findIp(linkType: number, off: number, len: number): boolean {
    const b = this.buf;
    const end = off + len;
    switch (linkType) {
      case LINKTYPE_ETHERNET: {
        if (len < 14) return false;
        let p = off + 12;
        let et = (b[p] << 8) | b[p + 1];
        for (let tags = 0; tags < 2 && (et === ETH_P_8021Q || et === ETH_P_8021AD || et === ETH_P_QINQ1); tags++) {
          p += 4;
          if (p + 2 > end) return false;
          et = (b[p] << 8) | b[p + 1];
        }
        return this.ethertype(et, p + 2, end);
      }
      case LINKTYPE_RAW:
      case LINKTYPE_RAW_12:
      case LINKTYPE_RAW_14:
        return this.nibble(off, end, 0);
      case LINKTYPE_IPV4:
        return this.nibble(off, end, 4);
      case LINKTYPE_IPV6:
        return this.nibble(off, end, 6);
      case LINKTYPE_LINUX_SLL:
        if (len < 16) return false;
        return this.ethertype((b[off + 14] << 8) | b[off + 15], off + 16, end);
      case LINKTYPE_LINUX_SLL2:
        if (len < 20) return false;
        return this.ethertype((b[off] << 8) | b[off + 1], off + 20, end);
      case LINKTYPE_NFLOG: {
        // nfgenmsg, then TLVs (little-endian headers, as written on this machine): the payload's
        for (let p = off + 4; p + 4 <= end;) {
          const tl = b[p] | (b[p + 1] << 8);
          if (tl < 4 || p + tl > end) return false;
          if ((b[p + 2] | ((b[p + 3] & 0x7f) << 8)) === NFULA_PAYLOAD) return this.set(p + 4, b[off] === 10 ? 6 : 4, p + tl);
          p += (tl + 3) & ~3;
        }
        return false;
      }
      case LINKTYPE_NULL:
      case LINKTYPE_LOOP: {
        if (len < 4) return false;
        const be = ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
        const le = ((b[off + 3] << 24) | (b[off + 2] << 16) | (b[off + 1] << 8) | b[off]) >>> 0;
        // NULL: the capturing host's byte order (unknown); LOOP: network order.
        const af = linkType === LINKTYPE_LOOP ? be : be < 0x10000 ? be : le;
        if (af === 2) return this.set(off + 4, 4, end);
        if (af === 10 || af === 24 || af === 28 || af === 30) return this.set(off + 4, 6, end);
        return false;
      }
      default:
        return false;
    }
  }

  private ethertype(et: number, p: number, end: number): boolean {
    if (et === ETH_P_IP) return this.set(p, 4, end);
    if (et === ETH_P_IPV6) return this.set(p, 6, end);
    return false;
  }

  private nibble(p: number, end: number, want: number): boolean {
    if (p >= end) return false;
    const v = this.buf[p] >> 4;
    if (v !== 4 && v !== 6) return false;
    if (want !== 0 && v !== want) return false;
    return this.set(p, v, end);
  }

  private set(p: number, fam: number, end: number): boolean {
    if (p >= end) return false;
    this.ipOff = p;
    this.fam = fam;
    return true;
  }
}

/** Opens a capture file (read through a window). Throws PcapError for a file that is not a capture. */
export function openCapture(path: string): PcapReader {
  return PcapReader.open(path);
}

export interface CaptureContents {
  packets: PcapPacket[];
  stats: PcapStats;
  format: CaptureFormat | null;
  /** Set when the file is corrupt or truncated; `packets` holds everything before the damage. */
  error: PcapError | null;
}

/** Reads every packet of a capture in memory (never throws). */
export function readCapture(buf: Uint8Array, name = 'capture'): CaptureContents {
  const packets: PcapPacket[] = [];
  let reader: PcapReader;
  try {
    reader = new PcapReader(buf, name);
  } catch (err) {
    return { packets, stats: { records: 0, packets: 0, nonIp: 0, skippedBlocks: 0 }, format: null, error: toPcapError(err, name) };
  }
  try {
    for (const p of reader) packets.push(p);
  } catch (err) {
    return { packets, stats: reader.stats, format: reader.format, error: toPcapError(err, name) };
  }
  return { packets, stats: reader.stats, format: reader.format, error: null };
}

/** readCapture() on a file (every packet kept: for small captures; replay streams with openCapture). */
export function readCaptureFile(path: string): CaptureContents {
  const packets: PcapPacket[] = [];
  let reader: PcapReader;
  try {
    reader = PcapReader.open(path);
  } catch (err) {
    return { packets, stats: { records: 0, packets: 0, nonIp: 0, skippedBlocks: 0 }, format: null, error: toPcapError(err, path) };
  }
  try {
    for (const p of reader) packets.push(p);
  } catch (err) {
    return { packets, stats: reader.stats, format: reader.format, error: toPcapError(err, path) };
  } finally {
    reader.close();
  }
  return { packets, stats: reader.stats, format: reader.format, error: null };
}

function toPcapError(err: unknown, name: string): PcapError {
  if (err instanceof PcapError) return err;
  return new PcapError(name, 0, String((err as Error)?.message ?? err));
}
