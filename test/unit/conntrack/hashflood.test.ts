/**
 * Hash flooding at the level of the connection table (tuple-hash.test.ts already
 * shows that a collision set chosen under a known HashKey spreads under random
 * HashKeys; here: whole Conntrack instances, their chains, and the per-source
 * counter). Measures chain lengths, never time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomFillSync } from 'node:crypto';
import { Conntrack } from '../../../src/conntrack/core';
import { HashKey, scaleHash } from '../../../src/conntrack/hash';
import { T_DST, T_META, T_PORTS, T_SRC, TUPLE_WORDS } from '../../../src/conntrack/layout';
import { checkConntrack } from '../../../src/conntrack/check';
import { ipv4, udp } from '../../helpers/packets';
import { fixedRandom, pass, tunables } from './util';

const NB = 1024;

/** The ORIG tuple of UDP 198.18.(i>>8).(i&255):sport → 198.19.0.2:53. */
function tupleOf(i: number): Uint32Array {
  const t = new Uint32Array(TUPLE_WORDS);
  t[T_META] = (4 << 8) | 17;
  t[T_SRC] = (0xc6120000 + (i & 0xffff)) >>> 0;
  t[T_DST] = 0xc6130002;
  t[T_PORTS] = (((1024 + (i >>> 16)) << 16) | 53) >>> 0;
  return t;
}
function packetOf(t: Uint32Array): Uint8Array {
  const s = t[T_SRC];
  return ipv4({ src: `${s >>> 24}.${(s >>> 16) & 255}.${(s >>> 8) & 255}.${s & 255}`, dst: '198.19.0.2' }, udp({ sport: t[T_PORTS] >>> 16, dport: 53 }));
}

/** Chain lengths (nodes per bucket) of a Conntrack's table. */
function chains(ct: Conntrack): { max: number; used: number; total: number } {
  const tb = ct.table;
  let max = 0;
  let used = 0;
  let total = 0;
  for (let b = 0; b < tb.nbuckets; b++) {
    let n = 0;
    for (let x = tb.head(b); x >= 0; x = tb.next(x)) n++;
    if (n > 0) used++;
    total += n;
    if (n > max) max = n;
  }
  return { max, used, total };
}

/** The attacker knows the key (e.g. a fixed-key build): tuples whose ORIG node lands in bucket 0. */
function attackSet(n: number, key: HashKey): Uint32Array[] {
  const out: Uint32Array[] = [];
  for (let i = 0; out.length < n; i++) {
    const t = tupleOf(i);
    if (scaleHash(key.hashTuple(t, 0), NB) === 0) out.push(t);
  }
  return out;
}

const ATTACK = 600;
const known = fixedRandom(42);
const attack = attackSet(ATTACK, new HashKey(known));

test('under the key the attacker computed with, the set piles into one chain (the attack is real)', () => {
  const ct = new Conntrack(tunables({ nf_conntrack_buckets: NB, nf_conntrack_max: 0 }), { random: fixedRandom(42) });
  for (const t of attack) pass(ct, packetOf(t), 1000);
  const c = chains(ct);
  // every ORIG node in bucket 0; the chain-length limit of __nf_conntrack_confirm
  // (50..79) then refuses further inserts: the attack shows as chaintoolong
  assert.ok(c.max >= 50, `longest chain ${c.max}`);
  assert.ok(ct.stats.chaintoolong > 0);
  assert.ok(ct.count < ATTACK);
  assert.deepEqual(checkConntrack(ct), []);
});

test('a fresh Conntrack (random per-start key) spreads the same set: short chains, all inserted', () => {
  for (let round = 0; round < 3; round++) {
    const ct = new Conntrack(tunables({ nf_conntrack_buckets: NB, nf_conntrack_max: 0 }));
    for (const t of attack) pass(ct, packetOf(t), 1000);
    const c = chains(ct);
    assert.equal(ct.count, ATTACK, 'every connection inserted');
    assert.equal(ct.stats.chaintoolong, 0);
    assert.equal(c.total, 2 * ATTACK);
    // 1200 nodes in 1024 buckets: a uniform hash gives chains of a handful; 12 is far out in the tail
    assert.ok(c.max <= 12, `longest chain ${c.max}`);
    assert.ok(c.used > 600, `${c.used} buckets used`);
    // lookups of the attacker's tuples walk short chains
    for (const t of attack.slice(0, 50)) assert.ok(ct.lookup(t, 1000) >= 0);
    assert.deepEqual(checkConntrack(ct), []);
  }
});

