import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Malformed } from '../../../src/packet/view';
import { icmp, icmpError, icmpv6, ipv4, ipv6, tcp, udp } from '../../helpers/packets';
import { parse } from './util';

test('ICMP echo: type, code, id; payload after the 8-byte header', () => {
  const v = parse(ipv4({}, icmp({ type: 8, code: 0, id: 0xcafe, seq: 3, payload: 'ping' })));
  assert.equal(v.malformed, 0);
  assert.equal(v.proto, 1);
  assert.equal(v.icmpType, 8);
  assert.equal(v.icmpCode, 0);
  assert.equal(v.icmpId, 0xcafe);
  assert.equal(v.payloadOff, 28);
  assert.equal(v.payloadLen, 4);
  assert.equal(v.hasInner, 0);
  assert.equal(v.sport, 0);
  // id is bytes 4-5 for every type, e.g. a router advertisement or type > 18
  assert.equal(parse(ipv4({}, icmp({ type: 9, id: 0x0102 }))).icmpId, 0x0102);
  assert.equal(parse(ipv4({}, icmp({ type: 40, code: 7, id: 5 }))).icmpCode, 7);
  const six = parse(ipv6({}, icmpv6({ type: 129, id: 0x7777 })));
  assert.equal(six.malformed, 0);
  assert.equal(six.proto, 58);
  assert.equal(six.icmpType, 129);
  assert.equal(six.icmpId, 0x7777);
  assert.equal(six.hasInner, 0);
  // ICMPv6 informational types >= 128 have no inner packet (e.g. neighbour solicitation)
  assert.equal(parse(ipv6({}, icmpv6({ type: 135 }))).hasInner, 0);
});

test('ICMP header truncated', () => {
  const full = icmp({ type: 8, code: 3 });
  for (let cut = 0; cut < 8; cut++) {
    const v = parse(ipv4({ proto: 1 }, full.subarray(0, cut)));
    assert.equal(v.malformed, Malformed.TRUNCATED_L4, `cut ${cut}`);
    assert.equal(v.icmpType, cut >= 1 ? 8 : 0);
    assert.equal(v.icmpCode, cut >= 2 ? 3 : 0);
  }
  assert.equal(parse(ipv6({ nextHeader: 58 }, new Uint8Array(7))).malformed, Malformed.TRUNCATED_L4);
});

test('ICMPv4 errors: port unreachable carrying UDP', () => {
  const inner = ipv4({ src: '198.18.0.2', dst: '198.18.0.1' }, udp({ sport: 40000, dport: 53, payload: 'dns query here' }));
  for (const type of [3, 4, 5, 11, 12]) {
    const v = parse(ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }, icmpError(type, 3, inner.subarray(0, 28))));
    assert.equal(v.malformed, 0, `type ${type}`);
    assert.equal(v.icmpType, type);
    assert.equal(v.hasInner, 1);
    assert.equal(v.innerMalformed, 0);
    assert.equal(v.innerVersion, 4);
    assert.equal(v.innerProto, 17);
    assert.deepEqual(Array.from(v.innerSrc), [0xc6120002, 0, 0, 0]);
    assert.deepEqual(Array.from(v.innerDst), [0xc6120001, 0, 0, 0]);
    assert.equal(v.innerSport, 40000);
    assert.equal(v.innerDport, 53);
    assert.equal(v.innerFragOffset, 0);
  }
  // non-error types do not look inside
  for (const type of [0, 8, 13, 14, 9, 10, 6, 19, 255]) {
    const v = parse(ipv4({}, icmp({ type, payload: inner })));
    assert.equal(v.hasInner, 0, `type ${type}`);
    assert.equal(v.innerProto, 0);
  }
});

