import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePacket } from '../../../src/packet/parse';
import { MAX_EXT_HEADERS } from '../../../src/packet/ip6';
import { Malformed, PacketView } from '../../../src/packet/view';
import { concat, icmp, icmpv6, ipv4, ipv6, tcp, udp } from '../../helpers/packets';
import { parse, relSnapshot, snapshot } from './util';

test('IPv4 header fields', () => {
  const p = ipv4({ src: '198.18.1.2', dst: '198.19.255.254', ttl: 33, id: 0xbeef, tos: 0x10, df: true }, udp({ payload: 'abc' }));
  const v = parse(p);
  assert.equal(v.malformed, 0);
  assert.equal(v.ipVersion, 4);
  assert.equal(v.ttl, 33);
  assert.equal(v.ipId, 0xbeef);
  assert.equal(v.tos, 0x10);
  assert.equal(v.dontFragment, 1);
  assert.equal(v.isFragment, 0);
  assert.equal(v.moreFragments, 0);
  assert.equal(v.fragOffset, 0);
  assert.equal(v.proto, 17);
  assert.deepEqual(Array.from(v.src), [0xc6120102, 0, 0, 0]);
  assert.deepEqual(Array.from(v.dst), [0xc613fffe, 0, 0, 0]);
  assert.equal(v.ipTotalLen, p.length);
  assert.equal(v.len, p.length);
  assert.equal(v.l4off, 20);
  assert.equal(v.l4len, 11);
});

test('IPv4 options: IHL > 5 moves the L4 header', () => {
  const p = ipv4({ options: [0x94, 0x04, 0, 0, 1, 1, 1] }, tcp({ sport: 1, dport: 2 })); // router alert + NOPs (padded to 8)
  const v = parse(p);
  assert.equal(v.malformed, 0);
  assert.equal(v.l4off, 28);
  assert.equal(v.sport, 1);
  assert.equal(v.dport, 2);
});

test('IPv4 buffer longer than tot_len is clipped (Ethernet padding)', () => {
  const p = ipv4({}, udp({ payload: 'x' }));
  const padded = concat(p, new Uint8Array(17).fill(0xee));
  const v = parse(padded);
  assert.equal(v.malformed, 0);
  assert.equal(v.len, p.length);
  assert.equal(v.l4len, 9);
  assert.equal(v.udpLen, 9);
});

test('IPv4 malformed: short, bad IHL, tot_len lies, bad version', () => {
  const p = ipv4({}, tcp());
  for (let n = 1; n < 20; n++) assert.equal(parse(p.subarray(0, n)).malformed, Malformed.TOO_SHORT, `len ${n}`);
  assert.equal(parse(new Uint8Array(0)).malformed, Malformed.TOO_SHORT);
  for (const ihl of [0, 1, 4]) assert.equal(parse(ipv4({ ihl }, tcp())).malformed, Malformed.BAD_IHL, `ihl ${ihl}`);
  // IHL beyond the packet
  const q = ipv4({ ihl: 15 }, new Uint8Array(10));
  assert.equal(parse(q).malformed, Malformed.BAD_IHL);
  // addresses were read although the header is bad
  assert.equal(parse(q).src[0], 0xc6120001);
  // tot_len smaller than the header, larger than the packet
  assert.equal(parse(ipv4({ totalLength: 19 }, tcp())).malformed, Malformed.BAD_TOTAL_LEN);
  const big = ipv4({ totalLength: 100 }, tcp());
  const vb = parse(big);
  assert.equal(vb.malformed, Malformed.BAD_TOTAL_LEN);
  assert.equal(vb.ipTotalLen, 100);
  // truncated packet: tot_len says more than what we have
  assert.equal(parse(p.subarray(0, p.length - 1)).malformed, Malformed.BAD_TOTAL_LEN);
  // version nibble
  const bad = Uint8Array.from(p);
  bad[0] = 0x55;
  assert.equal(parse(bad).malformed, Malformed.BAD_VERSION);
  // family mismatch with the queue's family
  assert.equal(parse(p, 6).malformed, Malformed.BAD_VERSION);
  assert.equal(parse(p, 10).malformed, Malformed.BAD_VERSION);
  assert.equal(parse(p, 2).malformed, 0);
  assert.equal(parse(p, 4).malformed, 0);
});