test('the per-start key is random: two instances place the same tuples differently', () => {
  const a = new Conntrack(tunables({ nf_conntrack_buckets: NB }));
  const b = new Conntrack(tunables({ nf_conntrack_buckets: NB }));
  const t = attack.slice(0, 64);
  for (const x of t) {
    pass(a, packetOf(x), 1000);
    pass(b, packetOf(x), 1000);
  }
  let same = 0;
  for (let e = 0; e < 64; e++) if (a.table.bucketOf(a.table.nodeHash(2 * e)) === b.table.bucketOf(b.table.nodeHash(2 * e))) same++;
  assert.ok(same < 8, `${same} of 64 in the same bucket`);
  // and the default random source is the crypto one: a key is not constant across instances
  const k1 = new HashKey((buf) => randomFillSync(buf));
  const k2 = new HashKey((buf) => randomFillSync(buf));
  assert.ok(k1.k0 !== k2.k0 || k1.k1 !== k2.k1);
});

test('a reply-direction collision set (chosen on the REPLY tuple) spreads as well', () => {
  // the attacker controls the destination port of replies: choose REPLY tuples in bucket 0 under the known key
  const key = new HashKey(known);
  const chosen: Uint32Array[] = [];
  const r = new Uint32Array(TUPLE_WORDS);
  for (let i = 0; chosen.length < 300; i++) {
    const t = tupleOf(i);
    r[T_META] = t[T_META];
    r[T_SRC] = t[T_DST];
    r[T_DST] = t[T_SRC];
    r[T_PORTS] = ((t[T_PORTS] & 0xffff) << 16) | (t[T_PORTS] >>> 16);
    if (scaleHash(key.hashTuple(r, 0), NB) === 0) chosen.push(t);
  }
  const ct = new Conntrack(tunables({ nf_conntrack_buckets: NB, nf_conntrack_max: 0 }));
  for (const t of chosen) pass(ct, packetOf(t), 1000);
  assert.equal(ct.count, chosen.length);
  assert.ok(chains(ct).max <= 10, `longest chain ${chains(ct).max}`);
});

test('per-source counter: many sources under a fresh key keep probe sequences short', () => {
  // SourceCounter is open addressing keyed by its own random key; count the probe
  // length of every occupied slot (distance from its home slot).
  const ct = new Conntrack(tunables({ nf_conntrack_buckets: NB, nf_conntrack_max: 0, per_source_max: 1000 }));
  for (const t of attack) pass(ct, packetOf(t), 1000);
  const ps = (ct as unknown as { perSource: { cap: number; counts: Int32Array; keys: Uint32Array; k0: number; k1: number; settle(): void } }).perSource;
  ps.settle(); // a growth still moving sources over: all in the current table
  assert.equal(checkConntrack(ct).length, 0);
  const mask = ps.cap - 1;
  const { halfSipHash24 } = require('../../../src/conntrack/hash') as typeof import('../../../src/conntrack/hash');
  let worst = 0;
  let used = 0;
  for (let i = 0; i < ps.cap; i++) {
    if (ps.counts[i] === 0) continue;
    used++;
    const home = halfSipHash24(ps.k0, ps.k1, ps.keys, i * 3, 3) & mask;
    const d = (i - home + ps.cap) & mask;
    if (d > worst) worst = d;
  }
  // the set's tuples differ in source address or port: one slot per distinct source address
  assert.equal(used, new Set(attack.map((t) => t[T_SRC])).size, 'one slot per source');
  assert.ok(worst <= 24, `worst probe distance ${worst} in ${ps.cap} slots`);
});

test('IPv6 per-source counting is per /64: an attacker rotating addresses inside one /64 is one source', () => {
  const { ipv6 } = require('../../helpers/packets') as typeof import('../../helpers/packets');
  const ct = new Conntrack(tunables({ nf_conntrack_max: 0, per_source_max: 20 }));
  let ok = 0;
  for (let i = 0; i < 100; i++) {
    const c = pass(ct, ipv6({ src: `2001:2:0:66::${(i + 1).toString(16)}`, dst: '2001:2:0:2::1' }, udp({ sport: 2000 + i, dport: 53 })), 1000);
    if (c.queue === 1) ok++;
  }
  assert.equal(ok, 20);
  assert.equal(ct.stats.per_source_drop, 80);
  // another /64 is unaffected
  const c = pass(ct, ipv6({ src: '2001:2:0:67::1', dst: '2001:2:0:2::1' }, udp({ sport: 2000, dport: 53 })), 1000);
  assert.equal(c.queue, 1);
  assert.deepEqual(checkConntrack(ct), []);
});
