import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NTA_SYNPROXY, copyConn, decodeConn, encodeConn, newSyncConn } from '../../../src/sync/conn-msg';
import type { SyncConn } from '../../../src/sync/conn-msg';
import {
  NET_F_ALIVE,
  NET_F_RESYNC,
  NET_T_CTL,
  NET_T_STATE_CT_DEL,
  NET_T_STATE_CT_NEW,
  NET_T_STATE_CT_UPD,
  isCtl,
  isData,
  newHeader,
  readHeader,
  writeCtl,
} from '../../../src/sync/nethdr';
import type { NetHeader } from '../../../src/sync/nethdr';
import { addrToString } from '../../../src/packet/format';

/** The capture sections of fixtures/conntrackd-1.4.7.txt (see its comments): datagrams as bytes. */
function fixtures(): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  let cur: Buffer[] = [];
  for (const line of readFileSync(join(__dirname, 'fixtures', 'conntrackd-1.4.7.txt'), 'utf8').split('\n')) {
    const m = /^\[(.+)\]$/.exec(line);
    if (m) out.set(m[1], (cur = []));
    else if (/^[0-9a-f]+$/.test(line)) cur.push(Buffer.from(line, 'hex'));
  }
  return out;
}

interface Msg {
  h: NetHeader;
  bytes: Buffer;
}

/** The messages of a datagram, as conntrackd's channel handler walks them. */
function messages(d: Buffer): Msg[] {
  const out: Msg[] = [];
  for (let off = 0; off < d.length;) {
    const h = newHeader();
    assert.ok(readHeader(d, off, d.length - off, h));
    out.push({ h, bytes: d.subarray(off, off + h.len) });
    off += h.len;
  }
  return out;
}

function describe(c: SyncConn): string {
  const t = c.tuple;
  const fam = t[0] >>> 8;
  const src = addrToString(fam, t.subarray(1, 5));
  const dst = addrToString(fam, t.subarray(5, 9));
  return `${fam} ${t[0] & 0xff} ${src} ${dst} ${t[9] >>> 16} ${t[9] & 0xffff} status=${c.status} tcp=${c.tcpState} ws=${c.wscaleOrig},${c.wscaleRepl} t=${c.timeout} mark=${c.mark}`;
}

/** The message without its NTA_SYNPROXY attribute (what conntrackd adds for ctnetlink-made entries). */
function withoutSynproxy(m: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from(m.subarray(0, 8))];
  for (let o = 8; o < m.length;) {
    const alen = m.readUInt16BE(o);
    const step = (alen + 3) & ~3;
    if (m.readUInt16BE(o + 2) !== NTA_SYNPROXY) parts.push(m.subarray(o, o + step));
    o += step;
  }
  const out = Buffer.concat(parts);
  out.writeUInt16BE(out.length, 2);
  return out;
}

test('conntrackd 1.4.7 NOTRACK capture: headers, ALIVE, NEW/UPD/DEL decoded', () => {
  const dgrams = fixtures().get('notrack')!;
  const all = dgrams.flatMap(messages);
  // one message per datagram here; sequence numbers count every message, control ones too
  for (let i = 1; i < all.length; i++) assert.equal(all[i].h.seq, (all[i - 1].h.seq + 1) >>> 0);
  const alive = all.filter((m) => isCtl(m.h, NET_F_ALIVE));
  assert.equal(alive.length, 5);
  for (const m of alive) assert.deepEqual([m.h.version, m.h.type, m.h.flags, m.h.len], [1, NET_T_CTL, NET_F_ALIVE, 8]);
  const data = all.filter((m) => isData(m.h));
  assert.equal(data.length, 6);
  const got = data.map((m) => {
    const c = newSyncConn();
    assert.equal(decodeConn(m.bytes, 0, m.h.len, c), null);
    return `${m.h.type} ${describe(c)}`;
  });
  assert.deepEqual(got, [
    `${NET_T_STATE_CT_NEW} 4 17 198.18.250.1 198.18.250.2 55520 3780 status=8 tcp=-1 ws=-1,-1 t=30 mark=-1`,
    `${NET_T_STATE_CT_NEW} 4 6 198.18.1.10 198.18.2.20 40000 80 status=14 tcp=3 ws=-1,-1 t=300 mark=7`,
    `${NET_T_STATE_CT_UPD} 4 6 198.18.1.10 198.18.2.20 40000 80 status=14 tcp=4 ws=-1,-1 t=120 mark=7`,
    `${NET_T_STATE_CT_DEL} 4 6 198.18.1.10 198.18.2.20 40000 80 status=14 tcp=4 ws=-1,-1 t=120 mark=7`,
    `${NET_T_STATE_CT_NEW} 4 17 198.18.1.10 198.18.2.20 5000 53 status=10 tcp=-1 ws=-1,-1 t=30 mark=0`,
    // ICMP echo id 77: ports word = id << 16 | type << 8 | code (the id byte-swapped on the wire: 4d00)
    `${NET_T_STATE_CT_NEW} 4 1 198.18.1.10 198.18.2.20 77 2048 status=8 tcp=-1 ws=-1,-1 t=30 mark=0`,
  ]);
});

