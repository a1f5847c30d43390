/**
 * nfqueue_hash ported from the kernel: reference values computed by the kernel's own
 * algorithm in C (test/helpers/nfqueue_hash.c), and the properties the worker model relies on.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { jhash3words, nfqueueFlowHash, nfqueueHash, reciprocalScale } from '../../../src/daemon/nfqueue-hash';
import { parseAddr } from '../../../src/daemon/control';

// output of test/helpers/nfqueue_hash.c
const REF = [
  { family: 4, src: '198.18.1.10', dst: '198.19.2.1', proto: 6, initval: 0x12345678, first: 0, total: 2, hash: 0x8b15d8dc, queue: 1 },
  { family: 4, src: '198.19.2.1', dst: '198.18.1.10', proto: 6, initval: 0x12345678, first: 0, total: 2, hash: 0x8b15d8dc, queue: 1 },
  { family: 4, src: '198.18.1.11', dst: '198.19.2.1', proto: 17, initval: 0x12345678, first: 0, total: 2, hash: 0x09e0ea83, queue: 0 },
  { family: 4, src: '198.18.1.12', dst: '198.19.2.1', proto: 6, initval: 0xdeadbeef, first: 4, total: 4, hash: 0x31ee6a97, queue: 4 },
  { family: 4, src: '198.18.0.1', dst: '198.19.255.254', proto: 1, initval: 0x00000001, first: 0, total: 3, hash: 0x505b9f45, queue: 0 },
  { family: 4, src: '198.18.200.7', dst: '198.18.200.8', proto: 6, initval: 0xffffffff, first: 10, total: 16, hash: 0x6ed1c8d4, queue: 16 },
  { family: 6, src: '2001:2:0:1::10', dst: '2001:2:0:2::1', proto: 6, initval: 0x12345678, first: 0, total: 2, hash: 0x9c715084, queue: 1 },
  { family: 6, src: '2001:2:0:2::1', dst: '2001:2:0:1::10', proto: 17, initval: 0x12345678, first: 0, total: 2, hash: 0x9c715084, queue: 1 },
  { family: 6, src: '2001:2:0:1::1f', dst: '2001:2:0:2::1', proto: 6, initval: 0x9e3779b9, first: 0, total: 5, hash: 0x7b2ff865, queue: 2 },
  { family: 6, src: '2001:2:ffff:1234::abcd', dst: '2001:2::1', proto: 58, initval: 0x00000001, first: 2, total: 2, hash: 0x566f6e12, queue: 2 },
] as const;

const words = (a: string) => parseAddr(a).words;

describe('nfqueue_hash (xt_NFQUEUE --queue-balance)', () => {
  test('equals the kernel algorithm on reference values', () => {
    for (const r of REF) {
      assert.equal(nfqueueFlowHash(r.family, words(r.src), words(r.dst), r.proto, r.initval), r.hash, `${r.src} ${r.dst}`);
      assert.equal(nfqueueHash(r.family, words(r.src), words(r.dst), r.proto, r.first, r.total, r.initval), r.queue, `${r.src} ${r.dst}`);
    }
  });

  test('jhash_3words and reciprocal_scale on edge values', () => {
    assert.equal(reciprocalScale(0xffffffff, 2), 1);
    assert.equal(reciprocalScale(0x7fffffff, 2), 0);
    assert.equal(reciprocalScale(0x80000000, 3), 1);
    assert.equal(jhash3words(0, 0, 0, 0) >>> 0, jhash3words(0, 0, 0, 0));
  });

  test('reciprocal_scale is exact where val * n passes 2^53 (the u64 product of the kernel)', () => {
    const exact = (v: number, n: number) => Number((BigInt(v) * BigInt(n)) >> 32n);
    const edges = [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffeffff, 0xffffffff];
    for (const v of edges) for (const n of edges) assert.equal(reciprocalScale(v, n), exact(v, n), `${v} * ${n}`);
    let x = 0x9e3779b9;
    for (let i = 0; i < 20000; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      const n = (Math.imul(x, 22695477) + 1) >>> 0;
      assert.equal(reciprocalScale(x, n), exact(x, n), `${x} * ${n}`);
    }
    // products one below a multiple of 2^32 and past 2^54, which a double rounds up (floor(v * n / 2^32) was one too many)
    assert.equal(reciprocalScale(0xbfffffff, 0xc0000001), 2415919103);
    assert.equal(reciprocalScale(0xcccccccd, 0xfffffffb), 3435973832);
    assert.equal(reciprocalScale(0x7fffffff, 0x80000001), 1073741823);
  });

  test('both directions and every flow between two addresses (FTP control + data) land on one queue, whatever the seed', () => {
    const c = words('198.18.1.10');
    const s = words('198.19.2.1');
    const c6 = words('2001:2:0:1::10');
    const s6 = words('2001:2:0:2::1');
    for (let seed = 1; seed < 2000; seed += 7) {
      assert.equal(nfqueueHash(4, c, s, 6, 0, 2, seed), nfqueueHash(4, s, c, 6, 0, 2, seed));
      assert.equal(nfqueueHash(6, c6, s6, 6, 0, 4, seed), nfqueueHash(6, s6, c6, 6, 0, 4, seed));
      // IPv6 ignores the protocol; IPv4 does not (an ICMP error about a TCP flow may go elsewhere)
      assert.equal(nfqueueHash(6, c6, s6, 6, 0, 4, seed), nfqueueHash(6, c6, s6, 58, 0, 4, seed));
    }
    let differs = 0;
    for (let seed = 1; seed < 200; seed++) if (nfqueueHash(4, c, s, 6, 0, 2, seed) !== nfqueueHash(4, c, s, 1, 0, 2, seed)) differs++;
    assert.ok(differs > 0, 'the IPv4 protocol is part of the hash');
  });
});
