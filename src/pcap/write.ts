/**
 * Classic pcap writer (for tests and tools that produce captures): LINKTYPE_RAW
 * (101, the IP packet as is) or Ethernet (1, the IP packet wrapped in an Ethernet
 * header, optionally with 802.1Q / 802.1ad tags). Microsecond or nanosecond
 * timestamps, either byte order.
 */
import * as fs from 'node:fs';
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, PCAP_MAGIC_NS, PCAP_MAGIC_US } from './read';

export interface PcapWriterOptions {
  /** LINKTYPE_RAW (101, default) or LINKTYPE_ETHERNET (1). */
  linkType?: number;
  /** Nanosecond timestamps (magic 0xa1b23c4d); default microseconds. */
  nanosecond?: boolean;
  /** Write a big-endian file; default little-endian. */
  bigEndian?: boolean;
  /** Snapshot length in the header and the cut applied to every frame (default 262144). */
  snaplen?: number;
}

export interface AddOptions {
  /** Ethernet: destination / source MAC (6 bytes each). */
  dstMac?: Uint8Array | number[];
  srcMac?: Uint8Array | number[];
  /** Ethernet: ethertype (default from the IP version nibble: 0x0800 / 0x86dd). */
  ethertype?: number;
  /** Ethernet: VLAN tags outermost first, each { tpid (0x8100 / 0x88a8), vid, pcp? }. */
  vlans?: { tpid?: number; vid: number; pcp?: number }[];
  /** Original length of the frame (default the frame length; must be ≥ the captured length). */
  origLen?: number;
}

const DEFAULT_DST_MAC = [0x02, 0, 0, 0, 0, 0x02];
const DEFAULT_SRC_MAC = [0x02, 0, 0, 0, 0, 0x01];

export class PcapWriter {
  readonly linkType: number;
  readonly nanosecond: boolean;
  readonly bigEndian: boolean;
  readonly snaplen: number;
  private readonly chunks: Uint8Array[] = [];
  private count = 0;

  constructor(opts: PcapWriterOptions = {}) {
    this.linkType = opts.linkType ?? LINKTYPE_RAW;
    if (this.linkType !== LINKTYPE_RAW && this.linkType !== LINKTYPE_ETHERNET) {
      throw new Error(`PcapWriter: unsupported link type ${this.linkType} (use 101 or 1, or addFrame with a suitable header)`);
    }
    this.nanosecond = !!opts.nanosecond;
    this.bigEndian = !!opts.bigEndian;
    this.snaplen = opts.snaplen ?? 262144;
    const h = new Uint8Array(24);
    const dv = new DataView(h.buffer);
    const le = !this.bigEndian;
    dv.setUint32(0, this.nanosecond ? PCAP_MAGIC_NS : PCAP_MAGIC_US, le);
    dv.setUint16(4, 2, le);
    dv.setUint16(6, 4, le);
    dv.setInt32(8, 0, le);
    dv.setUint32(12, 0, le);
    dv.setUint32(16, this.snaplen, le);
    dv.setUint32(20, this.linkType, le);
    this.chunks.push(h);
  }

  /** Number of records written so far. */
  get packets(): number {
    return this.count;
  }

  /** Adds an IP packet, encapsulated for the writer's link type, captured at tsMs (ms since the epoch). */
  add(ip: Uint8Array, tsMs: number, o: AddOptions = {}): void {
    if (this.linkType === LINKTYPE_RAW) {
      this.addFrame(ip, tsMs, o.origLen);
      return;
    }
    const vlans = o.vlans ?? [];
    const frame = new Uint8Array(14 + 4 * vlans.length + ip.length);
    frame.set(o.dstMac ?? DEFAULT_DST_MAC, 0);
    frame.set(o.srcMac ?? DEFAULT_SRC_MAC, 6);
    let p = 12;
    for (const v of vlans) {
      const tpid = v.tpid ?? 0x8100;
      const tci = (((v.pcp ?? 0) & 7) << 13) | (v.vid & 0xfff);
      frame[p] = tpid >> 8;
      frame[p + 1] = tpid & 0xff;
      frame[p + 2] = tci >> 8;
      frame[p + 3] = tci & 0xff;
      p += 4;
    }
    const et = o.ethertype ?? (ip.length > 0 && ip[0] >> 4 === 6 ? 0x86dd : 0x0800);
    frame[p] = et >> 8;
    frame[p + 1] = et & 0xff;
    frame.set(ip, p + 2);
    this.addFrame(frame, tsMs, o.origLen !== undefined ? o.origLen + (frame.length - ip.length) : undefined);
  }

  /** Adds a frame exactly as given (it must match the link type), cut to the snaplen. */
  addFrame(frame: Uint8Array, tsMs: number, origLen?: number): void {
    const capLen = Math.min(frame.length, this.snaplen);
    const h = new Uint8Array(16);
    const dv = new DataView(h.buffer);
    const le = !this.bigEndian;
    let sec = Math.floor(tsMs / 1000);
    const unit = this.nanosecond ? 1e6 : 1e3; // units per ms
    let frac = Math.round((tsMs - sec * 1000) * unit);
    if (frac >= 1000 * unit) {
      sec += 1;
      frac -= 1000 * unit;
    }
    dv.setUint32(0, sec >>> 0, le);
    dv.setUint32(4, frac >>> 0, le);
    dv.setUint32(8, capLen, le);
    dv.setUint32(12, Math.max(origLen ?? frame.length, capLen), le);
    this.chunks.push(h, frame.subarray(0, capLen));
    this.count++;
  }

  /** The file contents so far. */
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }

  writeFile(path: string): void {
    fs.writeFileSync(path, this.toBuffer());
  }
}

/** Writes a pcap file of IP packets in one go. */
export function writePcapFile(path: string, packets: readonly { data: Uint8Array; tsMs: number; opts?: AddOptions }[], opts: PcapWriterOptions = {}): void {
  const w = new PcapWriter(opts);
  for (const p of packets) w.add(p.data, p.tsMs, p.opts);
  w.writeFile(path);
}
