/**
 * ipsets across threads: a worker thread that adopts the main thread's set descriptors (as the
 * daemon's workers do) sees an element the main thread adds at once, and the main thread sees
 * what a -j SET rule compiled in the worker adds; counters are one per element for both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { runIpset } from '../../../../src/rules/sets/command';
import { ipsets } from '../../../../src/rules/sets/registry';

const WORKER = `
require('tsx/cjs');
const { parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const { ipsets } = require(${JSON.stringify(path.resolve(__dirname, '../../../../src/rules/sets/registry'))});
const u = require(${JSON.stringify(path.resolve(__dirname, '../util'))});
const p = require(${JSON.stringify(path.resolve(__dirname, '../../../helpers/packets'))});
ipsets().adopt(workerData.sets);
const { engine } = u.engineFor(u.forward('-m set --match-set bl src -j DROP', '-p tcp --dport 22 -j SET --add-set seen src', '-j ACCEPT'));
const pkt = (src, dport) => u.ctxFor(p.ipv4({ src, dst: '198.19.0.1' }, p.tcp({ sport: 40000, dport, flags: 'S' })));
parentPort.on('message', (m) => {
  if (m.sets) ipsets().adopt(m.sets);
  parentPort.postMessage(engine.evalFilter(pkt(m.src, m.dport), performance.now()));
});
`;

test('a worker thread matches the sets of the main thread, and its -j SET adds are seen by the main thread', async () => {
  assert.equal(runIpset(['create', 'bl', 'hash:ip', 'counters'], performance.now()).status, 0);
  assert.equal(runIpset(['create', 'seen', 'hash:ip', 'timeout', '60'], performance.now()).status, 0);
  const w = new Worker(WORKER, { eval: true, workerData: { sets: ipsets().descriptors() } });
  const ask = (m: object) =>
    new Promise<number>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.postMessage(m);
    });
  try {
    const DROP = 0;
    const ACCEPT = 1;
    assert.equal(await ask({ src: '198.18.0.9', dport: 80 }), ACCEPT);
    assert.equal(runIpset(['add', 'bl', '198.18.0.9'], performance.now()).status, 0);
    assert.equal(await ask({ src: '198.18.0.9', dport: 80 }), DROP, 'added in the main thread: dropped in the worker');
    assert.match(runIpset(['save', 'bl'], performance.now()).out[1], /^add bl 198.18.0.9 packets 1 bytes \d+$/, 'the worker counted it in the shared element');
    assert.equal(await ask({ src: '198.18.0.7', dport: 22 }), ACCEPT);
    assert.equal(runIpset(['test', 'seen', '198.18.0.7'], performance.now()).status, 0, 'the worker added it; the main thread sees it');
    assert.match(runIpset(['save', 'seen'], performance.now()).out[1], /^add seen 198.18.0.7 timeout (59|60)$/, 'its expiry on the shared clock');
    // a set created later reaches the worker by a new descriptor list (ipset.sync)
    assert.equal(runIpset(['create', 'late', 'hash:ip'], performance.now()).status, 0);
    assert.equal(runIpset(['swap', 'late', 'bl'], performance.now()).status, 0);
    assert.equal(await ask({ src: '198.18.0.9', dport: 80, sets: ipsets().descriptors() }), ACCEPT, 'bl swapped with the empty set');
  } finally {
    await w.terminate();
  }
});
