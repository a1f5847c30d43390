/**
 * Where -j NFLOG puts packets: nfqwall cannot hand them to the kernel's nfnetlink_log, so each
 * thread that decides packets writes them into its own ring in shared memory (one producer),
 * which the daemon's main thread drains (one consumer) to the `nfqwall nflog` readers of each
 * group (src/daemon/nflog.ts). A shared table says which groups have a reader: with none the
 * target does nothing (no copy, no allocation), as the kernel drops a message for a group no
 * socket is bound to. A full ring drops the packet's record and counts it (a slow reader never
 * holds up the packet path, and memory is bounded: RING_BYTES per thread).
 *
 * Record (little endian, 8-aligned): u32 length of the record, u16 group, u8 family, u8 hook,
 * u32 indev, u32 outdev, u32 packet length, u32 bytes copied, f64 wall-clock ms, u32 mark,
 * u16 prefix length, u16 0, the prefix, the copied bytes. A length of 0 at the end of the ring
 * means "continue at 0".
 */
export const RING_BYTES = 1 << 20;
export const GROUPS = 65536;
const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const HDR_WORDS = 4;
export const REC_HEADER = 40;

/** One decoded record (consumer side; allocation is fine there). */
export interface NflogRecord {
  group: number;
  family: number;
  hook: number;
  indev: number;
  outdev: number;
  len: number;
  tsMs: number;
  mark: number;
  prefix: string;
  data: Uint8Array;
}

export class NflogRing {
  readonly sab: SharedArrayBuffer;
  private readonly hdr: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly dv: DataView;
  private readonly cap: number;

  /** bytes: a power of two (tests use small rings) */
  constructor(sab?: SharedArrayBuffer, bytes = RING_BYTES) {
    this.sab = sab ?? new SharedArrayBuffer(HDR_WORDS * 4 + bytes);
    this.hdr = new Int32Array(this.sab, 0, HDR_WORDS);
    this.cap = this.sab.byteLength - HDR_WORDS * 4;
    this.bytes = new Uint8Array(this.sab, HDR_WORDS * 4, this.cap);
    this.dv = new DataView(this.sab, HDR_WORDS * 4, this.cap);
  }

  /** records dropped because the ring was full */
  get dropped(): number {
    return Atomics.load(this.hdr, DROPPED) >>> 0;
  }

  /** Producer: one record; false (and counted) when it does not fit. Allocates nothing. */
  push(
    group: number,
    family: number,
    hook: number,
    indev: number,
    outdev: number,
    len: number,
    tsMs: number,
    mark: number,
    prefix: Uint8Array,
    buf: Uint8Array,
    off: number,
    copy: number,
  ): boolean {
    const need = (REC_HEADER + prefix.length + copy + 7) & ~7;
    const head = Atomics.load(this.hdr, HEAD);
    const used = (head - Atomics.load(this.hdr, TAIL)) | 0;
    let pos = head & (this.cap - 1);
    const tailRoom = this.cap - pos;
    const skip = tailRoom < need ? tailRoom : 0;
    if (used + skip + need > this.cap) {
      Atomics.add(this.hdr, DROPPED, 1);
      return false;
    }
    const dv = this.dv;
    if (skip !== 0) {
      dv.setUint32(pos, 0, true);
      pos = 0;
    }
    dv.setUint32(pos, need, true);
    dv.setUint16(pos + 4, group, true);
    this.bytes[pos + 6] = family;
    this.bytes[pos + 7] = hook;
    dv.setUint32(pos + 8, indev, true);
    dv.setUint32(pos + 12, outdev, true);
    dv.setUint32(pos + 16, len, true);
    dv.setUint32(pos + 20, copy, true);
    dv.setFloat64(pos + 24, tsMs, true);
    dv.setUint32(pos + 32, mark >>> 0, true);
    dv.setUint16(pos + 36, prefix.length, true);
    dv.setUint16(pos + 38, 0, true);
    const b = this.bytes;
    b.set(prefix, pos + REC_HEADER);
    const at = pos + REC_HEADER + prefix.length;
    for (let i = 0; i < copy; i++) b[at + i] = buf[off + i];
    // head counts bytes written modulo a multiple of the capacity (the capacity is a power of two)
    Atomics.store(this.hdr, HEAD, (head + skip + need) | 0);
    return true;
  }

  /** Consumer: every record written since the last call, in order. */
  drain(each: (r: NflogRecord) => void): number {
    let tail = Atomics.load(this.hdr, TAIL);
    const head = Atomics.load(this.hdr, HEAD);
    let n = 0;
    while (tail !== head) {
      let pos = tail & (this.cap - 1);
      let size = this.dv.getUint32(pos, true);
      if (size === 0) {
        tail = (tail + (this.cap - pos)) | 0;
        pos = 0;
        size = this.dv.getUint32(0, true);
      }
      const plen = this.dv.getUint16(pos + 36, true);
      const copy = this.dv.getUint32(pos + 20, true);
      const start = pos + REC_HEADER;
      each({
        group: this.dv.getUint16(pos + 4, true),
        family: this.bytes[pos + 6],
        hook: this.bytes[pos + 7],
        indev: this.dv.getUint32(pos + 8, true),
        outdev: this.dv.getUint32(pos + 12, true),
        len: this.dv.getUint32(pos + 16, true),
        tsMs: this.dv.getFloat64(pos + 24, true),
        mark: this.dv.getUint32(pos + 32, true),
        prefix: Buffer.from(this.bytes.subarray(start, start + plen)).toString(),
        data: this.bytes.slice(start + plen, start + plen + copy),
      });
      tail = (tail + size) | 0;
      n++;
    }
    Atomics.store(this.hdr, TAIL, tail);
    return n;
  }
}

/** This thread's side: its ring and the shared table of groups with readers (absent: nothing is ever delivered). */
export const nflogBus = {
  ring: null as NflogRing | null,
  /** readers per group, shared by every thread of the daemon */
  listeners: null as Int32Array | null,
  attach(ring: NflogRing, listeners: SharedArrayBuffer): void {
    this.ring = ring;
    this.listeners = new Int32Array(listeners);
  },
};

export const newListenerTable = () => new SharedArrayBuffer(GROUPS * 4);
