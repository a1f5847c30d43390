import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundQueuesError, main, type UninstallDeps } from '../../../src/cli/uninstall';

const q = (queue: number, portid: number) => ({ queue, portid, qlen: 0, copyMode: 2, copyRange: 65531, queueDropped: 0, userDropped: 0, idSequence: 1 });

test('uninstall: a queue of the range still bound is named with the process reading it', () => {
  const deps: UninstallDeps = {
    kernelQueues: () => [q(3, 4242), q(7, -99), q(9, 5)],
    owner: (p) => (p === 4242 ? { pid: 4242, comm: 'node' } : {}),
  };
  assert.equal(boundQueuesError(0, 2, deps), null, 'none of 0..2 is bound');
  assert.equal(boundQueuesError(4, 6, deps), null);
  assert.match(boundQueuesError(3, 3, deps)!, /^a daemon is still reading queue 3 by pid 4242 \(node\): stop it first .* or use --force$/);
  assert.match(boundQueuesError(3, 8, deps)!, /queue 3 by pid 4242 \(node\), queue 7 by netlink port -99:/);
});

test('uninstall: refused with exit 1 while the queue is bound (iptables untouched)', async () => {
  const deps: UninstallDeps = { kernelQueues: () => [q(0, 77)], owner: () => ({ pid: 77 }) };
  const written: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (written.push(String(s)), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main([], deps), 1);
    assert.equal(await main(['--queues', '0:3'], deps), 1);
  } finally {
    process.stderr.write = orig;
  }
  assert.match(written.join(''), /nfqwall uninstall: a daemon is still reading queue 0 by pid 77: stop it first/);
});
