import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Malformed, TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG } from '../../../src/packet/view';
import { ipv4, ipv6, tcp } from '../../helpers/packets';
import { parse } from './util';

test('TCP header fields, unsigned seq/ack', () => {
  const v = parse(ipv4({}, tcp({ sport: 65535, dport: 1, seq: 0xfffffffe, ack: 0x80000000, flags: 'FSRPAUEC', window: 0xabcd, payload: 'xyz' })));
  assert.equal(v.malformed, 0);
  assert.equal(v.sport, 65535);
  assert.equal(v.dport, 1);
  assert.equal(v.seq, 0xfffffffe);
  assert.equal(v.ack, 0x80000000);
  assert.equal(v.tcpFlags, TCP_FIN | TCP_SYN | TCP_RST | TCP_PSH | TCP_ACK | TCP_URG | TCP_ECE | TCP_CWR);
  assert.equal(v.window, 0xabcd);
  assert.equal(v.tcpHeaderLen, 20);
  assert.equal(v.payloadOff, 40);
  assert.equal(v.payloadLen, 3);
  assert.equal(v.optWscale, -1);
  assert.equal(v.optMss, 0);
  assert.equal(v.optSackPerm, 0);
  assert.equal(v.hasSack, 0);
  const six = parse(ipv6({}, tcp({ flags: 'SA', payload: 'q' })));
  assert.equal(six.tcpFlags, TCP_SYN | TCP_ACK);
  assert.equal(six.payloadOff, 60);
  assert.equal(six.payloadLen, 1);
});

test('TCP options: MSS, window scale, SACK-permitted, timestamps', () => {
  const v = parse(ipv4({}, tcp({ options: { mss: 1460, sackPerm: true, timestamp: [1, 2], wscale: 7 } })));
  assert.equal(v.malformed, 0);
  assert.equal(v.optMss, 1460);
  assert.equal(v.optWscale, 7);
  assert.equal(v.optSackPerm, 1);
  assert.equal(v.hasSack, 0);
  assert.equal(v.tcpHeaderLen, 20 + 4 + 2 + 10 + 3 + 1);
  assert.equal(v.payloadLen, 0);
  // window scale capped at 14 like the kernel; 0 is a valid scale
  assert.equal(parse(ipv4({}, tcp({ options: { wscale: 15 } }))).optWscale, 14);
  assert.equal(parse(ipv4({}, tcp({ options: { wscale: 255 } }))).optWscale, 14);
  assert.equal(parse(ipv4({}, tcp({ options: { wscale: 14 } }))).optWscale, 14);
  assert.equal(parse(ipv4({}, tcp({ options: { wscale: 0 } }))).optWscale, 0);
  // wrong option lengths are skipped, not recorded
  assert.equal(parse(ipv4({}, tcp({ options: { raw: [3, 4, 7, 0] } }))).optWscale, -1);
  assert.equal(parse(ipv4({}, tcp({ options: { raw: [4, 3, 0] } }))).optSackPerm, 0);
  assert.equal(parse(ipv4({}, tcp({ options: { raw: [2, 3, 5] } }))).optMss, 0);
  // last occurrence wins, as in the kernel's loop
  assert.equal(parse(ipv4({}, tcp({ options: { wscale: 2, raw: [3, 3, 9] } }))).optWscale, 9);
});

test('SACK blocks: highest right edge by modular comparison, first SACK option only', () => {
  const a = parse(
    ipv4(
      {},
      tcp({
        flags: 'A',
        options: {
          sack: [
            [100, 200],
            [300, 400],
            [10, 20],
          ],
        },
      }),
    ),
  );
  assert.equal(a.hasSack, 1);
  assert.equal(a.sackRight, 400);
  // wrap-around: 0x00000010 is after 0xfffffff0
  const w = parse(
    ipv4(
      {},
      tcp({
        flags: 'A',
        options: {
          sack: [
            [0xffffff00, 0xfffffff0],
            [0xfffffff0, 0x10],
          ],
        },
      }),
    ),
  );
  assert.equal(w.sackRight, 0x10);
  const w2 = parse(
    ipv4(
      {},
      tcp({
        flags: 'A',
        options: {
          sack: [
            [0, 0x10],
            [0xffffff00, 0xfffffff0],
          ],
        },
      }),
    ),
  );
  assert.equal(w2.sackRight, 0x10);
  // four blocks (34 bytes) with timestamps → 40-byte option space limit
  const four = parse(
    ipv4(
      {},
      tcp({
        flags: 'A',
        options: {
          sack: [
            [1, 5],
            [6, 7],
            [8, 0x7fffffff],
            [9, 10],
          ],
        },
      }),
    ),
  );
  assert.equal(four.sackRight, 0x7fffffff);
  assert.equal(four.tcpHeaderLen, 56);
  // a SACK option of a bad length (2 + 7) is skipped; a later good one counts
  const bad = parse(ipv4({}, tcp({ flags: 'A', options: { raw: [5, 9, 0, 0, 0, 0, 0, 0, 0, 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2] } })));
  assert.equal(bad.malformed, 0);
  assert.equal(bad.hasSack, 1);
  assert.equal(bad.sackRight, 2);
  // SACK of length 2 (no block) is not a SACK
  assert.equal(parse(ipv4({}, tcp({ options: { raw: [5, 2] } }))).hasSack, 0);
  // only the first well-formed SACK option is used (tcp_sack returns after it)
  const two = parse(ipv4({}, tcp({ options: { sack: [[1, 2]], raw: [5, 10, 0, 0, 0, 0, 0, 0, 0, 9] } })));
  assert.equal(two.sackRight, 2);
  // options after a SACK still parse
  const after = parse(ipv4({}, tcp({ options: { sack: [[1, 2]], raw: [3, 3, 4] } })));
  assert.equal(after.optWscale, 4);
});

