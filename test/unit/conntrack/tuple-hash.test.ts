import { test } from 'node:test';
import assert from 'node:assert/strict';
import { halfSipHash24, HashKey, scaleHash } from '../../../src/conntrack/hash';
import { invertTuple, invertPorts, icmpInverseType, icmpv6InverseType } from '../../../src/conntrack/tuple';
import { TUPLE_WORDS, T_META, T_SRC, T_DST, T_PORTS } from '../../../src/conntrack/layout';
import { Conntrack } from '../../../src/conntrack/core';
import { fixedRandom, tunables } from './util';

test('HalfSipHash-2-4 matches the reference 32-bit test vectors (key 00..07, message 00..n-1)', () => {
  // vectors_hsip32 of the SipHash reference implementation, read little-endian
  const vectors: [number, number][] = [
    [0, 0x5b9f35a9],
    [4, 0x89466e2a],
    [8, 0x8f84b8d0],
    [12, 0x2f87f057],
    [16, 0x84acb5d9],
  ];
  const k0 = 0x03020100;
  const k1 = 0x07060504;
  for (const [len, want] of vectors) {
    const w = new Uint32Array(len / 4);
    for (let i = 0; i < len; i++) w[i >> 2] |= i << (8 * (i & 3));
    assert.equal(halfSipHash24(k0, k1, w, 0, len / 4), want >>> 0, `len ${len}`);
  }
});

test('tuple inversion: ports swapped, addresses swapped', () => {
  const a = new Uint32Array(TUPLE_WORDS);
  a[T_META] = (4 << 8) | 17;
  a[T_SRC] = 0xc6120002;
  a[T_DST] = 0xc6130002;
  a[T_PORTS] = (40000 << 16) | 53;
  const b = new Uint32Array(TUPLE_WORDS);
  assert.ok(invertTuple(a, 0, b, 0));
  assert.equal(b[T_SRC], 0xc6130002);
  assert.equal(b[T_DST], 0xc6120002);
  assert.equal(b[T_PORTS], ((53 << 16) | 40000) >>> 0);
  assert.equal(b[T_META], a[T_META]);
});

test('ICMP inversion table (invmap): requests/replies pair up, everything else fails', () => {
  const pairs = [
    [8, 0],
    [0, 8],
    [13, 14],
    [14, 13],
    [15, 16],
    [16, 15],
    [17, 18],
    [18, 17],
  ];
  for (const [t, r] of pairs) assert.equal(icmpInverseType(t), r);
  for (const t of [3, 4, 5, 9, 10, 11, 12, 19, 255]) assert.equal(icmpInverseType(t), -1, `type ${t}`);
  // id and code are kept, type mapped
  const ports = (4242 << 16) | (8 << 8) | 0;
  assert.equal(invertPorts(1, ports), ((4242 << 16) | (0 << 8) | 0) >>> 0);
  assert.equal(invertPorts(1, (1 << 16) | (9 << 8)), -1);
});

test('ICMPv6 inversion table', () => {
  for (const [t, r] of [
    [128, 129],
    [129, 128],
    [139, 140],
    [140, 139],
  ])
    assert.equal(icmpv6InverseType(t), r);
  for (const t of [1, 2, 127, 130, 133, 135, 137, 141]) assert.equal(icmpv6InverseType(t), -1, `type ${t}`);
  assert.equal(invertPorts(58, (7 << 16) | (128 << 8) | 3), ((7 << 16) | (129 << 8) | 3) >>> 0);
});

test('scaleHash stays in range and spreads over the table', () => {
  for (const n of [1, 7, 1024, 1 << 26]) {
    assert.equal(scaleHash(0, n), 0);
    assert.equal(scaleHash(0xffffffff, n), n - 1);
  }
  assert.equal(scaleHash(0x80000000, 1024), 512);
});

function udpTuple(i: number): Uint32Array {
  const t = new Uint32Array(TUPLE_WORDS);
  t[T_META] = (4 << 8) | 17;
  t[T_SRC] = 0xc6120000 + (i & 0xffff);
  t[T_DST] = 0xc6130002;
  t[T_PORTS] = ((1024 + (i >>> 16)) << 16) | 53;
  return t;
}

test('the hash is keyed: two instances disagree', () => {
  const a = new HashKey((b) => require('node:crypto').randomFillSync(b));
  const b = new HashKey((b) => require('node:crypto').randomFillSync(b));
  let same = 0;
  for (let i = 0; i < 64; i++) {
    const t = udpTuple(i);
    if (a.hash(t, 0, TUPLE_WORDS) === b.hash(t, 0, TUPLE_WORDS)) same++;
  }
  assert.ok(same < 2, `${same} equal hashes out of 64`);
  const c1 = new Conntrack(tunables());
  const c2 = new Conntrack(tunables());
  assert.ok(c1 !== c2);
});

test('a collision set chosen under a known key lands in one bucket; under random keys it spreads', () => {
  const nb = 1024;
  const known = new HashKey(fixedRandom(7));
  const chosen: Uint32Array[] = [];
  for (let i = 0; chosen.length < 64; i++) {
    const t = udpTuple(i);
    if (scaleHash(known.hash(t, 0, TUPLE_WORDS), nb) === 0) chosen.push(t);
  }
  // the attacker's view: all 64 in bucket 0
  for (const t of chosen) assert.equal(scaleHash(known.hash(t, 0, TUPLE_WORDS), nb), 0);
  // a real instance keys its hash randomly
  for (let round = 0; round < 3; round++) {
    const k = new HashKey((b) => require('node:crypto').randomFillSync(b));
    const buckets = new Map<number, number>();
    for (const t of chosen) {
      const b = scaleHash(k.hash(t, 0, TUPLE_WORDS), nb);
      buckets.set(b, (buckets.get(b) ?? 0) + 1);
    }
    const worst = Math.max(...buckets.values());
    assert.ok(buckets.size > 50, `only ${buckets.size} buckets used`);
    assert.ok(worst <= 4, `worst chain ${worst}`);
  }
});
