import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SourceCounter } from '../../../src/conntrack/persource';

/** xorshift32: a reproducible operation sequence */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

test('per-source counter: growth moves sources over incrementally; counts stay exact during the move', () => {
  const sc = new SourceCounter(0x01234567, 0x89abcdef, 16);
  const internals = sc as unknown as { oldCap: number; cap: number };
  const model = new Map<number, number>();
  const addr = new Uint32Array(4);
  const r = rng(7);
  let sawMigration = 0;
  for (let step = 0; step < 20_000; step++) {
    // mostly inserts of up to 3000 sources, with removals mixed in (some while a growth is pending)
    const a = r() % 3000;
    addr[0] = (0xc6120000 | a) >>> 0;
    const have = model.get(a) ?? 0;
    if (have > 0 && r() % 3 === 0) {
      sc.dec(4, addr, 0);
      if (have === 1) model.delete(a);
      else model.set(a, have - 1);
    } else {
      assert.equal(sc.inc(4, addr, 0), have + 1);
      model.set(a, have + 1);
    }
    if (internals.oldCap !== 0) sawMigration++;
    if (step % 97 === 0) {
      assert.equal(sc.size, model.size, `size at step ${step}`);
      for (let x = 0; x < 3000; x++) {
        addr[0] = (0xc6120000 | x) >>> 0;
        if (sc.get(4, addr, 0) !== (model.get(x) ?? 0)) assert.fail(`source ${x} at step ${step}: ${sc.get(4, addr, 0)} != ${model.get(x) ?? 0}`);
      }
    }
  }
  assert.ok(sawMigration > 0, 'some operations ran while a growth was pending');
  assert.ok(internals.cap >= 2 * model.size);
  // everything removed: empty in both tables
  for (const [a, n] of [...model]) {
    addr[0] = (0xc6120000 | a) >>> 0;
    for (let i = 0; i < n; i++) sc.dec(4, addr, 0);
  }
  assert.equal(sc.size, 0);
});

test('per-source counter: a dec of an unknown source changes nothing, also while growing', () => {
  const sc = new SourceCounter(1, 2, 16);
  const addr = new Uint32Array(4);
  for (let i = 0; i < 9; i++) {
    addr[0] = i + 1;
    sc.inc(4, addr, 0); // the 9th crosses half of 16 slots: growth pending
  }
  assert.notEqual((sc as unknown as { oldCap: number }).oldCap, 0);
  addr[0] = 999;
  sc.dec(4, addr, 0);
  assert.equal(sc.size, 9);
  for (let i = 0; i < 9; i++) {
    addr[0] = i + 1;
    assert.equal(sc.get(4, addr, 0), 1);
  }
});
