import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Malformed } from '../../../src/packet/view';
import { concat, ipv4, ipv6, udp, udplite } from '../../helpers/packets';
import { parse } from './util';

test('UDP header and payload', () => {
  const v = parse(ipv4({}, udp({ sport: 5353, dport: 53, payload: 'query' })));
  assert.equal(v.malformed, 0);
  assert.equal(v.proto, 17);
  assert.equal(v.sport, 5353);
  assert.equal(v.dport, 53);
  assert.equal(v.udpLen, 13);
  assert.equal(v.payloadOff, 28);
  assert.equal(v.payloadLen, 5);
  const six = parse(ipv6({ extHeaders: [{ type: 60 }] }, udp({ payload: '' })));
  assert.equal(six.malformed, 0);
  assert.equal(six.udpLen, 8);
  assert.equal(six.payloadLen, 0);
  assert.equal(six.payloadOff, 56);
});

test('UDP length shorter than the IP payload: payload follows the UDP length', () => {
  const v = parse(ipv4({ proto: 17 }, concat(udp({ payload: 'ab', length: 9 }), new Uint8Array(0))));
  assert.equal(v.malformed, 0);
  assert.equal(v.udpLen, 9);
  assert.equal(v.payloadLen, 1);
  assert.equal(v.l4len, 10);
});

test('UDP malformed: truncated header, length < 8 or beyond the bytes present', () => {
  const full = udp({ sport: 1, dport: 2, payload: 'abc' });
  for (let cut = 0; cut < 8; cut++) {
    const v = parse(ipv4({ proto: 17 }, full.subarray(0, cut)));
    assert.equal(v.malformed, Malformed.TRUNCATED_L4, `cut ${cut}`);
    assert.equal(v.sport, cut >= 4 ? 1 : 0);
  }
  for (const length of [0, 1, 7]) assert.equal(parse(ipv4({}, udp({ length }))).malformed, Malformed.BAD_UDP_LEN, `len ${length}`);
  assert.equal(parse(ipv4({}, udp({ length: 12, payload: 'abc' }))).malformed, Malformed.BAD_UDP_LEN);
  assert.equal(parse(ipv4({}, udp({ length: 11, payload: 'abc' }))).malformed, 0);
  assert.equal(parse(ipv6({}, udp({ length: 0xffff }))).malformed, Malformed.BAD_UDP_LEN);
  const v = parse(ipv4({}, udp({ length: 4 })));
  assert.equal(v.udpLen, 4);
  assert.equal(v.dport, 53);
});

test('UDP-Lite: coverage 0 = whole, 8..len valid, otherwise BAD_UDP_LEN', () => {
  const v = parse(ipv4({}, udplite({ sport: 9, dport: 10, payload: 'abcd' })));
  assert.equal(v.malformed, 0);
  assert.equal(v.proto, 136);
  assert.equal(v.sport, 9);
  assert.equal(v.udpLen, 0);
  assert.equal(v.payloadLen, 4);
  assert.equal(parse(ipv4({}, udplite({ coverage: 8, payload: 'abcd' }))).malformed, 0);
  assert.equal(parse(ipv4({}, udplite({ coverage: 12, payload: 'abcd' }))).malformed, 0);
  assert.equal(parse(ipv4({}, udplite({ coverage: 13, payload: 'abcd' }))).malformed, Malformed.BAD_UDP_LEN);
  assert.equal(parse(ipv4({}, udplite({ coverage: 7, payload: 'abcd' }))).malformed, Malformed.BAD_UDP_LEN);
});
