/**
 * Fuzzing the whole pipeline (parse → raw → conntrack → filter → confirm) through
 * Firewall.processBatch: real flows interleaved with garbage, small tables so early
 * drop / table full run, fake time so timeouts and GC run. No exception may escape,
 * every packet gets exactly one verdict (NF_ACCEPT or NF_DROP), and the table
 * checker (src/conntrack/check.ts) finds nothing. A failing batch is saved under
 * test/fixtures/fuzz-*.json; every saved fixture is replayed below.
 * The ≥ 10 M packet variant is test/stress/fuzz-pipeline.test.ts (npm run stress).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FuzzFailure, Rng, fuzz, makeFirewall, newBatch, replayFixture, runBatch, saveFixture, type Fixture, type FuzzConfig } from '../stress/fuzz-gen';
import { checkConntrack } from '../../src/conntrack/check';
import { Conntrack } from '../../src/conntrack/core';
import { T_PORTS, nodeLink, recBase } from '../../src/conntrack/layout';
import { defaultTunables } from '../../src/conntrack/sysctl';
import { makeCt, pass } from './conntrack/util';
import { ipv4, tcp, udp } from '../helpers/packets';

function run(cfg: FuzzConfig) {
  try {
    return fuzz(cfg);
  } catch (err) {
    if (err instanceof FuzzFailure) {
      const file = saveFixture(cfg, err);
      assert.fail(`${err.message}\n(saved as ${file})`);
    }
    throw err;
  }
}

const CONFIGS: FuzzConfig[] = [
  { seed: 1, packets: 100_000, rules: 'accept', max: 128, buckets: 128, checksum: 1, perSourceMax: 0, checkEvery: 8 },
  { seed: 2, packets: 60_000, rules: 'accept', max: 64, buckets: 16, checksum: 0, perSourceMax: 12, checkEvery: 8 },
  { seed: 3, packets: 80_000, rules: 'random', max: 96, buckets: 128, checksum: 0, perSourceMax: 0, checkEvery: 8 },
  { seed: 4, packets: 80_000, rules: 'gateway', max: 128, buckets: 1024, checksum: 1, perSourceMax: 0, checkEvery: 8 },
  { seed: 5, packets: 40_000, rules: 'gateway', max: 256, buckets: 8, checksum: 0, perSourceMax: 20, checkEvery: 4 },
];

for (const cfg of CONFIGS) {
  test(`fuzz pipeline: ${cfg.packets} packets, rules ${cfg.rules}, max ${cfg.max}, buckets ${cfg.buckets}, checksum ${cfg.checksum}, per-source ${cfg.perSourceMax}`, () => {
    const res = run(cfg);
    assert.equal(res.packets, cfg.packets);
    assert.equal(res.accepted + res.dropped, cfg.packets, 'one verdict per packet in the counters');
    // the interesting paths ran (otherwise the fuzzing proves little)
    assert.equal(res.maxCount, cfg.max, 'the table filled up');
    assert.ok(res.stats.early_drop > 0, 'early drop ran');
    if ((2 * cfg.max) / cfg.buckets > 50) assert.ok(res.stats.chaintoolong > 0, "chains longer than the kernel's limit refused");
    assert.ok(res.stats.invalid > 0 && res.stats.error > 0, 'INVALID and ICMP-error paths ran');
    assert.ok(res.assuredSeen > 0, 'real flows reached ASSURED');
    if (cfg.buckets >= cfg.max) {
      // few entries within early drop's 8 buckets: a table of ASSURED entries is really full
      assert.ok(res.stats.drop > 0, 'table-full drops happened');
      assert.ok(res.logs.tableFull > 0, 'table full was logged');
    }
    if (cfg.rules !== 'accept') assert.ok(res.stats.expect_create > 0, 'FTP expectations were created');
    if (cfg.perSourceMax > 0) assert.ok(res.stats.per_source_drop > 0, 'per-source limit hit');
  });
}

test('the batch pre-touch (prefetchBatch) changes nothing: same verdicts, counters and table as without it', () => {
  for (const base of [CONFIGS[0], CONFIGS[4]]) {
    const cfg = { ...base, packets: 20_000 };
    const off = run({ ...cfg, prefetchMinEntries: Infinity });
    const on = run({ ...cfg, prefetchMinEntries: 0 });
    assert.deepEqual(on, off);
  }
  // and with prefetchMinEntries 0 it does run, once per batch of more than one packet
  const r = new Rng(9);
  const { fw } = makeFirewall({ ...CONFIGS[0], prefetchMinEntries: 0 }, r);
  let calls = 0;
  const orig = fw.ct.prefetchBatch.bind(fw.ct);
  fw.ct.prefetchBatch = (hs, n) => {
    calls++;
    return orig(hs, n);
  };
  const batch = newBatch();
  const pk = (i: number) => ({
    bytes: ipv4({ src: `198.18.0.${i}`, dst: '198.19.0.1' }, udp({ sport: 1000 + i, dport: 53 })),
    hook: 2,
    family: 4,
    indev: 1,
    outdev: 2,
    flags: 0,
  });
  runBatch(fw, batch, [pk(1), pk(2), pk(3)], 1000);
  runBatch(fw, batch, [pk(1), pk(2), pk(3)], 1001);
  runBatch(fw, batch, [pk(4)], 1002);
  assert.equal(calls, 2);
  assert.equal(fw.ct.count, 4);
  assert.deepEqual(checkConntrack(fw.ct), []);
});

test('saved fuzz fixtures replay without exception or inconsistency', () => {
  const dir = path.join(__dirname, '../fixtures');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^fuzz-.*\.json$/.test(f)) : [];
  for (const f of files) {
    const fx = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Fixture;
    assert.doesNotThrow(() => replayFixture(fx), f);
  }
});

// ---- the checker itself must find broken tables (else the fuzz proves nothing)

function filled(): Conntrack {
  const { ct } = makeCt({ nf_conntrack_max: 64, nf_conntrack_buckets: 8, per_source_max: 1000 });
  for (let i = 0; i < 20; i++) pass(ct, ipv4({ src: `198.18.0.${i + 1}` }, udp({ sport: 1000 + i, dport: 53 })), 1000);
  pass(ct, ipv4({}, tcp({ flags: 'S', sport: 5555 })), 1000);
  assert.deepEqual(checkConntrack(ct), []);
  return ct;
}

test('checker: a consistent table passes; each kind of corruption is reported', () => {
  const hits = (ct: Conntrack, re: RegExp) => {
    const p = checkConntrack(ct);
    assert.ok(
      p.some((m) => re.test(m)),
      `expected ${re} in ${JSON.stringify(p)}`,
    );
  };
  // count drift
  let ct = filled();
  ct.tun.nf_conntrack_count++;
  hits(ct, /nf_conntrack_count/);
  // an entry unlinked from one direction's chain
  ct = filled();
  {
    const tb = ct.table;
    const e = 3;
    const n = 2 * e + 1;
    const b = tb.bucketOf(tb.nodeHash(n));
    if (tb.head(b) === n) tb.heads[b] = tb.rec[nodeLink(n)];
    else for (let p = tb.head(b); p >= 0; p = tb.next(p)) if (tb.next(p) === n) tb.rec[nodeLink(p)] = tb.rec[nodeLink(n)];
    hits(ct, /entry 3 direction 1 reached 0 times/);
  }
  // a cycle
  ct = filled();
  {
    const tb = ct.table;
    let b = 0;
    while (tb.head(b) < 0) b++;
    let n = tb.head(b);
    while (tb.next(n) >= 0) n = tb.next(n);
    tb.rec[nodeLink(n)] = tb.heads[b];
    hits(ct, /more than once|cycle/);
  }
  // a tuple changed in place: its node now sits in another tuple's bucket
  ct = filled();
  {
    const tb = ct.table;
    const b0 = tb.bucketOf(tb.nodeHash(2 * 5));
    for (let bit = 0; bit < 32 && tb.bucketOf(tb.nodeHash(2 * 5)) === b0; bit++) tb.rec[recBase(5) + T_PORTS] ^= 1 << bit;
    hits(ct, /hashes to bucket/);
  }
  // a row both free and used
  ct = filled();
  {
    const tb = ct.table as unknown as { freeHead: number; rec: Uint32Array };
    tb.rec[nodeLink(2 * 4)] = tb.freeHead + 1;
    tb.freeHead = 4;
    hits(ct, /both free and in use/);
  }
  // per-source counter drift
  ct = filled();
  (ct as unknown as { perSource: { inc(f: number, a: Uint32Array, o: number): number } }).perSource.inc(4, new Uint32Array([0xc6120001]), 0);
  hits(ct, /per-source count/);
  // over max
  ct = filled();
  ct.tun.nf_conntrack_max = 5;
  hits(ct, /> nf_conntrack_max/);
  assert.deepEqual(checkConntrack(ct, { allowOverMax: true }), []);
  // an unconfirmed entry left behind
  ct = new Conntrack(Object.assign(defaultTunables(1 << 30), { nf_conntrack_max: 16, nf_conntrack_buckets: 4 }));
  pass(ct, ipv4({}, udp()), 1000, { drop: false });
  const e = ct.table.alloc();
  ct.tun.nf_conntrack_count = ct.table.count;
  const tb = ct.table;
  tb.rec[recBase(e)] = (4 << 8) | 17;
  hits(ct, /unconfirmed entries left/);
  assert.deepEqual(checkConntrack(ct, { quiescent: false }), []);
  // sources are not counted while nfqwall.per_source_max has never been > 0: the counter stays empty
  assert.equal(ct.countsSources, false);
  (ct as unknown as { perSource: { inc(f: number, a: Uint32Array, o: number): number } }).perSource.inc(4, new Uint32Array([0xc6120001]), 0);
  hits(ct, /while sources are not counted/);
});