test('IPv4 fragments: first fragment parses L4, non-first does not', () => {
  const first = parse(ipv4({ mf: true, id: 7 }, tcp({ sport: 5, dport: 6 })));
  assert.equal(first.malformed, 0);
  assert.equal(first.isFragment, 1);
  assert.equal(first.moreFragments, 1);
  assert.equal(first.fragOffset, 0);
  assert.equal(first.sport, 5);
  const later = parse(ipv4({ proto: 6, fragOffset: 1480, mf: true }, tcp({ sport: 5, dport: 6 })));
  assert.equal(later.malformed, 0);
  assert.equal(later.isFragment, 1);
  assert.equal(later.fragOffset, 1480);
  assert.equal(later.moreFragments, 1);
  assert.equal(later.proto, 6);
  assert.equal(later.sport, 0);
  assert.equal(later.dport, 0);
  assert.equal(later.tcpHeaderLen, 0);
  assert.equal(later.payloadOff, later.l4off);
  const last = parse(ipv4({ proto: 17, fragOffset: 8 }, new Uint8Array(3)));
  assert.equal(last.malformed, 0);
  assert.equal(last.isFragment, 1);
  assert.equal(last.moreFragments, 0);
  assert.equal(last.fragOffset, 8);
  assert.equal(parse(ipv4({ flags: 2 }, udp())).dontFragment, 1);
});

test('generic protocols: l4off/l4len and payload only', () => {
  const v = parse(ipv4({ proto: 50 }, new Uint8Array(12).fill(1)));
  assert.equal(v.malformed, 0);
  assert.equal(v.proto, 50);
  assert.equal(v.sport, 0);
  assert.equal(v.payloadOff, 20);
  assert.equal(v.payloadLen, 12);
});

test('IPv6 header fields', () => {
  const p = ipv6({ src: '2001:2::abcd', dst: '2001:2:0:1::1', hopLimit: 9, trafficClass: 0xb8, flowLabel: 0x12345 }, tcp({ sport: 22, dport: 2222 }));
  const v = parse(p);
  assert.equal(v.malformed, 0);
  assert.equal(v.ipVersion, 6);
  assert.equal(v.ttl, 9);
  assert.equal(v.tos, 0xb8);
  assert.equal(v.flowLabel, 0x12345);
  assert.deepEqual(Array.from(v.src), [0x20010002, 0, 0, 0xabcd]);
  assert.deepEqual(Array.from(v.dst), [0x20010002, 1, 0, 1]);
  assert.equal(v.proto, 6);
  assert.equal(v.l4off, 40);
  assert.equal(v.ipTotalLen, p.length);
  assert.equal(v.sport, 22);
  assert.equal(v.ipId, 0);
  assert.equal(v.isFragment, 0);
});

test('IPv6 extension headers: hop-by-hop, routing, destination options, AH are skipped', () => {
  const p = ipv6(
    { extHeaders: [{ type: 0 }, { type: 43, bytes: 24 }, { type: 51, bytes: 24 }, { type: 60, bytes: 16 }] },
    udp({ sport: 1000, dport: 2000, payload: 'zz' }),
  );
  const v = parse(p);
  assert.equal(v.malformed, 0);
  assert.equal(v.proto, 17);
  assert.equal(v.l4off, 40 + 8 + 24 + 24 + 16);
  assert.equal(v.sport, 1000);
  assert.equal(v.payloadLen, 2);
  // AH length is (n+2)*4, not (n+1)*8: an AH of 12 bytes
  const ah = parse(ipv6({ extHeaders: [{ type: 51, bytes: 12 }] }, tcp({ sport: 3 })));
  assert.equal(ah.malformed, 0);
  assert.equal(ah.l4off, 52);
  assert.equal(ah.sport, 3);
});

