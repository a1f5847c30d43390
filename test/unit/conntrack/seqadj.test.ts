/**
 * nf_conntrack_seqadj.c: nf_ct_seqadj_set (one correction position per direction, a
 * retransmission keeps it, a later change moves it), nf_ct_seq_offset, nf_ct_seq_adjust
 * (seq + this direction's offset, ack and SACK blocks - the other's, checked with `after()` on
 * the value minus offset_before, checksum kept valid) and tcp_in_window's use of the receiver's
 * offset (in tcp.test.ts). Expected values worked out from the kernel source by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeqAdjust } from '../../../src/conntrack/seqadj';
import { verifyL4Checksum } from '../../../src/packet/checksum';
import { get16, get32, put16 } from '../../../src/packet/bytes';
import { parsePacket } from '../../../src/packet/parse';
import { PacketView } from '../../../src/packet/view';
import { ipv4, ipv6, tcp, type TcpOptions } from '../../helpers/packets';

const E = 5;

function view(o: { seq: number; ack: number; v6?: boolean; options?: TcpOptions; payload?: number; raw?: number[] }): PacketView {
  const t = tcp({
    sport: 21,
    dport: 40000,
    seq: o.seq >>> 0,
    ack: o.ack >>> 0,
    flags: 'A',
    options: o.options,
    payload: new Uint8Array(o.payload ?? 0).fill(0x61),
  });
  const b = o.v6 ? ipv6({ src: '2001:2::1', dst: '2001:2::2' }, t) : ipv4({ src: '198.18.0.1', dst: '198.18.1.1' }, t);
  const v = new PacketView();
  parsePacket(b, 0, b.length, v);
  return v;
}

const sackEdges = (v: PacketView): number[] => {
  const out: number[] = [];
  for (let p = v.l4off + 20; p < v.l4off + v.tcpHeaderLen;) {
    const k = v.buf[p];
    if (k === 0) break;
    if (k === 1) {
      p++;
      continue;
    }
    if (k === 5) for (let q = p + 2; q < p + v.buf[p + 1]; q += 4) out.push(get32(v.buf, q));
    p += v.buf[p + 1];
  }
  return out;
};

test('nf_ct_seqadj_set: the first change sets the position, a retransmission keeps it, a later change moves it, an earlier one is ignored', () => {
  const s = new SeqAdjust();
  s.clear(E);
  s.set(E, 0, 1000, 3);
  assert.deepEqual(s.save(E), [1000, 0, 3, 0, 0, 0]);
  // the same segment again (retransmitted, rewritten again): before != after and not before(1000, 1000)
  s.set(E, 0, 1000, 3);
  assert.deepEqual(s.save(E), [1000, 0, 3, 0, 0, 0]);
  // a later command: before(1000, 2000) → the position moves, the old after becomes before
  s.set(E, 0, 2000, -2);
  assert.deepEqual(s.save(E), [2000, 3, 1, 0, 0, 0]);
  // an earlier segment (a retransmission from before the last correction): ignored
  s.set(E, 0, 1500, 7);
  assert.deepEqual(s.save(E), [2000, 3, 1, 0, 0, 0]);
  // off 0 changes nothing; the other direction is its own record
  s.set(E, 0, 3000, 0);
  s.set(E, 1, 77, 4);
  assert.deepEqual(s.save(E), [2000, 3, 1, 77, 0, 4]);
});

test('nf_ct_seq_offset: after the position the offset after, at or before it the offset before, modulo 2^32', () => {
  const s = new SeqAdjust();
  s.clear(E);
  s.set(E, 0, 1000, 3);
  assert.equal(s.offset(E, 0, 999), 0);
  assert.equal(s.offset(E, 0, 1000), 0);
  assert.equal(s.offset(E, 0, 1001), 3);
  assert.equal(s.offset(E, 1, 5000), 0);
  s.clear(E);
  s.set(E, 0, 0xfffffff0, -4);
  assert.equal(s.offset(E, 0, 0x10), -4); // wrapped: still after
  assert.equal(s.offset(E, 0, 0xffffff00), 0);
  // an entry never given a record reads 0
  assert.equal(new SeqAdjust().offset(1234, 0, 1), 0);
});

test('nf_ct_seq_adjust: seq shifted by its direction, ack and SACK edges back by the other, checksum still valid (IPv4 and IPv6)', () => {
  for (const v6 of [false, true]) {
    const s = new SeqAdjust();
    s.clear(E);
    s.set(E, 0, 1000, 3); // the client's command at 1000 grew by 3
    s.set(E, 1, 5000, -2); // and a server reply at 5000 shrank by 2
    // client → server (dir 0): seq 1500 is after 1000: +3; ack 5010 - (-2) since 5010 - 0 is after 5000
    let v = view({ seq: 1500, ack: 5010, v6, payload: 10 });
    assert.equal(s.adjust(v, E, 0, false), 1);
    assert.equal(get32(v.buf, v.l4off + 4), 1503);
    assert.equal(get32(v.buf, v.l4off + 8), 5012);
    assert.equal(v.seq, 1503);
    assert.equal(v.ack, 5012);
    assert.ok(verifyL4Checksum(v), 'incremental checksum');
    // the command's own segment (seq == position): offset before (0); ack at the position: before
    v = view({ seq: 1000, ack: 5000, v6, payload: 10 });
    assert.equal(s.adjust(v, E, 0, false), 0);
    assert.equal(v.seq, 1000);
    assert.equal(v.ack, 5000);
    // server → client (dir 1) with SACK: edges acknowledge the client's (grown) bytes
    v = view({
      seq: 5020,
      ack: 1510,
      v6,
      options: {
        sack: [
          [1520, 1530],
          [900, 1000],
        ],
      },
    });
    assert.equal(s.adjust(v, E, 1, false), 1);
    assert.equal(v.seq, 5018);
    assert.equal(v.ack, 1507); // 1510 - 0 after 1000 → - 3
    assert.deepEqual(sackEdges(v), [1517, 1527, 900, 1000]);
    assert.ok(verifyL4Checksum(v));
    // ack 1002 is the grown command's end minus 1 offset: 1002 - 0 after 1000 → 999
    v = view({ seq: 5020, ack: 1002, v6 });
    s.adjust(v, E, 1, false);
    assert.equal(v.ack, 999);
  }
});

test('nf_ct_seq_adjust: a checksum not computed yet (CHECKSUM_PARTIAL) is computed in full; nothing changed → no rewrite', () => {
  const s = new SeqAdjust();
  s.clear(E);
  s.set(E, 0, 1000, 3);
  const v = view({ seq: 2000, ack: 7, payload: 20 });
  put16(v.buf, v.l4off + 16, 0x1234); // a partial (pseudo-header) sum, not a checksum
  assert.equal(s.adjust(v, E, 0, true), 1);
  assert.equal(v.seq, 2003);
  assert.ok(verifyL4Checksum(v));
  // a packet no offset applies to is left as it was, checksum field too
  const w = view({ seq: 900, ack: 7 });
  put16(w.buf, w.l4off + 16, 0x1234);
  const before = Uint8Array.from(w.buf);
  assert.equal(s.adjust(w, E, 0, true), 0);
  assert.deepEqual(w.buf, before);
  assert.equal(get16(w.buf, w.l4off + 16), 0x1234);
});

test('nf_ct_seq_adjust: a partial option (length past the header, or below 2) fails (the kernel drops)', () => {
  const s = new SeqAdjust();
  s.clear(E);
  s.set(E, 0, 1000, 3);
  // NOP, then kind 8 with length 20 in a 4-byte option area
  assert.equal(s.adjust(view({ seq: 2000, ack: 1, options: { raw: [1, 8, 20, 0] } }), E, 0, false), -1);
  assert.equal(s.adjust(view({ seq: 2000, ack: 1, options: { raw: [1, 8, 1, 0] } }), E, 0, false), -1);
  // EOL ends the walk: whatever follows is not read
  assert.equal(s.adjust(view({ seq: 2000, ack: 1, options: { raw: [0, 8, 20, 0] } }), E, 0, false), 1);
});
