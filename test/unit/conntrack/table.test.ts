import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4, udp } from '../../helpers/packets';
import { CTSTATE_INVALID, IP_CT_NEW, IPS_ASSURED } from '../../../src/conntrack/constants';
import { NF_DROP } from '../../../src/queue/layout';
import { TABLE_FULL_MSG } from '../../../src/conntrack/core';
import { ctxOf, makeCt, pass } from './util';
import { checkConntrack } from '../../../src/conntrack/check';
import { REC_WORDS, TUPLE_WORDS } from '../../../src/conntrack/layout';
import { tupleFromView } from '../../../src/conntrack/tuple';

const S = '198.19.0.2';
const flow = (i: number, dir = 0) =>
  dir === 0
    ? ipv4({ src: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, dst: S }, udp({ sport: 1000 + (i & 0x3fff), dport: 53, payload: 'q' }))
    : ipv4({ src: S, dst: `198.18.${(i >> 8) & 0xff}.${i & 0xff}` }, udp({ sport: 53, dport: 1000 + (i & 0x3fff), payload: 'r' }));

/** The ORIG tuple of a packet. */
function tupleOf(bytes: Uint8Array): Uint32Array {
  const t = new Uint32Array(TUPLE_WORDS);
  assert.ok(tupleFromView(ctxOf(bytes).view, t, 0));
  return t;
}

test('expiry: an expired entry is reaped by the lookup that meets it', () => {
  const { ct } = makeCt();
  const a = pass(ct, flow(1), 0);
  assert.equal(ct.count, 1);
  const b = pass(ct, flow(1), 29_999);
  assert.equal(b.entry, a.entry, 'still alive just before 30 s');
  const c = pass(ct, flow(1), 29_999 + 30_000);
  assert.equal(c.ctinfo, IP_CT_NEW, 'a new entry after expiry');
  assert.equal(ct.count, 1);
});

test('GC reaps expired entries with bounded work per call and covers the whole table over calls', () => {
  const { ct } = makeCt({ nf_conntrack_buckets: 256, nf_conntrack_max: 0 });
  for (let i = 0; i < 500; i++) pass(ct, flow(i), 0);
  for (let i = 500; i < 600; i++) pass(ct, flow(i), 20_000); // these live on
  assert.equal(ct.count, 600);
  const first = ct.gc(40_000, 50);
  assert.ok(first <= 50, `one call removed ${first}`);
  let total = first;
  let calls = 1;
  while (ct.count > 100 && calls < 1000) {
    total += ct.gc(40_000, 50);
    calls++;
  }
  assert.equal(ct.count, 100);
  assert.equal(total, 500);
  assert.ok(calls > 5, 'work was split over several calls');
  assert.equal([...ct.entries()].length, 100);
});

test('table full (max 64): never exceeds max, early drop evicts the non-ASSURED entries of one bucket', () => {
  const { ct, logs } = makeCt({ nf_conntrack_max: 64, nf_conntrack_buckets: 16 });
  for (let i = 0; i < 64; i++) pass(ct, flow(i), 0);
  assert.equal(ct.count, 64);
  // one more: early drop must evict every unreplied entry of the first non-empty bucket
  const x = pass(ct, flow(1000), 1);
  assert.equal(x.ctinfo, IP_CT_NEW);
  assert.ok(ct.stats.early_drop >= 1);
  assert.ok(ct.count <= 64);
  assert.equal(ct.stats.drop, 0);
  assert.equal(logs.length, 0);
  // many more: the count never exceeds the max
  for (let i = 2000; i < 2300; i++) {
    pass(ct, flow(i), 2);
    assert.ok(ct.count <= 64);
  }
});