test('ICMP error: inner TCP with only 8 bytes, inner options, inner ICMP, inner generic', () => {
  const t = ipv4({ options: [1, 1, 1, 1] }, tcp({ sport: 443, dport: 50000, seq: 1 }));
  const v = parse(ipv4({}, icmpError(3, 4, t.subarray(0, 24 + 8), { rest: 1400 })));
  assert.equal(v.malformed, 0);
  assert.equal(v.innerProto, 6);
  assert.equal(v.innerSport, 443);
  assert.equal(v.innerDport, 50000);
  // the kernel needs only the 4 port bytes
  const four = parse(ipv4({}, icmpError(3, 4, t.subarray(0, 24 + 4))));
  assert.equal(four.malformed, 0);
  assert.equal(four.innerDport, 50000);
  // inner ICMP echo: type/code/id
  const e = ipv4({}, icmp({ type: 8, id: 0x4444, payload: 'abcdefgh' }));
  const ie = parse(ipv4({}, icmpError(11, 0, e.subarray(0, 28))));
  assert.equal(ie.malformed, 0);
  assert.equal(ie.innerProto, 1);
  assert.equal(ie.innerIcmpType, 8);
  assert.equal(ie.innerIcmpCode, 0);
  assert.equal(ie.innerIcmpId, 0x4444);
  assert.equal(ie.innerSport, 0);
  // inner ICMP truncated below 8 bytes
  const ite = parse(ipv4({}, icmpError(11, 0, e.subarray(0, 27))));
  assert.equal(ite.malformed, Malformed.BAD_INNER);
  assert.equal(ite.innerMalformed, Malformed.TRUNCATED_L4);
  // inner generic protocol: nothing beyond the IP header needed
  const g = parse(ipv4({}, icmpError(3, 2, ipv4({ proto: 47 }, new Uint8Array(0)))));
  assert.equal(g.malformed, 0);
  assert.equal(g.innerProto, 47);
  // the outer fields are kept
  assert.equal(g.icmpType, 3);
  assert.equal(g.icmpCode, 2);
});

test('ICMP error with a truncated or bad inner packet', () => {
  const inner = ipv4({}, udp({ sport: 1, dport: 2 }));
  const cases: Array<[Uint8Array, number]> = [
    [inner.subarray(0, 0), Malformed.TOO_SHORT],
    [inner.subarray(0, 1), Malformed.TOO_SHORT],
    [inner.subarray(0, 19), Malformed.TOO_SHORT],
    [inner.subarray(0, 20), Malformed.TRUNCATED_L4],
    [inner.subarray(0, 23), Malformed.TRUNCATED_L4],
  ];
  for (const [bytes, code] of cases) {
    const v = parse(ipv4({}, icmpError(3, 3, bytes)));
    assert.equal(v.malformed, Malformed.BAD_INNER, `len ${bytes.length}`);
    assert.equal(v.innerMalformed, code, `len ${bytes.length}`);
    assert.equal(v.hasInner, 1);
    assert.equal(v.icmpType, 3);
  }
  const addrKept = parse(ipv4({}, icmpError(3, 3, inner.subarray(0, 22))));
  assert.equal(addrKept.innerSrc[0], 0xc6120001);
  assert.equal(addrKept.innerProto, 17);
  const badIhl = Uint8Array.from(inner);
  badIhl[0] = 0x44;
  assert.equal(parse(ipv4({}, icmpError(3, 3, badIhl))).innerMalformed, Malformed.BAD_IHL);
  badIhl[0] = 0x4f; // 60-byte header, longer than what is embedded
  assert.equal(parse(ipv4({}, icmpError(3, 3, badIhl))).innerMalformed, Malformed.BAD_IHL);
  // an IPv6 packet inside an ICMPv4 error
  const v6in = parse(ipv4({ proto: 1 }, icmpError(3, 3, ipv6({}, udp()))));
  assert.equal(v6in.innerMalformed, Malformed.BAD_VERSION);
  assert.equal(v6in.innerVersion, 6);
  // inner non-first fragment: no inner L4, not malformed (conntrack cannot use it)
  const frag = parse(ipv4({}, icmpError(3, 3, ipv4({ proto: 17, fragOffset: 16 }, udp({ sport: 8 })))));
  assert.equal(frag.malformed, 0);
  assert.equal(frag.innerFragOffset, 16);
  assert.equal(frag.innerSport, 0);
  // the inner tot_len is not checked (the embedded packet is truncated by nature)
  const cut = parse(ipv4({}, icmpError(3, 3, inner.subarray(0, 24))));
  assert.equal(cut.malformed, 0);
  assert.equal(cut.innerSport, 1);
});