test('IPv6 no next header (59) and ESP are upper layers', () => {
  const v = parse(ipv6({ extHeaders: [{ type: 60 }], nextHeader: 59 }, new Uint8Array(4)));
  assert.equal(v.malformed, 0);
  assert.equal(v.proto, 59);
  assert.equal(v.l4off, 48);
  assert.equal(v.l4len, 4);
  const e = parse(ipv6({ nextHeader: 50 }, new Uint8Array(16)));
  assert.equal(e.proto, 50);
  assert.equal(e.l4len, 16);
  const bare = parse(ipv6({}));
  assert.equal(bare.malformed, 0);
  assert.equal(bare.proto, 59);
  assert.equal(bare.l4len, 0);
});

test('IPv6 fragment header', () => {
  const first = parse(ipv6({ extHeaders: [{ type: 44, more: true, id: 0xdeadbeef }] }, tcp({ sport: 7 })));
  assert.equal(first.malformed, 0);
  assert.equal(first.isFragment, 1);
  assert.equal(first.moreFragments, 1);
  assert.equal(first.fragOffset, 0);
  assert.equal(first.ipId, 0xdeadbeef);
  assert.equal(first.proto, 6);
  assert.equal(first.sport, 7);
  const later = parse(ipv6({ extHeaders: [{ type: 0 }, { type: 44, fragOffset: 2048, id: 5 }], nextHeader: 17 }, udp({ sport: 9 })));
  assert.equal(later.malformed, 0);
  assert.equal(later.isFragment, 1);
  assert.equal(later.fragOffset, 2048);
  assert.equal(later.moreFragments, 0);
  assert.equal(later.proto, 17);
  assert.equal(later.l4off, 56);
  assert.equal(later.sport, 0);
  assert.equal(later.udpLen, 0);
});

test('IPv6 malformed: short, payload length lies, truncated or endless extension chains', () => {
  const p = ipv6({ extHeaders: [{ type: 0 }] }, tcp());
  for (let n = 1; n < 40; n++) assert.equal(parse(p.subarray(0, n)).malformed, Malformed.TOO_SHORT, `len ${n}`);
  assert.equal(parse(p.subarray(0, p.length - 1)).malformed, Malformed.BAD_TOTAL_LEN);
  assert.equal(parse(ipv6({ payloadLength: 100 }, udp())).malformed, Malformed.BAD_TOTAL_LEN);
  // payload length shorter than the buffer: the rest is clipped off
  const short = parse(concat(ipv6({}, udp({ payload: 'abcdef' })), new Uint8Array(6)));
  assert.equal(short.malformed, 0);
  assert.equal(short.len, 54);
  assert.equal(short.l4len, 14);
  // ... and a UDP length beyond the clipped payload is a lie
  const clipped = parse(ipv6({ payloadLength: 8 }, udp({ payload: 'abcdef' })));
  assert.equal(clipped.len, 48);
  assert.equal(clipped.udpLen, 14);
  assert.equal(clipped.malformed, Malformed.BAD_UDP_LEN);

  // extension header whose length runs past the payload
  const t1 = ipv6({ extHeaders: [{ type: 60, bytes: 16 }], nextHeader: 59 });
  assert.equal(parse(t1).malformed, 0);
  // the IPv6 payload length ends inside the extension header
  assert.equal(parse(ipv6({ payloadLength: 15, nextHeader: 60 }, t1.subarray(40))).malformed, Malformed.BAD_EXT_HEADER);
  const cut = Uint8Array.from(t1);
  cut[41] = 5; // claims 48 bytes
  assert.equal(parse(cut).malformed, Malformed.BAD_EXT_HEADER);
  // no room for the 2-byte generic header / the 8-byte fragment header
  assert.equal(parse(ipv6({ nextHeader: 0 }, new Uint8Array(1))).malformed, Malformed.BAD_EXT_HEADER);
  assert.equal(parse(ipv6({ nextHeader: 44 }, new Uint8Array(6))).malformed, Malformed.BAD_EXT_HEADER);
  // AH header truncated
  const ah = new Uint8Array(8);
  ah[0] = 59;
  ah[1] = 4; // 24 bytes
  assert.equal(parse(ipv6({ nextHeader: 51 }, ah)).malformed, Malformed.BAD_EXT_HEADER);
  // long chain of destination options headers
  const ok = parse(ipv6({ extHeaders: Array.from({ length: MAX_EXT_HEADERS }, () => ({ type: 60 as const })) }, udp()));
  assert.equal(ok.malformed, 0);
  assert.equal(ok.proto, 17);
  const tooMany = parse(ipv6({ extHeaders: Array.from({ length: MAX_EXT_HEADERS + 1 }, () => ({ type: 60 as const })) }, udp()));
  assert.equal(tooMany.malformed, Malformed.BAD_EXT_HEADER);
  // addresses survive an extension-header failure
  assert.equal(tooMany.src[3], 1);
  // version/family mismatch
  assert.equal(parse(p, 4).malformed, Malformed.BAD_VERSION);
  assert.equal(parse(p, 10).malformed, 0);
});