test('ASSURED entries survive; when only ASSURED entries are left the packet is dropped and logged (rate-limited)', () => {
  const { ct, logs } = makeCt({ nf_conntrack_max: 64, nf_conntrack_buckets: 16 });
  for (let i = 0; i < 64; i++) {
    pass(ct, flow(i), 0);
    pass(ct, flow(i, 1), 100);
    pass(ct, flow(i), 2500); // > 2 s after creation with a reply: ASSURED
  }
  const assured = [...ct.entries()];
  assert.equal(assured.length, 64);
  for (const e of assured) assert.ok(ct.status(e) & IPS_ASSURED);
  const x = pass(ct, flow(5000), 3000);
  assert.equal(x.queue, NF_DROP);
  assert.equal(x.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.drop, 1);
  assert.equal(ct.stats.early_drop, 0);
  assert.equal(ct.count, 64);
  for (const e of assured) assert.ok(ct.status(e) & IPS_ASSURED, 'all survive');
  assert.deepEqual(
    logs.map((l) => l.msg),
    [TABLE_FULL_MSG],
  );
  // burst of 10 per 5 s window, then suppressed
  for (let i = 1; i < 25; i++) pass(ct, flow(5000 + i), 3000 + i);
  assert.equal(logs.filter((l) => l.msg === TABLE_FULL_MSG).length, 10);
  assert.equal(ct.stats.drop, 25);
  // next window: the suppressed count is reported first
  pass(ct, flow(6000), 9000);
  assert.equal(logs[10].msg, 'net_ratelimit: 15 callbacks suppressed');
  assert.equal(logs[11].msg, TABLE_FULL_MSG);
  assert.equal(logs[10].level, 'warn');
  // an established flow is never refused
  const est = pass(ct, flow(3), 9001);
  assert.ok(assured.includes(est.entry));
  assert.equal(est.ctinfo, 0 /* IP_CT_ESTABLISHED */);
  assert.notEqual(est.queue, NF_DROP);
});

test('early drop only evicts in the first bucket with victims, reaping expired ones without counting them', () => {
  // one bucket: all entries share it
  const { ct } = makeCt({ nf_conntrack_max: 8, nf_conntrack_buckets: 1 });
  for (let i = 0; i < 4; i++) {
    pass(ct, flow(i), 0);
    pass(ct, flow(i, 1), 10);
    pass(ct, flow(i), 2500); // ASSURED
  }
  for (let i = 4; i < 8; i++) pass(ct, flow(i), 2600);
  assert.equal(ct.count, 8);
  pass(ct, flow(100), 2700);
  assert.equal(ct.stats.early_drop, 4, 'every non-ASSURED entry of the bucket');
  assert.equal(ct.count, 5);
});

test('GC-assisted early drop after a failure evicts non-ASSURED entries while the table is >= 95% full', () => {
  const { ct } = makeCt({ nf_conntrack_max: 200, nf_conntrack_buckets: 256 });
  for (let i = 0; i < 190; i++) {
    pass(ct, flow(i), 0);
    pass(ct, flow(i, 1), 10);
    pass(ct, flow(i), 2500);
  }
  for (let i = 190; i < 200; i++) pass(ct, flow(i), 2600);
  assert.equal(ct.count, 200);
  // new flows until one meets only ASSURED entries in its 8 buckets (early drop fails)
  let failed = false;
  for (let i = 1000; i < 3000 && !failed; i++) {
    const before = ct.stats.drop;
    pass(ct, flow(i), 2700);
    failed = ct.stats.drop > before;
  }
  assert.ok(failed, 'some new flow found no victim');
  const unreplied = () => [...ct.entries()].filter((e) => (ct.status(e) & IPS_ASSURED) === 0).length;
  assert.ok(unreplied() > 0);
  assert.ok(ct.count >= 190);
  ct.gc(2800, 100_000);
  assert.equal(unreplied(), 0, 'GC evicted the non-ASSURED entries');
  assert.equal(ct.count, 190, 'ASSURED entries stay');
});

