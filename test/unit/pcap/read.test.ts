import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  PcapError,
  PcapReader,
  detectFormat,
  openCapture,
  readCapture,
  readCaptureFile,
  type PcapPacket,
} from '../../../src/pcap/read';
import { PcapWriter, writePcapFile } from '../../../src/pcap/write';
import { ipv4, ipv6, tcp, udp } from '../../helpers/packets';
import { runBoundedChild } from '../../helpers/bounded-child';

// ---------------------------------------------------------------------------
// sample packets

const P4 = ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }, tcp({ sport: 40000, dport: 80, flags: 'S', seq: 1 }));
const P4b = ipv4({ src: '198.18.0.2', dst: '198.18.0.1' }, udp({ sport: 53, dport: 5353, payload: 'hello' }));
const P6 = ipv6({ src: '2001:2::1', dst: '2001:2::2' }, udp({ sport: 1000, dport: 2000, payload: 'ipv6!' }));
const ARP = Uint8Array.from([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2]);

function eth(ethertype: number, payload: Uint8Array, tags: number[][] = []): Uint8Array {
  const out = new Uint8Array(14 + tags.length * 4 + payload.length);
  out.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
  let p = 12;
  for (const [tpid, vid] of tags) {
    out.set([tpid >> 8, tpid & 0xff, (vid >> 8) & 0x0f, vid & 0xff], p);
    p += 4;
  }
  out.set([ethertype >> 8, ethertype & 0xff], p);
  out.set(payload, p + 2);
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array, msg?: string): void {
  assert.deepEqual(Buffer.from(a), Buffer.from(b), msg);
}

function all(buf: Uint8Array): PcapPacket[] {
  return [...new PcapReader(buf, 'x.pcap')];
}

// ---------------------------------------------------------------------------
// hand-made pcapng

class Ng {
  parts: Buffer[] = [];
  constructor(public le = true) {}
  private u16(v: number): Buffer {
    const b = Buffer.alloc(2);
    if (this.le) b.writeUInt16LE(v);
    else b.writeUInt16BE(v);
    return b;
  }
  private u32(v: number): Buffer {
    const b = Buffer.alloc(4);
    if (this.le) b.writeUInt32LE(v >>> 0);
    else b.writeUInt32BE(v >>> 0);
    return b;
  }
  private pad(b: Uint8Array): Buffer {
    const n = (4 - (b.length % 4)) % 4;
    return Buffer.concat([Buffer.from(b), Buffer.alloc(n)]);
  }
  block(type: number, body: Buffer): this {
    const total = 12 + body.length;
    this.parts.push(Buffer.concat([this.u32(type), this.u32(total), body, this.u32(total)]));
    return this;
  }
  option(code: number, value: Uint8Array): Buffer {
    return Buffer.concat([this.u16(code), this.u16(value.length), this.pad(value)]);
  }
  shb(): this {
    const body = Buffer.concat([this.u32(0x1a2b3c4d), this.u16(1), this.u16(0), Buffer.alloc(8, 0xff)]);
    return this.block(0x0a0d0d0a, body);
  }
  idb(linkType: number, opts: { tsresol?: number; tsoffset?: number; snaplen?: number; name?: string } = {}): this {
    const o: Buffer[] = [];
    if (opts.name !== undefined) o.push(this.option(2, Buffer.from(opts.name)));
    if (opts.tsresol !== undefined) o.push(this.option(9, Uint8Array.of(opts.tsresol)));
    if (opts.tsoffset !== undefined) {
      const v = Buffer.alloc(8);
      if (this.le) v.writeBigInt64LE(BigInt(opts.tsoffset));
      else v.writeBigInt64BE(BigInt(opts.tsoffset));
      o.push(this.option(14, v));
    }
    if (o.length) o.push(this.option(0, new Uint8Array(0)));
    return this.block(1, Buffer.concat([this.u16(linkType), this.u16(0), this.u32(opts.snaplen ?? 0), ...o]));
  }
  epb(ifId: number, ts: bigint, data: Uint8Array, origLen = data.length, withComment = false): this {
    const o = withComment ? [this.option(1, Buffer.from('a comment')), this.option(0, new Uint8Array(0))] : [];
    return this.block(
      6,
      Buffer.concat([
        this.u32(ifId),
        this.u32(Number(ts >> 32n)),
        this.u32(Number(ts & 0xffffffffn)),
        this.u32(data.length),
        this.u32(origLen),
        this.pad(data),
        ...o,
      ]),
    );
  }
  spb(data: Uint8Array, origLen = data.length): this {
    return this.block(3, Buffer.concat([this.u32(origLen), this.pad(data)]));
  }
  opb(data: Uint8Array): this {
    return this.block(2, Buffer.concat([this.u16(0), this.u16(0), this.u32(0), this.u32(0), this.u32(data.length), this.u32(data.length), this.pad(data)]));
  }
  raw(type: number, body: Buffer): this {
    return this.block(type, body);
  }
  buf(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.parts));
  }
}

