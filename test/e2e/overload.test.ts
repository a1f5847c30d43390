/**
 * Queue overload through `nfqwall run --rules` (issue #9): a tiny queue (--queue-maxlen 16,
 * --rcvbuf 4096, --batch 4) flooded with UDP far beyond what it holds. The overflow is
 * counted (nfqwall_queue_enobufs_total, and the kernel's queue_dropped in
 * nfqwall_queue_full_dropped_total) and logged ("queue overflow (ENOBUFS)"), the daemon
 * stays up, and once the flood is over it passes traffic again and the queue drains.
 * Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { kernelQueue, ROOT, scrape, skip, startDaemon, talker, TCP_TOOL, tmpDir, until, watch } from './ops-harness';

if (skip) process.stderr.write(`overload e2e skipped: ${skip}\n`);
const T = { timeout: 300_000 };
const QUEUE = 52;
const METRICS = 9482;
const UDP = path.join(ROOT, 'test', 'helpers', 'udp.js');

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -p udp --dport 5300 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

describe('queue overload', { skip }, () => {
  let lab: Lab;
  let tmp: string;

  before(async () => {
    tmp = tmpDir('overload');
    fs.writeFileSync(path.join(tmp, 'fw.rules'), RULES);
    lab = await Lab.create();
    const u = watch(lab.spawn('srv', [process.execPath, UDP, 'server', A.srv4, '5300'], { cwd: ROOT }));
    await u.waitFor(/READY/, 'out');
    const e = watch(lab.spawn('srv', [process.execPath, TCP_TOOL, 'echo', A.srv4, '6100'], { cwd: ROOT }));
    await e.waitFor(/^READY$/m, 'out');
  });
  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a tiny queue flooded beyond capacity: ENOBUFS counted and logged, the daemon recovers when the load drops', T, async () => {
    const d = await startDaemon(lab, [
      '--rules',
      path.join(tmp, 'fw.rules'),
      '--control',
      path.join(tmp, 'ctl.sock'),
      '--queue',
      String(QUEUE),
      '--queue-maxlen',
      '16',
      '--rcvbuf',
      '4096',
      '--batch',
      '4',
      '--metrics',
      `127.0.0.1:${METRICS}`,
    ]);
    const t = await talker(lab, 6100);
    assert.equal(await t.roundTrip(), true, 'echo before the flood');
    const m0 = await scrape(lab, METRICS);
    assert.equal(m0.val(new RegExp(`^nfqwall_queue_enobufs_total\\{queue="${QUEUE}"\\} (\\d+)$`, 'm')), 0);

    const f = await lab.exec('cli', [process.execPath, UDP, 'flood', A.srv4, '5300', '30000', '1000'], { cwd: ROOT });
    assert.equal(f.code, 0, f.stderr);
    assert.equal(d.child.exitCode, null, 'the daemon survived the flood');

    // logged (the counters are checked once a second) and counted
    await d.waitFor(/"msg":"queue overflow \(ENOBUFS\): packets were dropped before reaching nfqwall"/);
    // what was logged before the scrape (the counter only grows: the metric read after it is at least that)
    const logged = [...d.err.matchAll(/"enobufs":(\d+)/g)].map((x) => Number(x[1]));
    const m = await scrape(lab, METRICS);
    const enobufs = m.val(new RegExp(`^nfqwall_queue_enobufs_total\\{queue="${QUEUE}"\\} (\\d+)$`, 'm'));
    const full = m.val(new RegExp(`^nfqwall_queue_full_dropped_total\\{queue="${QUEUE}"\\} (\\d+)$`, 'm'));
    const userDropped = m.val(new RegExp(`^nfqwall_queue_user_dropped_total\\{queue="${QUEUE}"\\} (\\d+)$`, 'm'));
    const got = m.val(new RegExp(`^nfqwall_queue_packets_total\\{queue="${QUEUE}"\\} (\\d+)$`, 'm'));
    assert.ok(enobufs > 0, `ENOBUFS counted: ${enobufs}`);
    assert.ok(logged.length > 0 && logged[logged.length - 1] <= enobufs, `logged ${logged.join(',')} vs metric ${enobufs}`);
    process.stderr.write(`# overload: 30000 datagrams flooded; received ${got}, ENOBUFS ${enobufs}, kernel user_dropped ${userDropped}, queue full ${full}\n`);

    // recovery: the established connection and new flows pass again, the queue drains
    assert.equal(await t.roundTrip(), true, 'echo after the flood');
    const c = await lab.exec('cli', [process.execPath, UDP, 'client', A.srv4, '5300', '10', '100'], { cwd: ROOT });
    assert.deepEqual(JSON.parse(c.stdout), { sent: 10, received: 10 });
    const p = await lab.exec('cli', ['ping', '-c', '2', '-i', '0.3', A.srv4]);
    assert.equal(p.code, 0, 'ping after the flood');
    await until(async () => (await kernelQueue(lab, QUEUE))?.qlen === 0, 'the kernel queue drained');
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
  });
});