test('changing nf_conntrack_buckets rehashes: every entry is still found', () => {
  // 64 buckets to start with: 600 nodes in 16 buckets (mean chain 37.5) hit the confirm-time
  // chain limit (50..79) in about 2 % of random hash keys, and that insert failed the test
  const { ct } = makeCt({ nf_conntrack_buckets: 64, nf_conntrack_max: 0 });
  const ids: number[] = [];
  for (let i = 0; i < 300; i++) ids.push(pass(ct, flow(i), 0).entry);
  assert.ok(!ids.includes(-1), 'every flow inserted');
  ct.setTunable('nf_conntrack_buckets', 4096);
  assert.equal(ct.table.nbuckets, 4096);
  for (let i = 0; i < 300; i++) {
    assert.equal(pass(ct, flow(i), 1).entry, ids[i]);
    assert.equal(pass(ct, flow(i, 1), 1).entry, ids[i]);
  }
  ct.setTunable('nf_conntrack_buckets', 3);
  for (let i = 0; i < 300; i++) assert.equal(pass(ct, flow(i, 1), 2).entry, ids[i]);
  assert.equal([...ct.entries()].length, 300);
  assert.throws(() => ct.setTunable('nf_conntrack_count', 5));
});

test('shrinking nf_conntrack_max evicts nothing at once; new flows then need early drop', () => {
  const { ct } = makeCt({ nf_conntrack_max: 100, nf_conntrack_buckets: 64 });
  for (let i = 0; i < 100; i++) pass(ct, flow(i), 0);
  ct.setTunable('nf_conntrack_max', 10);
  assert.equal(ct.count, 100);
  pass(ct, flow(500), 1);
  assert.ok(ct.stats.early_drop > 0 || ct.stats.drop > 0);
});

test('capacity is reserved at nf_conntrack_max up front; unlimited (0) grows by doubling', () => {
  const { ct } = makeCt({ nf_conntrack_max: 3000, nf_conntrack_buckets: 1024 });
  assert.equal(ct.table.capacity, 3000);
  const rec = ct.table.rec;
  for (let i = 0; i < 2500; i++) pass(ct, flow(i), 0);
  assert.equal(ct.count, 2500);
  assert.equal(ct.table.capacity, 3000);
  assert.equal(ct.table.rec, rec, 'no copy while filling up');
  // raising the max reserves the new size at once
  ct.setTunable('nf_conntrack_max', 5000);
  assert.equal(ct.table.capacity, 5000);
  for (let i = 0; i < 2500; i++) assert.ok(ct.lookup(tupleOf(flow(i)), 1) >= 0);
  const u = makeCt({ nf_conntrack_max: 0, nf_conntrack_buckets: 1024 }).ct;
  assert.equal(u.table.capacity, 1024);
  for (let i = 0; i < 2500; i++) pass(u, flow(i), 0);
  assert.equal(u.table.capacity, 4096);
  for (let i = 0; i < 2500; i++) assert.ok(u.lookup(tupleOf(flow(i)), 1) >= 0);
  assert.deepEqual(checkConntrack(u), []);
});

test('no memory to grow: new flows are dropped as for a full table, nothing breaks, growth resumes later', () => {
  const { ct, logs } = makeCt({ nf_conntrack_max: 0, nf_conntrack_buckets: 1024 });
  const resize = ct.table.onResize;
  let noMemory = true;
  // what V8 throws when an ArrayBuffer cannot be allocated, thrown by the trackers' resize
  ct.table.onResize = (cap) => {
    if (noMemory) throw new RangeError('Array buffer allocation failed');
    resize(cap);
  };
  const rec = ct.table.rec;
  for (let i = 0; i < 1024; i++) assert.equal(pass(ct, flow(i), 0).ctinfo, IP_CT_NEW);
  const r = pass(ct, flow(5000), 0);
  assert.equal(r.queue, NF_DROP, 'the packet of a flow the table cannot hold is dropped');
  assert.equal(ct.count, 1024);
  assert.equal(ct.table.capacity, 1024);
  assert.equal(ct.table.rec, rec, 'the table is unchanged');
  assert.ok(logs.some((l) => l.msg === TABLE_FULL_MSG));
  ct.setTunable('nf_conntrack_max', 100_000);
  assert.ok(logs.some((l) => /nf_conntrack_max 100000: not enough memory to reserve the table now/.test(l.msg)));
  assert.equal(ct.table.capacity, 1024);
  for (let i = 0; i < 1024; i++) assert.ok(ct.lookup(tupleOf(flow(i)), 1) >= 0);
  assert.deepEqual(checkConntrack(ct), []);
  noMemory = false;
  assert.equal(pass(ct, flow(5000), 0).ctinfo, IP_CT_NEW, 'memory again: the table grows');
  assert.ok(ct.table.capacity > 1024);
  assert.deepEqual(checkConntrack(ct), []);
  // any other error is a bug and is not swallowed
  ct.table.onResize = () => {
    throw new TypeError('bug');
  };
  assert.throws(() => ct.setTunable('nf_conntrack_max', 10_000_000), TypeError);
});

