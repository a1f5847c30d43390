/**
 * Stress variant of test/unit/fuzz-pipeline.test.ts: ≥ 10 million packets through
 * Firewall.processBatch over several configurations (npm run stress).
 * NFQWALL_FUZZ_PACKETS overrides the total; NFQWALL_FUZZ_SEED the base seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FuzzFailure, fuzz, saveFixture, type FuzzConfig } from './fuzz-gen';

const TOTAL = Number(process.env.NFQWALL_FUZZ_PACKETS ?? 10_500_000);
const SEED = Number(process.env.NFQWALL_FUZZ_SEED ?? Date.now() % 1_000_000);

const SHAPES: Omit<FuzzConfig, 'seed' | 'packets'>[] = [
  { rules: 'accept', max: 256, buckets: 256, checksum: 1, perSourceMax: 0, checkEvery: 64 },
  { rules: 'accept', max: 64, buckets: 16, checksum: 0, perSourceMax: 10, checkEvery: 64 },
  { rules: 'random', max: 128, buckets: 128, checksum: 0, perSourceMax: 0, checkEvery: 64 },
  { rules: 'gateway', max: 256, buckets: 2048, checksum: 1, perSourceMax: 0, checkEvery: 64 },
  { rules: 'gateway', max: 512, buckets: 8, checksum: 0, perSourceMax: 40, checkEvery: 64 },
];

let total = 0;
SHAPES.forEach((shape, i) => {
  const cfg: FuzzConfig = { ...shape, seed: SEED * 7 + i + 1, packets: Math.ceil(TOTAL / SHAPES.length) };
  test(`stress fuzz: ${cfg.packets} packets, seed ${cfg.seed}, rules ${cfg.rules}, max ${cfg.max}, buckets ${cfg.buckets}`, () => {
    let res;
    try {
      res = fuzz(cfg);
    } catch (err) {
      if (err instanceof FuzzFailure) assert.fail(`${err.message}\n(saved as ${saveFixture(cfg, err)})`);
      throw err;
    }
    total += res.packets;
    assert.equal(res.accepted + res.dropped, cfg.packets);
    // with few buckets the chain-length limit of confirm (50..79 nodes) caps the table below max
    if ((2 * cfg.max) / cfg.buckets <= 50) assert.equal(res.maxCount, cfg.max);
    else assert.ok(res.maxCount <= cfg.max && res.stats.chaintoolong > 0);
    // early drop runs only on a full table: when the chain-length limit kept the table below
    // max (8 buckets for 512 entries), there was nothing for it to do
    if (res.maxCount === cfg.max) assert.ok(res.stats.early_drop > 0, `early_drop ${res.stats.early_drop} with a full table`);
    else assert.equal(res.stats.early_drop, 0, 'no early drop below max');
    assert.ok(res.stats.invalid > 0);
    console.log(`# seed ${cfg.seed}: ${res.packets} packets, accepted ${res.accepted}, dropped ${res.dropped}, stats ${JSON.stringify(res.stats)}`);
  });
});

test('stress fuzz: total packets', () => {
  assert.ok(total >= TOTAL, `${total} < ${TOTAL}`);
});