test('ICMPv6 errors: inner IPv6 with extension headers', () => {
  const inner = ipv6({ src: '2001:2::2', dst: '2001:2::99', extHeaders: [{ type: 0 }, { type: 60, bytes: 16 }] }, tcp({ sport: 22, dport: 40001 }));
  for (const type of [1, 2, 3, 4, 0, 127]) {
    const v = parse(ipv6({ src: '2001:2::fe', dst: '2001:2::2' }, icmpError(type, 0, inner)));
    assert.equal(v.malformed, 0, `type ${type}`);
    assert.equal(v.hasInner, 1);
    assert.equal(v.innerVersion, 6);
    assert.equal(v.innerProto, 6);
    assert.deepEqual(Array.from(v.innerSrc), [0x20010002, 0, 0, 2]);
    assert.deepEqual(Array.from(v.innerDst), [0x20010002, 0, 0, 0x99]);
    assert.equal(v.innerSport, 22);
    assert.equal(v.innerDport, 40001);
  }
  // inner ICMPv6 echo
  const echo = ipv6({}, icmpv6({ type: 128, id: 0x99 }));
  const ie = parse(ipv6({}, icmpError(3, 0, echo)));
  assert.equal(ie.innerProto, 58);
  assert.equal(ie.innerIcmpType, 128);
  assert.equal(ie.innerIcmpId, 0x99);
  // inner fragment header: first fragment parsed, later fragment not
  const f1 = parse(ipv6({}, icmpError(2, 0, ipv6({ extHeaders: [{ type: 44, more: true }] }, udp({ sport: 3 })), { rest: 1280 })));
  assert.equal(f1.innerSport, 3);
  const f2 = parse(ipv6({}, icmpError(2, 0, ipv6({ extHeaders: [{ type: 44, fragOffset: 8 }], nextHeader: 17 }, udp({ sport: 3 })))));
  assert.equal(f2.malformed, 0);
  assert.equal(f2.innerFragOffset, 8);
  assert.equal(f2.innerProto, 17);
  assert.equal(f2.innerSport, 0);
  // inner no-next-header
  const nn = parse(ipv6({}, icmpError(1, 0, ipv6({ nextHeader: 59 }))));
  assert.equal(nn.malformed, 0);
  assert.equal(nn.innerProto, 59);
  // truncated inner: fixed header, extension header, L4 ports
  assert.equal(parse(ipv6({}, icmpError(1, 0, inner.subarray(0, 39)))).innerMalformed, Malformed.TOO_SHORT);
  const t = parse(ipv6({}, icmpError(1, 0, inner.subarray(0, 60))));
  assert.equal(t.malformed, Malformed.BAD_INNER);
  assert.equal(t.innerMalformed, Malformed.BAD_EXT_HEADER);
  assert.equal(t.innerSrc[3], 2);
  assert.equal(parse(ipv6({}, icmpError(1, 0, inner.subarray(0, 64 + 3)))).innerMalformed, Malformed.TRUNCATED_L4);
  assert.equal(parse(ipv6({}, icmpError(1, 0, inner.subarray(0, 64 + 4)))).innerMalformed, 0);
  // IPv4 inside ICMPv6
  assert.equal(parse(ipv6({ nextHeader: 58 }, icmpError(1, 0, ipv4({}, udp())))).innerMalformed, Malformed.BAD_VERSION);
});

test('ICMP in the wrong family is not parsed as an error', () => {
  // protocol 1 inside IPv6 and 58 inside IPv4: header fields only
  const a = parse(ipv6({ nextHeader: 1 }, icmpError(3, 3, ipv4({}, udp()))));
  assert.equal(a.malformed, 0);
  assert.equal(a.icmpType, 3);
  assert.equal(a.hasInner, 0);
  const b = parse(ipv4({ proto: 58 }, icmpError(1, 0, ipv6({}, udp()))));
  assert.equal(b.malformed, 0);
  assert.equal(b.hasInner, 0);
});