test('reserved rows are never written before use (no fill: the kernel commits pages on first touch)', () => {
  const { ct } = makeCt({ nf_conntrack_max: 4096, nf_conntrack_buckets: 512 });
  for (let i = 0; i < 100; i++) pass(ct, flow(i), 0);
  for (let i = 0; i < 50; i++) ct.kill(pass(ct, flow(i), 1).entry);
  const tb = ct.table;
  const hw = tb.highWater;
  assert.equal(hw, 100);
  const untouched = (a: ArrayLike<number>, from: number, name: string) => {
    for (let i = from; i < a.length; i++) if (a[i] !== 0) assert.fail(`${name}[${i}] = ${a[i]} beyond the rows in use`);
  };
  untouched(tb.rec, hw * REC_WORDS, 'rec');
  untouched(tb.created, hw, 'created');
  untouched(tb.mark, hw, 'mark');
  untouched(tb.gen, hw, 'gen');
  untouched(tb.flags, hw, 'flags');
  untouched(tb.helper, hw, 'helper');
  untouched(tb.masterHelper, hw, 'masterHelper');
  // the whole buffer behind the records too (the alignment pad included)
  untouched(new Uint8Array(tb.rec.buffer), tb.rec.byteOffset + hw * REC_WORDS * 4, 'record buffer');
  assert.deepEqual(checkConntrack(ct), []);
});

test('no stored hashes: unlink and rehash find nodes by their tuples across colliding chains', () => {
  // 2 buckets: every chain is long and holds both directions of many entries
  const { ct } = makeCt({ nf_conntrack_buckets: 2, nf_conntrack_max: 0 });
  const ids: number[] = [];
  for (let i = 0; i < 40; i++) ids.push(pass(ct, flow(i), 0).entry);
  assert.ok(!ids.includes(-1));
  assert.deepEqual(checkConntrack(ct), []);
  // remove every third entry: from the head, the middle and the tail of chains
  for (let i = 0; i < 40; i += 3) ct.kill(ids[i]);
  assert.deepEqual(checkConntrack(ct), []);
  for (const nb of [1, 7, 64, 2]) {
    ct.setTunable('nf_conntrack_buckets', nb);
    assert.deepEqual(checkConntrack(ct), [], `after rehash to ${nb}`);
    for (let i = 0; i < 40; i++) {
      const node = ct.lookup(tupleOf(flow(i)), 5);
      if (i % 3 === 0) assert.equal(node, -1, `flow ${i} removed`);
      else {
        assert.equal(node, 2 * ids[i], `flow ${i} ORIG, ${nb} buckets`);
        assert.equal(ct.lookup(tupleOf(flow(i, 1)), 5), 2 * ids[i] + 1, `flow ${i} REPLY, ${nb} buckets`);
      }
    }
  }
  // unlink the rest in reverse order (tails first), through destroy
  for (let i = 39; i >= 0; i--) if (i % 3 !== 0) ct.kill(ids[i]);
  assert.equal(ct.count, 0);
  assert.equal(ct.table.hashed, 0);
  for (let b = 0; b < ct.table.nbuckets; b++) assert.equal(ct.table.head(b), -1);
  assert.deepEqual(checkConntrack(ct), []);
});