test('window tracking capture: wscale attributes and an IPv6 tuple', () => {
  const data = fixtures()
    .get('notrack-window-tracking')!
    .flatMap(messages)
    .filter((m) => isData(m.h));
  const got = data.map((m) => {
    const c = newSyncConn();
    assert.equal(decodeConn(m.bytes, 0, m.h.len, c), null);
    return describe(c);
  });
  assert.deepEqual(got.slice(1), [
    '4 6 198.18.1.10 198.18.2.20 40000 80 status=14 tcp=3 ws=0,0 t=300 mark=7',
    '6 6 2001:2::10 2001:2:0:1::20 40001 443 status=8 tcp=1 ws=0,0 t=100 mark=0',
  ]);
});

test('encodeConn writes the bytes conntrackd wrote (every captured state message, its synproxy attribute aside)', () => {
  const fx = fixtures();
  const data = [...fx.get('notrack')!, ...fx.get('notrack-window-tracking')!].flatMap(messages).filter((m) => isData(m.h));
  assert.equal(data.length, 9);
  for (const m of data) {
    const c = newSyncConn();
    assert.equal(decodeConn(m.bytes, 0, m.h.len, c), null);
    const buf = Buffer.alloc(300, 0xee);
    const len = encodeConn(buf, 0, m.h.type, m.h.seq, c);
    assert.equal(buf.subarray(0, len).toString('hex'), withoutSynproxy(m.bytes).toString('hex'));
  }
});

test('helper name, NAT attributes and master tuple round-trip (build.c order, NUL-terminated helper)', () => {
  const c = newSyncConn();
  c.tuple.set([(4 << 8) | 6, 0xc612010a, 0, 0, 0, 0xc6120214, 0, 0, 0, (40000 << 16) | 21]);
  c.status = 0x200e;
  c.tcpState = 3;
  c.timeout = 431999;
  c.mark = 0;
  c.helper = 'ftp';
  c.snat = Uint32Array.of(0xc6130001, 0, 0, 0);
  c.spat = 61000;
  const buf = Buffer.alloc(300);
  const len = encodeConn(buf, 0, NET_T_STATE_CT_NEW, 7, c);
  const tail = buf.subarray(len - 8, len).toString('hex');
  assert.equal(tail, '0008001b66747000'); // nta_len 8 = 4 + "ftp\0", attribute 27
  const d = newSyncConn();
  assert.equal(decodeConn(buf, 0, len, d), null);
  assert.deepEqual(copyConn(d), copyConn(c));
});

test('malformed messages are refused as msg2ct refuses them', () => {
  const c = newSyncConn();
  c.tuple.set([(4 << 8) | 17, 1, 0, 0, 0, 2, 0, 0, 0, (1 << 16) | 2]);
  c.status = 8;
  const buf = Buffer.alloc(300);
  const len = encodeConn(buf, 0, NET_T_STATE_CT_NEW, 1, c);
  const d = newSyncConn();
  const bad = (mut: (b: Buffer) => void, why: RegExp): void => {
    const b = Buffer.from(buf.subarray(0, len));
    mut(b);
    assert.match(decodeConn(b, 0, b.length, d) ?? 'ok', why);
  };
  bad((b) => b.writeUInt16BE(9, 8), /length 9, not 12/); // IPv4 group of the wrong size
  bad((b) => b.writeUInt16BE(200, 8), /beyond the message/);
  bad((b) => b.writeUInt16BE(2, 8), /shorter than its header/);
  bad((b) => b.writeUInt16BE(40, 10), /unknown attribute 40/);
  // a UDP message without its ports
  const noPort = Buffer.from(buf.subarray(0, 36));
  noPort.writeUInt16BE(36, 2);
  assert.match(decodeConn(noPort, 0, 36, d) ?? 'ok', /no port attribute/);
  // a header longer than the datagram, or shorter than a header, ends the walk
  const h = newHeader();
  assert.equal(readHeader(buf, 0, len - 1, h), false);
  const tiny = Buffer.from('1a100004', 'hex');
  assert.equal(readHeader(tiny, 0, 4, h), false);
});

test('control messages: ALIVE is 8 bytes, a RESYNC request 16 with its range (nethdr_set_ack)', () => {
  const b = Buffer.alloc(16);
  assert.equal(writeCtl(b, 0, NET_F_ALIVE, 0x6b175f5b), 8);
  assert.equal(b.subarray(0, 8).toString('hex'), '1a1000086b175f5b'); // the first datagram captured
  assert.equal(writeCtl(b, 0, NET_F_RESYNC, 5), 16);
  assert.equal(b.toString('hex'), '1a02001000000005' + '0000000000000000');
  const h = newHeader();
  assert.ok(readHeader(b, 0, 16, h));
  assert.ok(isCtl(h, NET_F_RESYNC));
});
