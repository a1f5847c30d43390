/**
 * What the worker threads share: the global nf_conntrack_max count (Atomics over a
 * SharedArrayBuffer), the store of restored entries claimed by the first table whose flow
 * shows up, and stall detection from the kernel's nfnetlink_queue counters.
 */
import { describe, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import assert from 'node:assert/strict';
import { makeCt, pass } from '../conntrack/util';
import { ipv4, udp } from '../../helpers/packets';
import { Conntrack, TABLE_FULL_MSG } from '../../../src/conntrack/core';
import { origTuple } from '../../../src/conntrack/layout';
import { createHelpers } from '../../../src/conntrack/helpers/registry';
import { ParkedEntries } from '../../../src/daemon/parked';
import { RestoreStore } from '../../../src/daemon/restore-store';
import { StallDetector } from '../../../src/daemon/stall';
import { compileFilter } from '../../../src/daemon/control';
import type { RestorePayload } from '../../../src/daemon/worker';
import { tunables } from '../conntrack/util';
import type { KernelQueueInfo } from '../../../src/queue/queue';

const flow = (i: number, sport = 40000) => ipv4({ src: `198.18.1.${i}`, dst: '198.19.2.1' }, udp({ sport, dport: 53, payload: 'q' }));
const reply = (i: number, sport = 40000) => ipv4({ src: '198.19.2.1', dst: `198.18.1.${i}` }, udp({ sport: 53, dport: sport, payload: 'a' }));

describe('nf_conntrack_max over several tables', () => {
  test('the sum of two tables is bounded; the table that needs room early-drops from itself', () => {
    const shared = new Int32Array(new SharedArrayBuffer(4));
    const a = makeCt({ nf_conntrack_max: 4 });
    const b = makeCt({ nf_conntrack_max: 4, nf_conntrack_buckets: 1 }); // one bucket: early drop looks at every entry
    a.ct.attachSharedCount(shared);
    b.ct.attachSharedCount(shared);
    for (let i = 1; i <= 3; i++) assert.equal(pass(a.ct, flow(i), 0).queue, 1);
    assert.equal(pass(b.ct, flow(10), 0).queue, 1);
    assert.equal(shared[0], 4);
    assert.equal(a.ct.globalCount(), 4);
    // b is full globally: its own entry (unassured) is the early-drop victim, the new one fits
    assert.equal(pass(b.ct, flow(11), 0).queue, 1);
    assert.equal(b.ct.stats.early_drop, 1);
    assert.equal(b.ct.count, 1);
    assert.equal(shared[0], 4);
    // a table with nothing to evict refuses when the others fill the limit
    const c = makeCt({ nf_conntrack_max: 4 });
    c.ct.attachSharedCount(shared);
    assert.equal(pass(c.ct, flow(20), 0).queue, 0, 'an empty table cannot evict: table full');
    assert.equal(c.ct.stats.drop, 1);
    assert.ok(c.logs.some((l) => l.msg === TABLE_FULL_MSG));
    assert.equal(shared[0], 4, 'a refused insert leaves the count as it was');
    // entries going away free room for every table
    a.ct.flush();
    assert.equal(shared[0], 1);
    assert.equal(pass(c.ct, flow(20), 0).queue, 1);
    assert.equal(shared[0], 2);
  });

  test('importEntry counts against the shared limit too', () => {
    const shared = new Int32Array(new SharedArrayBuffer(4));
    const a = makeCt({ nf_conntrack_max: 1 });
    a.ct.attachSharedCount(shared);
    pass(a.ct, flow(1), 0);
    const data = a.ct.exportEntry([...a.ct.entries()][0], 0);
    const b = makeCt({ nf_conntrack_max: 1 });
    b.ct.attachSharedCount(shared);
    assert.equal(b.ct.importEntry(data, 0), -1);
    assert.equal(shared[0], 1);
  });
});

describe('restored entries claimed by the table that sees their flow', () => {
  function parkedWith(n: number, shared: Int32Array) {
    const src = new Conntrack(tunables(), { helpers: createHelpers() });
    for (let i = 1; i <= n; i++) {
      pass(src, flow(i), 0);
      pass(src, reply(i), 1);
    }
    // what restoreState would have filled: a table of this thread
    const parked = new Conntrack(tunables(), { helpers: createHelpers() });
    for (const e of src.entries()) parked.importEntry(src.exportEntry(e, 1), performance.now());
    return new ParkedEntries(parked, shared);
  }

  test('the store finds a tuple in either direction; one claim wins', () => {
    const shared = new Int32Array(new SharedArrayBuffer(4));
    const p = parkedWith(3, shared);
    assert.equal(shared[0], 3);
    const s1 = RestoreStore.attach(p.store.buffers);
    const s2 = RestoreStore.attach(p.store.buffers);
    const key = new Uint32Array(10);
    const ct = new Conntrack(tunables());
    pass(ct, reply(2), 0); // an entry whose ORIG tuple is the reply direction of flow 2
    key.set(origTuple(ct.table.rec, 0));
    const i = s1.find(key);
    assert.ok(i >= 0, 'found by its reply tuple');
    const payload = JSON.parse(s1.payload(i)) as RestorePayload;
    assert.equal(payload.entry.tuple[1] >>> 0, 0xc6120102, 'ORIG source 198.18.1.2');
    assert.equal(s1.claim(i, 0), true);
    assert.equal(s2.claim(i, 1), false, 'the other worker cannot take it');
    assert.equal(s2.unclaimed(), 2);
    assert.equal(p.count(), 2, 'claimed entries are not the main thread’s any more');
  });

  test('a worker table imports on its first packet; listing, delete and save see only open ones', () => {
    const shared = new Int32Array(new SharedArrayBuffer(4));
    const p = parkedWith(3, shared);
    const w = makeCt({ nf_conntrack_max: 100 }).ct;
    w.attachSharedCount(shared);
    const store = RestoreStore.attach(p.store.buffers);
    const saved = new Uint32Array(10);
    w.claimer = (key, now) => {
      const i = store.find(key);
      if (i < 0 || !store.claim(i, 0)) return false;
      Atomics.sub(shared, 0, 1);
      saved.set(key);
      const d = JSON.parse(store.payload(i)) as RestorePayload;
      const e = w.importEntry(d.entry, now);
      key.set(saved);
      return e >= 0;
    };
    // a reply-direction packet of restored flow 1: ESTABLISHED at once (no new entry)
    const ctx = pass(w, reply(1), 2);
    assert.equal(ctx.queue, 1);
    assert.equal(w.count, 1);
    assert.equal(ctx.ctinfo, 3 /* IP_CT_ESTABLISHED_REPLY */);
    assert.equal(shared[0], 3, 'moved from the store to the table: counted once');
    assert.equal(p.count(), 2);
    assert.equal(p.select(compileFilter(p.ct, {})).length, 2);
    const gone = p.delete(p.select(compileFilter(p.ct, { src: '198.18.1.3' })));
    assert.equal(gone.size, 1);
    assert.equal(shared[0], 2);
    const saveNow = Date.now();
    const out = p.exportForSave(saveNow);
    assert.equal(out.lines.length, 1);
    assert.match(out.lines[0], /"tuple":\[1041,3323068674,/, 'the one left is flow 2 (198.18.1.2)');
    // a deleted or claimed entry is not claimed again
    assert.equal(pass(w, reply(3), 3).ctinfo === 3, false);
  });

  test('unclaimed entries run out at their timeout and leave the count', () => {
    const shared = new Int32Array(new SharedArrayBuffer(4));
    const src = new Conntrack(tunables({ nf_conntrack_udp_timeout: 30 }));
    pass(src, flow(1), 0);
    const parked = new Conntrack(tunables());
    parked.importEntry({ ...src.exportEntry([...src.entries()][0], 0), timeoutMs: 20 }, performance.now());
    const p = new ParkedEntries(parked, shared);
    assert.equal(shared[0], 1);
    const until = Date.now() + 50;
    while (Date.now() < until) {
      /* let the 1 ms run out */
    }
    assert.equal(p.count(), 0);
    assert.equal(p.sweep(), 1);
    assert.equal(shared[0], 0);
  });
});

describe('queue stall detection', () => {
  const line = (qlen: number, idSeq: number, portid = 77): KernelQueueInfo => ({
    queue: 3,
    portid,
    qlen,
    copyMode: 2,
    copyRange: 65535,
    queueDropped: 0,
    userDropped: 0,
    idSequence: idSeq,
  });

  test('packets waiting and none received for N checks: stalled; idle or moving: fine', () => {
    let k: KernelQueueInfo[] = [line(0, 10)];
    const d = new StallDetector(3, 3, () => k);
    assert.equal(d.check({ received: 5, portid: 77 }), 'ok');
    // idle: nothing waiting, nothing received
    for (let i = 0; i < 5; i++) assert.equal(d.check({ received: 5, portid: 77 }), 'ok');
    // busy and receiving
    k = [line(40, 100)];
    for (let i = 0; i < 5; i++) assert.equal(d.check({ received: 6 + i, portid: 77 }), 'ok');
    // waiting, nothing received
    assert.equal(d.check({ received: 10, portid: 77 }), 'ok');
    k = [line(60, 130)];
    assert.equal(d.check({ received: 10, portid: 77 }), 'ok');
    assert.equal(d.check({ received: 10, portid: 77 }), 'stalled');
    d.reset();
    assert.equal(d.check({ received: 0, portid: 77 }), 'ok');
  });

  test('our binding gone from the table (or another port id there): missing', () => {
    let k: KernelQueueInfo[] = [];
    const d = new StallDetector(3, 2, () => k);
    assert.equal(d.check({ received: 1, portid: 77 }), 'ok');
    assert.equal(d.check({ received: 1, portid: 77 }), 'missing');
    k = [line(0, 1, 99)];
    const d2 = new StallDetector(3, 2, () => k);
    d2.check({ received: 1, portid: 77 });
    assert.equal(d2.check({ received: 1, portid: 77 }), 'missing');
    assert.equal(new StallDetector(3, 0, () => []).check({ received: 0, portid: 1 }), 'ok', '0 = off');
  });
});
