import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const isRoot = process.getuid?.() === 0;

test(
  'REJECT: one sender per thread, its ICMP rate limits outlive a reload (as the kernel keeps its per-host state)',
  { skip: !isRoot && 'needs root (unshare -n, raw sockets)' },
  () => {
    const r = spawnSync('unshare', ['-n', process.execPath, '--import', 'tsx', path.join(__dirname, 'reject-shared-run.ts')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      afterBurst: { host: number; global: number };
      afterReloads: { host: number; global: number };
      socketsOpened: number;
    };
    // 20 errors to one host: a burst of 6 is sent, 14 are held back
    assert.deepEqual(o.afterBurst, { host: 14, global: 0 });
    // ten reloads later the host's bucket is still empty: all ten held back
    assert.deepEqual(o.afterReloads, { host: 24, global: 0 });
    assert.ok(o.socketsOpened <= 1, `raw sockets opened: ${o.socketsOpened}`);
  },
);