test('malformed options stop option parsing but the packet stays valid', () => {
  // EOL ends the list
  const eol = parse(ipv4({}, tcp({ options: { raw: [0, 3, 3, 5] } })));
  assert.equal(eol.malformed, 0);
  assert.equal(eol.optWscale, -1);
  // length < 2
  const silly = parse(ipv4({}, tcp({ options: { raw: [8, 1, 3, 3, 5, 0, 0, 0] } })));
  assert.equal(silly.malformed, 0);
  assert.equal(silly.optWscale, -1);
  const zero = parse(ipv4({}, tcp({ options: { raw: [8, 0, 3, 3, 5, 0, 0, 0] } })));
  assert.equal(zero.optWscale, -1);
  // length past the option space
  const partial = parse(ipv4({}, tcp({ options: { raw: [1, 1, 3, 3, 5, 2, 40, 0] } })));
  assert.equal(partial.malformed, 0);
  assert.equal(partial.optWscale, 5);
  const partial2 = parse(ipv4({}, tcp({ options: { raw: [1, 1, 1, 3] } })));
  assert.equal(partial2.optWscale, -1);
  // the options before the bad one are kept
  const kept = parse(ipv4({}, tcp({ options: { mss: 536, raw: [4, 2, 5, 1] } })));
  assert.equal(kept.optMss, 536);
  assert.equal(kept.optSackPerm, 1);
  assert.equal(kept.hasSack, 0);
  // NOPs only
  assert.equal(parse(ipv4({}, tcp({ options: { raw: [1, 1, 1, 1] } }))).malformed, 0);
  // the payload is not mistaken for options
  const p = parse(ipv4({}, tcp({ payload: [3, 3, 9] })));
  assert.equal(p.optWscale, -1);
  assert.equal(p.payloadLen, 3);
});

test('TCP malformed: truncated header, data offset < 5 or past the end', () => {
  const full = ipv4({}, tcp({ sport: 1234, dport: 4321, options: { mss: 1 } }));
  for (let cut = 0; cut < 24; cut++) {
    const l4 = full.subarray(20, 20 + cut);
    const v = parse(ipv4({ proto: 6 }, l4));
    if (cut < 20) assert.equal(v.malformed, Malformed.TRUNCATED_L4, `cut ${cut}`);
    else assert.equal(v.malformed, Malformed.BAD_TCP_DOFF, `cut ${cut}`);
    // ports are read once 4 bytes exist (the kernel builds a tuple from them)
    assert.equal(v.sport, cut >= 4 ? 1234 : 0);
    assert.equal(v.dport, cut >= 4 ? 4321 : 0);
  }
  for (const doff of [0, 1, 4]) assert.equal(parse(ipv4({}, tcp({ doff }))).malformed, Malformed.BAD_TCP_DOFF);
  assert.equal(parse(ipv4({}, tcp({ doff: 6 }))).malformed, Malformed.BAD_TCP_DOFF);
  assert.equal(parse(ipv4({}, tcp({ doff: 6, payload: 'abcd' }))).malformed, 0);
  assert.equal(parse(ipv4({}, tcp({ doff: 15, payload: new Uint8Array(40) }))).malformed, 0);
  assert.equal(parse(ipv4({}, tcp({ doff: 15, payload: new Uint8Array(39) }))).malformed, Malformed.BAD_TCP_DOFF);
  const v = parse(ipv4({}, tcp({ doff: 3, seq: 77 })));
  assert.equal(v.seq, 77); // fields read before the failure stay
  assert.equal(v.tcpHeaderLen, 12);
});