test('parsing at a non-zero offset inside a larger shared buffer', () => {
  const pkts = [
    ipv4({ options: [1, 1, 1, 1] }, tcp({ flags: 'SA', options: { mss: 1400, sack: [[5, 9]] }, payload: 'hello' })),
    ipv6({ extHeaders: [{ type: 0 }, { type: 44, more: true }] }, udp({ payload: 'x' })),
    ipv4({}, icmp({ type: 0, id: 77 })),
    ipv6({}, icmpv6({ type: 129, id: 99 })),
  ];
  const big = new Uint8Array(4096).fill(0xa5);
  let off = 3;
  const v = new PacketView();
  for (const p of pkts) {
    big.set(p, off);
    const ref = parse(p);
    // len goes to the end of the buffer: clipping by tot_len must still find the packet
    assert.equal(parsePacket(big, off, big.length - off, v), true);
    assert.deepEqual(relSnapshot(v), { ...relSnapshot(ref), len: ref.len });
    assert.equal(v.off, off);
    off += p.length + 13;
  }
  // offsets and lengths outside the buffer never throw
  assert.equal(parsePacket(big, big.length, 10, v), false);
  assert.equal(v.malformed, Malformed.TOO_SHORT);
  assert.equal(parsePacket(big, big.length + 100, 10, v), false);
  assert.equal(parsePacket(big, -5, 10, v), false);
  assert.equal(parsePacket(big, 4090, 100, v), false);
  assert.equal(parsePacket(big, 0, Number.NaN, v), false);
});

test('a reused view never keeps fields of the previous packet', () => {
  const corpus = [
    ipv4(
      { df: true, ttl: 3, tos: 4 },
      tcp({ flags: 'SA', seq: 0xfffffff0, ack: 0x80000001, options: { mss: 1460, wscale: 20, sackPerm: true, sack: [[1, 2]] }, payload: 'data' }),
    ),
    ipv6({ extHeaders: [{ type: 44, more: true, id: 3 }], flowLabel: 5 }, udp({ sport: 1, dport: 2, payload: 'u' })),
    ipv4({}, icmp({ type: 3, code: 3, payload: ipv4({}, udp()).subarray(0, 28) })),
    ipv4({}, new Uint8Array(0)),
    ipv6({}, icmpv6({ type: 1, payload: ipv6({ extHeaders: [{ type: 60 }] }, tcp()).subarray(0, 60) })),
    ipv4({ proto: 6, fragOffset: 64 }, new Uint8Array(8)),
    ipv4({}, tcp().subarray(0, 10)),
    ipv6({ nextHeader: 59 }),
    new Uint8Array([0x45]),
  ];
  const v = new PacketView();
  for (const a of corpus) {
    for (const b of corpus) {
      parsePacket(a, 0, a.length, v);
      parsePacket(b, 0, b.length, v);
      assert.deepEqual(snapshot(v), snapshot(parse(b)));
    }
  }
});