// ---------------------------------------------------------------------------

describe('pcap: classic format', () => {
  for (const bigEndian of [false, true]) {
    for (const nanosecond of [false, true]) {
      it(`round trip raw IP (${bigEndian ? 'BE' : 'LE'}, ${nanosecond ? 'ns' : 'µs'})`, () => {
        const w = new PcapWriter({ bigEndian, nanosecond });
        w.add(P4, 1700000000123.456);
        w.add(P6, 1700000001000);
        w.add(P4b, 1700000001999.999);
        const buf = w.toBuffer();
        assert.equal(detectFormat(buf), 'pcap');
        // header as libpcap writes it
        const magic = bigEndian ? buf.readUInt32BE(0) : buf.readUInt32LE(0);
        assert.equal(magic, nanosecond ? 0xa1b23c4d : 0xa1b2c3d4);
        const r = new PcapReader(buf, 'x.pcap');
        const ps = [...r];
        assert.equal(ps.length, 3);
        sameBytes(ps[0].data, P4);
        sameBytes(ps[1].data, P6);
        sameBytes(ps[2].data, P4b);
        assert.deepEqual(
          ps.map((p) => p.family),
          [4, 6, 4],
        );
        assert.deepEqual(
          ps.map((p) => p.linkType),
          [101, 101, 101],
        );
        const eps = nanosecond ? 1e-6 : 1e-3;
        assert.ok(Math.abs(ps[0].tsMs - 1700000000123.456) <= eps, String(ps[0].tsMs));
        assert.equal(ps[1].tsMs, 1700000001000);
        assert.ok(Math.abs(ps[2].tsMs - 1700000001999.999) <= eps, String(ps[2].tsMs));
        assert.equal(ps[0].origLen, P4.length);
        assert.equal(ps[0].capLen, P4.length);
        assert.deepEqual(
          ps.map((p) => p.record),
          [0, 1, 2],
        );
        assert.equal(ps[0].offset, 24);
        assert.deepEqual(r.stats, { records: 3, packets: 3, nonIp: 0, skippedBlocks: 0 });
      });
    }
  }

  it('packets are subarrays of the file buffer (no copy)', () => {
    const w = new PcapWriter();
    w.add(P4, 0);
    const buf = new Uint8Array(w.toBuffer());
    const [p] = all(buf);
    assert.equal(p.data.buffer, buf.buffer);
    assert.equal(p.data.byteOffset, buf.byteOffset + 24 + 16);
  });

  it('microsecond rounding carries into the seconds', () => {
    const w = new PcapWriter();
    w.add(P4, 1999.9999); // .9999 ms → 2.000000 s
    const [p] = all(w.toBuffer());
    assert.equal(p.tsMs, 2000);
  });

  it('snaplen: captured length below the original length', () => {
    const w = new PcapWriter({ snaplen: 30 });
    w.add(P4, 5);
    const [p] = all(w.toBuffer());
    assert.equal(p.capLen, 30);
    assert.equal(p.origLen, P4.length);
    sameBytes(p.data, P4.subarray(0, 30));
  });

  it('an empty capture (header only) has no packets', () => {
    const r = readCapture(new PcapWriter().toBuffer());
    assert.equal(r.error, null);
    assert.equal(r.packets.length, 0);
    assert.equal(r.format, 'pcap');
  });

  it('Ethernet: IPv4, IPv6, one and two VLAN tags (802.1Q, 802.1ad, 0x9100), non-IP skipped', () => {
    const w = new PcapWriter({ linkType: LINKTYPE_ETHERNET });
    w.add(P4, 1);
    w.add(P6, 2);
    w.add(P4b, 3, { vlans: [{ vid: 10 }] });
    w.add(P6, 4, {
      vlans: [
        { tpid: 0x88a8, vid: 100 },
        { tpid: 0x8100, vid: 10 },
      ],
    });
    w.addFrame(eth(0x0800, P4, [[0x9100, 7]]), 5);
    w.addFrame(eth(0x0806, ARP), 6); // ARP
    w.addFrame(eth(0x88cc, new Uint8Array(40)), 7); // LLDP
    w.addFrame(
      eth(0x0800, P4, [
        [0x8100, 1],
        [0x8100, 2],
        [0x8100, 3],
      ]),
      8,
    ); // three tags: not followed
    w.addFrame(eth(0x8100, new Uint8Array(0)).subarray(0, 14), 9); // tag announced, frame ends
    w.addFrame(new Uint8Array(10), 10); // shorter than an Ethernet header
    w.addFrame(eth(0x0800, new Uint8Array(0)), 11); // IPv4 ethertype, no payload
    w.add(P4, 12, { vlans: [{ vid: 5 }] });
    const r = new PcapReader(w.toBuffer(), 'eth.pcap');
    const ps = [...r];
    assert.equal(ps.length, 6);
    sameBytes(ps[0].data, P4);
    sameBytes(ps[1].data, P6);
    sameBytes(ps[2].data, P4b);
    sameBytes(ps[3].data, P6);
    sameBytes(ps[4].data, P4);
    sameBytes(ps[5].data, P4);
    assert.deepEqual(
      ps.map((p) => [p.family, p.tsMs, p.record]),
      [
        [4, 1, 0],
        [6, 2, 1],
        [4, 3, 2],
        [6, 4, 3],
        [4, 5, 4],
        [4, 12, 11],
      ],
    );
    assert.equal(ps[0].origLen, P4.length + 14);
    assert.deepEqual(r.stats, { records: 12, packets: 6, nonIp: 6, skippedBlocks: 0 });
  });

  it('Ethernet padding after a short IP packet is left in the data (the IP parser clips it)', () => {
    const w = new PcapWriter({ linkType: LINKTYPE_ETHERNET });
    const small = ipv4({}, udp({ payload: '' }));
    const padded = new Uint8Array(46);
    padded.set(small);
    w.addFrame(eth(0x0800, padded), 0);
    const [p] = all(w.toBuffer());
    assert.equal(p.data.length, 46);
    sameBytes(p.data.subarray(0, small.length), small);
  });

  /** Builds a classic pcap of the given link type holding the given frames. */
  function pcapOf(linkType: number, frames: Uint8Array[], bigEndian = false): Uint8Array {
    const parts: Buffer[] = [];
    const h = Buffer.alloc(24);
    const w32 = (b: Buffer, v: number, o: number) => (bigEndian ? b.writeUInt32BE(v, o) : b.writeUInt32LE(v, o));
    w32(h, 0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    w32(h, 65535, 16);
    w32(h, linkType, 20);
    parts.push(h);
    frames.forEach((f, i) => {
      const r = Buffer.alloc(16);
      w32(r, 100 + i, 0);
      w32(r, 0, 4);
      w32(r, f.length, 8);
      w32(r, f.length, 12);
      parts.push(r, Buffer.from(f));
    });
    return new Uint8Array(Buffer.concat(parts));
  }

  it('raw IP link types 101, 12, 14 (version nibble), 228 (IPv4), 229 (IPv6)', () => {
    for (const lt of [101, 12, 14]) {
      const ps = all(pcapOf(lt, [P4, P6, Uint8Array.of(0x25, 0, 0, 0), new Uint8Array(0)]));
      assert.deepEqual(
        ps.map((p) => p.family),
        [4, 6],
        String(lt),
      );
    }
    const r4 = new PcapReader(pcapOf(LINKTYPE_IPV4, [P4, P6]), 'v4');
    assert.deepEqual(
      [...r4].map((p) => p.family),
      [4],
    );
    assert.equal(r4.stats.nonIp, 1);
    const r6 = new PcapReader(pcapOf(LINKTYPE_IPV6, [P4, P6]), 'v6');
    const ps6 = [...r6];
    assert.equal(ps6.length, 1);
    sameBytes(ps6[0].data, P6);
  });

  it('Linux cooked SLL (113) and SLL2 (276)', () => {
    const sll = (proto: number, payload: Uint8Array) => {
      const h = new Uint8Array(16 + payload.length);
      h.set([0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, proto >> 8, proto & 0xff]);
      h.set(payload, 16);
      return h;
    };
    const sll2 = (proto: number, payload: Uint8Array) => {
      const h = new Uint8Array(20 + payload.length);
      h.set([proto >> 8, proto & 0xff, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
      h.set(payload, 20);
      return h;
    };
    for (const [lt, mk] of [
      [LINKTYPE_LINUX_SLL, sll],
      [LINKTYPE_LINUX_SLL2, sll2],
    ] as const) {
      const r = new PcapReader(pcapOf(lt, [mk(0x0800, P4), mk(0x86dd, P6), mk(0x0806, ARP), mk(0x0800, new Uint8Array(0)), new Uint8Array(8)]), 'sll');
      const ps = [...r];
      assert.equal(ps.length, 2, String(lt));
      sameBytes(ps[0].data, P4);
      sameBytes(ps[1].data, P6);
      assert.equal(ps[1].linkType, lt);
      assert.equal(r.stats.nonIp, 3);
    }
  });

  it('loopback / null (0) in either byte order with the BSD AF_INET6 values, and OpenBSD loop (108)', () => {
    const nul = (af: number, payload: Uint8Array, be: boolean) => {
      const b = Buffer.alloc(4 + payload.length);
      if (be) b.writeUInt32BE(af);
      else b.writeUInt32LE(af);
      b.set(payload, 4);
      return new Uint8Array(b);
    };
    const frames = [
      nul(2, P4, false),
      nul(2, P4, true),
      nul(10, P6, false),
      nul(24, P6, true),
      nul(28, P6, false),
      nul(30, P6, true),
      nul(7, P4, false),
      Uint8Array.of(2, 0),
    ];
    const r = new PcapReader(pcapOf(LINKTYPE_NULL, frames), 'null');
    const ps = [...r];
    assert.deepEqual(
      ps.map((p) => p.family),
      [4, 4, 6, 6, 6, 6],
    );
    sameBytes(ps[5].data, P6);
    assert.equal(r.stats.nonIp, 2);
    const loop = all(pcapOf(LINKTYPE_LOOP, [nul(2, P4, true), nul(24, P6, true)]));
    assert.deepEqual(
      loop.map((p) => p.family),
      [4, 6],
    );
  });

  it('unknown link types: every frame is skipped and counted', () => {
    const r = new PcapReader(pcapOf(147, [P4, P4]), 'user0');
    assert.equal([...r].length, 0);
    assert.equal(r.stats.nonIp, 2);
  });

  it('big-endian file written by hand', () => {
    const ps = all(pcapOf(LINKTYPE_ETHERNET, [eth(0x86dd, P6)], true));
    assert.equal(ps.length, 1);
    assert.equal(ps[0].tsMs, 100000);
    sameBytes(ps[0].data, P6);
  });

  it('modified (Kuznetzov) pcap records are 24 bytes long', () => {
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2cd34, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt32LE(65535, 16);
    h.writeUInt32LE(LINKTYPE_RAW, 20);
    const rec = Buffer.alloc(24);
    rec.writeUInt32LE(7, 0);
    rec.writeUInt32LE(500000, 4);
    rec.writeUInt32LE(P4.length, 8);
    rec.writeUInt32LE(P4.length, 12);
    rec.writeUInt32LE(3, 16); // ifindex
    const ps = all(Buffer.concat([h, rec, Buffer.from(P4), rec, Buffer.from(P4)]));
    assert.equal(ps.length, 2);
    assert.equal(ps[0].tsMs, 7500);
    sameBytes(ps[1].data, P4);
  });
});

describe('pcap: corrupt and truncated files', () => {
  function good(n = 3): Buffer {
    const w = new PcapWriter();
    for (let i = 0; i < n; i++) w.add(P4, i);
    return w.toBuffer();
  }
  const rec = 16 + P4.length;

  it('truncated inside a record header: earlier packets, then a clear error', () => {
    const buf = good().subarray(0, 24 + 2 * rec + 10);
    const r = readCapture(buf, 'cut.pcap');
    assert.equal(r.packets.length, 2);
    assert.ok(r.error instanceof PcapError);
    assert.equal(r.error.message, `cut.pcap: truncated packet record at offset ${24 + 2 * rec}`);
    assert.equal(r.error.offset, 24 + 2 * rec);
  });

  it('truncated inside packet data', () => {
    const buf = good().subarray(0, 24 + 2 * rec + 16 + 5);
    const reader = new PcapReader(buf, 'cut.pcap');
    const seen: PcapPacket[] = [];
    assert.throws(
      () => {
        for (const p of reader) seen.push(p);
      },
      { name: 'PcapError', message: `cut.pcap: truncated packet record at offset ${24 + 2 * rec}` },
    );
    assert.equal(seen.length, 2);
  });

  it('truncated file header, empty file, not a capture', () => {
    assert.equal(readCapture(good().subarray(0, 20), 'a').error?.message, 'a: truncated file header at offset 0');
    assert.equal(readCapture(new Uint8Array(0), 'b').error?.message, 'b: empty file');
    assert.equal(readCapture(Uint8Array.of(0xa1, 0xb2), 'c').error?.message, 'c: truncated file header at offset 0');
    assert.equal(readCapture(Buffer.from('GET / HTTP/1.1\r\n'), 'd').error?.message, 'd: not a pcap or pcapng file (magic 0x47455420)');
    assert.throws(() => new PcapReader(Buffer.from('hello'), 'e'), PcapError);
  });

  it('absurd captured length', () => {
    const buf = Buffer.from(good(2));
    buf.writeUInt32LE(0x7fffffff, 24 + rec + 8);
    const r = readCapture(buf, 'g.pcap');
    assert.equal(r.packets.length, 1);
    assert.equal(r.error?.message, `g.pcap: bad packet record (captured length 2147483647) at offset ${24 + rec}`);
  });

  it('garbage after a valid header never crashes or loops', () => {
    let seed = 12345;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 16;
    };
    for (let trial = 0; trial < 300; trial++) {
      const base = trial % 2 ? good(4) : Buffer.from(new Ng().shb().idb(1).epb(0, 1n, eth(0x0800, P4)).epb(0, 2n, eth(0x0800, P4)).buf());
      const buf = Buffer.from(base);
      const n = 1 + (rnd() % 8);
      for (let k = 0; k < n; k++) buf[(trial % 2 ? 24 : 0) + (rnd() % (buf.length - (trial % 2 ? 24 : 0)))] = rnd() & 0xff;
      const cut = trial % 3 === 0 ? buf.subarray(0, rnd() % buf.length) : buf;
      const r = readCapture(cut, 'fuzz');
      assert.ok(r.error === null || r.error instanceof PcapError);
      assert.ok(r.packets.length <= 4);
      for (const p of r.packets) {
        assert.ok(p.data.byteOffset >= cut.byteOffset && p.data.byteOffset + p.data.length <= cut.byteOffset + cut.length);
      }
    }
  });

  it('files: readCaptureFile / openCapture / writePcapFile', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-pcap-'));
    try {
      const f = path.join(dir, 'a.pcap');
      writePcapFile(
        f,
        [
          { data: P4, tsMs: 10 },
          { data: P6, tsMs: 20, opts: { vlans: [{ vid: 3 }] } },
        ],
        { linkType: LINKTYPE_ETHERNET },
      );
      const r = readCaptureFile(f);
      assert.equal(r.error, null);
      assert.equal(r.packets.length, 2);
      assert.equal(r.packets[1].tsMs, 20);
      assert.equal([...openCapture(f)].length, 2);
      const missing = readCaptureFile(path.join(dir, 'missing.pcap'));
      assert.ok(missing.error instanceof PcapError);
      assert.match(missing.error.message, /missing\.pcap: ENOENT/);
      fs.writeFileSync(path.join(dir, 'cut.pcap'), Buffer.from(fs.readFileSync(f)).subarray(0, 50));
      assert.match(readCaptureFile(path.join(dir, 'cut.pcap')).error!.message, /cut\.pcap: truncated packet record at offset 24$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('pcapng', () => {
  for (const le of [true, false]) {
    it(`several interfaces with different link types and resolutions (${le ? 'LE' : 'BE'})`, () => {
      const ng = new Ng(le)
        .shb()
        .idb(LINKTYPE_ETHERNET, { name: 'eth0', snaplen: 65535 }) // µs default
        .idb(LINKTYPE_RAW, { tsresol: 9 }) // ns
        .idb(LINKTYPE_LINUX_SLL2, { tsresol: 0x80 | 10, tsoffset: 100 }) // 2^-10 s, +100 s
        .epb(0, 1700000000123456n, eth(0x0800, P4), P4.length + 14, true)
        .epb(1, 1700000000123456789n, P6)
        .raw(5, Buffer.alloc(16)) // interface statistics: skipped
        .opb(eth(0x0800, P4)) // obsolete packet block: skipped
        .epb(2, 1024n * 5n + 512n, Uint8Array.from([0x86, 0xdd, ...new Array(18).fill(0), ...P6]))
        .epb(0, 1700000000200000n, eth(0x0806, ARP))
        .spb(eth(0x86dd, P6))
        .raw(0x40000bad, Buffer.alloc(8)); // custom block: skipped
      const r = new PcapReader(ng.buf(), 'x.pcapng');
      assert.equal(r.format, 'pcapng');
      const ps = [...r];
      assert.equal(ps.length, 4);
      sameBytes(ps[0].data, P4);
      assert.equal(ps[0].tsMs, 1700000000123.456);
      assert.equal(ps[0].ifIndex, 0);
      assert.equal(ps[0].linkType, 1);
      assert.equal(ps[0].origLen, P4.length + 14);
      sameBytes(ps[1].data, P6);
      assert.ok(Math.abs(ps[1].tsMs - 1700000000123.456789) < 1e-3);
      assert.equal(ps[1].ifIndex, 1);
      assert.equal(ps[1].linkType, 101);
      sameBytes(ps[2].data, P6);
      assert.equal(ps[2].tsMs, (100 + 5.5) * 1000);
      assert.equal(ps[2].linkType, 276);
      // SPB: interface 0, inherits the previous timestamp
      sameBytes(ps[3].data, P6);
      assert.equal(ps[3].ifIndex, 0);
      assert.equal(ps[3].tsMs, 1700000000200);
      assert.deepEqual(r.stats, { records: 5, packets: 4, nonIp: 1, skippedBlocks: 3 });
    });
  }

  it('a second section (other byte order) restarts the interface list', () => {
    const a = new Ng(true).shb().idb(LINKTYPE_RAW).epb(0, 1000n, P4).buf();
    const b = new Ng(false).shb().idb(LINKTYPE_ETHERNET).epb(0, 2000n, eth(0x86dd, P6)).buf();
    const c = new Ng(true).shb().epb(0, 3000n, P4).buf(); // no IDB in this section
    const ps: PcapPacket[] = [];
    const r = readCapture(Buffer.concat([a, b]));
    assert.equal(r.error, null);
    ps.push(...r.packets);
    assert.deepEqual(
      ps.map((p) => [p.family, p.linkType, p.tsMs]),
      [
        [4, 101, 1],
        [6, 1, 2],
      ],
    );
    const bad = readCapture(Buffer.concat([a, c]), 'two.pcapng');
    assert.equal(bad.packets.length, 1);
    assert.equal(bad.error?.message, `two.pcapng: packet for undefined interface 0 at offset ${a.length + 28}`);
  });

  it('SPB cut to the interface snaplen', () => {
    const r = all(new Ng().shb().idb(LINKTYPE_RAW, { snaplen: 20 }).spb(P4).buf());
    assert.equal(r[0].capLen, 20);
    assert.equal(r[0].origLen, P4.length);
  });

  it('corruption: truncated block, bad lengths, trailer mismatch, bad byte-order magic, version', () => {
    const okBuf = Buffer.from(new Ng().shb().idb(LINKTYPE_RAW).epb(0, 1n, P4).epb(0, 2n, P4).buf());
    const secondEpb = okBuf.length - (12 + 20 + ((P4.length + 3) & ~3));
    // truncated in the second EPB
    let r = readCapture(okBuf.subarray(0, okBuf.length - 6), 'n.pcapng');
    assert.equal(r.packets.length, 1);
    assert.equal(r.error?.message, `n.pcapng: truncated packet record at offset ${secondEpb}`);
    // truncated in a block header
    r = readCapture(okBuf.subarray(0, secondEpb + 5), 'n.pcapng');
    assert.equal(r.packets.length, 1);
    assert.equal(r.error?.message, `n.pcapng: truncated block at offset ${secondEpb}`);
    // block length not a multiple of 4 / below 12
    for (const len of [13, 4, 0]) {
      const b = Buffer.from(okBuf);
      b.writeUInt32LE(len, secondEpb + 4);
      r = readCapture(b, 'n.pcapng');
      assert.equal(r.packets.length, 1);
      assert.equal(r.error?.message, `n.pcapng: bad block length ${len} at offset ${secondEpb}`);
    }
    // trailer mismatch
    const t = Buffer.from(okBuf);
    t.writeUInt32LE(999, t.length - 4);
    r = readCapture(t, 'n.pcapng');
    assert.equal(r.packets.length, 1);
    assert.match(r.error!.message, /block length mismatch/);
    // captured length beyond the block
    const c = Buffer.from(okBuf);
    c.writeUInt32LE(1000, secondEpb + 8 + 12);
    r = readCapture(c, 'n.pcapng');
    assert.equal(r.error?.message, `n.pcapng: truncated packet record at offset ${secondEpb}`);
    // byte-order magic
    const m = Buffer.from(okBuf);
    m.writeUInt32LE(0x12345678, 8);
    assert.match(readCapture(m, 'n.pcapng').error!.message, /bad byte-order magic 0x12345678 in section header block at offset 0/);
    // a cut section header
    assert.equal(readCapture(okBuf.subarray(0, 8), 'n.pcapng').error?.message, 'n.pcapng: truncated block at offset 0');
    assert.equal(readCapture(okBuf.subarray(0, 16), 'n.pcapng').error?.message, 'n.pcapng: truncated section header block at offset 0');
    // unsupported major version
    const v = Buffer.from(okBuf);
    v.writeUInt16LE(2, 12);
    assert.equal(readCapture(v, 'n.pcapng').error?.message, 'n.pcapng: unsupported pcapng version 2 at offset 0');
  });
});

describe('streamed through a window (files larger than the reader holds)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-pcapwin-'));
  const ROOT = path.resolve(__dirname, '..', '..', '..');
  const pkt = (i: number) =>
    ipv4(
      { src: '198.18.1.1', dst: '198.19.2.1' },
      udp({ sport: 1024 + (i % 60000), dport: 53, payload: new Uint8Array(200 + ((i * 7919) % 1200)).fill(i & 0xff) }),
    );
  const view = (c: ReturnType<typeof readCapture>) => ({
    n: c.packets.length,
    stats: c.stats,
    format: c.format,
    error: c.error?.message ?? null,
    sum: c.packets.reduce((a, p) => (a * 31 + p.data.length * 7 + p.data[p.data.length - 1] + p.offset + p.tsMs) % 1e9, 0),
  });
  const same = (bytes: Uint8Array, name: string) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, bytes);
    assert.deepEqual(view(readCaptureFile(f)), view(readCapture(bytes, f)), name);
  };

  it('pcap and pcapng of ~12 MB (records across window borders, a 5 MB skipped block): the same packets, offsets, stats and errors as read whole', () => {
    const w = new PcapWriter();
    for (let i = 0; i < 14_000; i++) w.add(pkt(i), 1_700_000_000_000 + i);
    const pcap = new Uint8Array(w.toBuffer());
    assert.ok(pcap.length > 10 << 20);
    same(pcap, 'big.pcap');
    const ng = new Ng().shb().idb(LINKTYPE_RAW);
    for (let i = 0; i < 7000; i++) ng.epb(0, BigInt(i) * 1000n, pkt(i));
    ng.raw(0xbad, Buffer.alloc(5 << 20, 1));
    for (let i = 0; i < 7000; i++) ng.epb(0, BigInt(i) * 1000n, pkt(i));
    const png = ng.buf();
    same(png, 'big.pcapng');
    // cut anywhere (inside a record, across a window border): the same packets before it and the same error
    for (const cut of [(4 << 20) + 3, (8 << 20) + 17, pcap.length - 5]) same(pcap.subarray(0, cut), `cut-${cut}.pcap`);
    for (const cut of [(4 << 20) + 5, (7 << 20) + 9, png.length - 2]) same(png.subarray(0, cut), `cut-${cut}.pcapng`);
    // an oversized block that would have to be read is refused as libpcap does
    const huge = Buffer.from(new Ng().shb().idb(LINKTYPE_RAW).epb(0, 1n, pkt(1)).buf());
    const bad = Buffer.concat([huge, Buffer.from(Uint32Array.of(6, (17 << 20) + 32).buffer), Buffer.alloc((17 << 20) + 24)]);
    const f = path.join(tmp, 'huge.pcapng');
    fs.writeFileSync(f, bad);
    assert.match(String(readCaptureFile(f).error?.message), /bad block length 17825824 at offset/);
  });

  /** Peak RSS (kB) of `nfqwall replay --quiet --table FILE` in a child process, and its exit code and table. */
  function replayPeak(file: string): { maxRss: number; code: number; out: string } {
    const code = `require(${JSON.stringify(path.join(ROOT, 'src/cli/replay'))}).main(['--quiet', '--table', ${JSON.stringify(file)}]).then((c) => { process.stderr.write('MAXRSS ' + process.resourceUsage().maxRSS + '\\n'); process.exitCode = c; });`;
    const r = runBoundedChild(code, ROOT);
    const m = /MAXRSS (\d+)/.exec(r.stderr);
    assert.ok(m, r.stderr);
    return { maxRss: Number(m[1]), code: r.status ?? -1, out: r.stdout };
  }

  it('replay: a 100 MB capture costs no more memory than a 5 MB one (bounded by the window and the table, not the file)', () => {
    const write = (name: string, n: number) => {
      const f = path.join(tmp, name);
      const fd = fs.openSync(f, 'w');
      const w = new PcapWriter();
      fs.writeSync(fd, w.toBuffer()); // the file header
      for (let i = 0; i < n; i += 1000) {
        const part = new PcapWriter();
        for (let j = i; j < Math.min(n, i + 1000); j++) part.add(pkt(j % 500), 1_700_000_000_000 + j);
        fs.writeSync(fd, part.toBuffer().subarray(24));
      }
      fs.closeSync(fd);
      return f;
    };
    const small = write('small.pcap', 6_000);
    const big = write('big100.pcap', 140_000);
    assert.ok(fs.statSync(big).size > 100 << 20);
    const s = replayPeak(small);
    const b = replayPeak(big);
    fs.rmSync(big);
    assert.equal(s.code, 0);
    assert.equal(b.code, 0);
    // the same 500 flows either way
    assert.equal(b.out.trim().split('\n').length, s.out.trim().split('\n').length);
    assert.ok(b.maxRss < s.maxRss + 32 * 1024, `peak RSS: 100 MB capture ${b.maxRss} kB, 5 MB capture ${s.maxRss} kB`);
  });

  it('cleans up', () => fs.rmSync(tmp, { recursive: true, force: true }));
});