test('master side table: only expected entries have one; it ends with the master or the row', () => {
  const { ct } = makeCt();
  const tb = ct.table;
  const m = pass(ct, flow(1), 0).entry;
  const e = pass(ct, flow(2), 0).entry;
  const other = pass(ct, flow(3), 0).entry;
  assert.equal(ct.master(e), -1);
  assert.equal(tb.masterCount, 0);
  tb.setMaster(e, m);
  assert.equal(ct.master(e), m);
  assert.equal(ct.master(other), -1);
  assert.equal(tb.masterCount, 1);
  // the master goes away and its row is reused: the link does not follow the row
  ct.kill(m);
  assert.equal(ct.master(e), -1);
  const m2 = pass(ct, flow(4), 0).entry;
  assert.equal(m2, m, 'row reused');
  assert.equal(ct.master(e), -1);
  // the expected entry goes away: its side entry too, and the reused row has no master
  tb.setMaster(e, m2);
  assert.equal(ct.master(e), m2);
  ct.kill(e);
  assert.equal(tb.masterCount, 0);
  const e2 = pass(ct, flow(5), 0).entry;
  assert.equal(e2, e);
  assert.equal(ct.master(e2), -1);
  assert.deepEqual(checkConntrack(ct), []);
});

test('created is kept in 32 bits: ages are exact across the 2^32 ms wrap, through save and restore', () => {
  const { ct } = makeCt();
  const t0 = 2 ** 32 - 1500; // the low 32 bits wrap 1.5 s after creation
  const e = pass(ct, flow(1), t0).entry;
  assert.equal(ct.table.createdAge(e, t0 + 2000), 2000);
  assert.equal(ct.exportEntry(e, t0 + 2000).ageMs, 2000);
  // UDP: "stream" (ASSURED) only once the entry is older than 2 s, also across the wrap
  pass(ct, flow(1, 1), t0 + 100);
  pass(ct, flow(1), t0 + 2000);
  assert.equal(ct.status(e) & IPS_ASSURED, 0, 'exactly 2 s old: not yet');
  pass(ct, flow(1), t0 + 2001);
  assert.ok(ct.status(e) & IPS_ASSURED, 'older than 2 s: stream');
  // restore: the saved age carries over (a 40-day-old entry restored at a small clock)
  const old = 40 * 86_400_000;
  const data = { ...ct.exportEntry(e, t0 + 3000), ageMs: old };
  const b = makeCt().ct;
  const e3 = b.importEntry(data, 10_000);
  assert.ok(e3 >= 0);
  assert.equal(b.exportEntry(e3, 10_250).ageMs, old + 250);
  assert.equal(b.table.createdAge(e3, 10_250), old + 250);
});

test('flush and deleteMatching remove confirmed entries', () => {
  const { ct } = makeCt();
  for (let i = 0; i < 10; i++) pass(ct, flow(i), 0);
  const n = ct.deleteMatching((e) => ct.tuplePort(e, 0, 0) < 1005);
  assert.equal(n, 5);
  assert.equal(ct.count, 5);
  assert.equal(ct.flush(), 5);
  assert.equal(ct.count, 0);
  assert.equal(pass(ct, flow(1), 1).ctinfo, IP_CT_NEW);
});

test('clash at confirmation: two NEW packets of one UDP flow in flight → the second joins the first (clash_resolve)', () => {
  const { ct } = makeCt();
  const { ctxOf } = require('./util');
  const a = ctxOf(flow(1));
  const b = ctxOf(flow(1));
  ct.in(a, 0);
  ct.in(b, 0);
  assert.equal(ct.count, 2);
  assert.notEqual(a.entry, b.entry);
  assert.equal(ct.confirm(a, 0), 1);
  assert.equal(ct.confirm(b, 0), 1);
  assert.equal(b.entry, a.entry);
  assert.equal(ct.stats.clash_resolve, 1);
  assert.equal(ct.count, 1);
});
