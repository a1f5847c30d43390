/**
 * Fail-closed across restarts and stops: a forbidden UDP flow (dropped by the rule file) runs
 * from the client through the gateway at 2000 datagrams/s while nfqwall reloads (SIGHUP and
 * `nfqwall reload`), stops on SIGTERM, starts again over the rules it left, is killed with
 * SIGKILL, restarts with --state, and restarts upgrade-style (SIGTERM, then at once a new run
 * with --state). The gateway's own FORWARD policy is ACCEPT, so any moment without nfqwall's
 * queue rule would let the flow through. The receiver counts what arrives: nothing, ever. An
 * allowed flow beside it shows the daemon passing traffic while it runs and nothing passing
 * while it is down (the kernel drops for a queue nobody reads). At the end `nfqwall uninstall`
 * removes the rules and the forbidden flow arrives: sender and receiver worked all along.
 * With --fail-open a SIGTERM removes the rules. One queue, and two worker threads. Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { nfq, ROOT, skip, startDaemon, tmpDir, until, watch, type Watched } from './ops-harness';

if (skip) process.stderr.write(`failclosed e2e skipped: ${skip}\n`);
const T = { timeout: 300_000 };
const FLOW = path.join(ROOT, 'test', 'helpers', 'udp-flow.js');
const FORBIDDEN = 7001;
const ALLOWED = 7000;
const PPS = 2000;

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp --dport ${FORBIDDEN} -j DROP
-A FORWARD -p udp --dport ${FORBIDDEN + 10} -j DROP
COMMIT
`;

const last = (out: string, re: RegExp) => {
  const all = [...out.matchAll(re)];
  return all.length ? Number(all[all.length - 1][1]) : 0;
};

describe('fail-closed across restarts and stops', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let rules: string;

  before(async () => {
    tmp = tmpDir('failclosed');
    rules = path.join(tmp, 'fw.rules');
    fs.writeFileSync(rules, RULES);
    lab = await Lab.create();
  });
  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function receiver(port: number) {
    const w = watch(lab.spawn('srv', [process.execPath, FLOW, 'count', A.srv4, String(port)], { cwd: ROOT }));
    await w.waitFor(/^READY$/m, 'out');
    return () => last(w.out, /^COUNT (\d+)$/gm);
  }
  function sender(port: number, pps: number) {
    const w = watch(lab.spawn('cli', [process.execPath, FLOW, 'send', A.srv4, String(port), String(pps)], { cwd: ROOT }));
    return { w, sent: () => last(w.out, /^SENT (\d+)/gm), rate: () => last(w.out, /RATE (\d+)$/gm) };
  }
  const iptables = async () => (await lab.exec('gw', ['iptables', '-S'], { check: true })).stdout;

  for (const queues of [
    ['--queue', '51'],
    ['--queues', '53:54'],
  ]) {
    const chain = queues[0] === '--queue' ? `NFQWALL-q${queues[1]}` : `NFQWALL-q${queues[1].replace(':', '-')}`;
    test(`${queues.join(' ')}: start, reload, SIGTERM, restart, kill -9, restart with --state, upgrade restart: no forbidden packet arrives`, T, async () => {
      const ctl = path.join(tmp, `ctl-${queues[1]}.sock`);
      const state = path.join(tmp, `ct-${queues[1]}.state`);
      const args = ['--rules', rules, ...queues, '--control', ctl, '--state', state, '--state-interval', '1'];
      const forbidden = await receiver(FORBIDDEN + (queues[0] === '--queue' ? 0 : 10));
      const allowed = await receiver(ALLOWED + (queues[0] === '--queue' ? 0 : 10));
      let d: Watched = await startDaemon(lab, args);
      const bad = sender(FORBIDDEN + (queues[0] === '--queue' ? 0 : 10), PPS);
      const good = sender(ALLOWED + (queues[0] === '--queue' ? 0 : 10), 200);
      /** waits until the forbidden flow's sender has sent n more datagrams */
      const sendMore = (n: number, what: string) => {
        const target = bad.sent() + n;
        return until(async () => bad.sent() >= target, `${n} more forbidden datagrams sent (${what})`, 2400);
      };
      const passes = async (what: string) => {
        const n = allowed();
        await until(async () => allowed() > n + 50, `the allowed flow passes (${what})`, 2400);
        assert.equal(forbidden(), 0, `${what}: no forbidden datagram arrived`);
      };
      /** down: after the last in-flight verdicts, nothing of the allowed flow arrives either */
      const closed = async (what: string) => {
        await sendMore(1000, what);
        const n = allowed();
        await sendMore(2000, what);
        assert.equal(allowed(), n, `${what}: the gateway is closed while nfqwall is down`);
        assert.equal(forbidden(), 0, `${what}: no forbidden datagram arrived`);
        assert.match(await iptables(), new RegExp(`-A FORWARD -j ${chain}\\b`), `${what}: the queue rules stay`);
      };

      await passes('start');
      const busy = await nfq(lab, ['uninstall', ...queues]);
      assert.equal(busy.code, 1, 'uninstall while the daemon reads the queue is refused');
      assert.match(busy.stderr, new RegExp(`a daemon is still reading queue ${queues[1].split(':')[0]} by pid ${d.child.pid}\\b.*or use --force`));
      assert.match(await iptables(), new RegExp(`-A FORWARD -j ${chain}\\b`), 'refused: the rules stay');
      process.kill(d.child.pid!, 'SIGHUP');
      await d.waitFor(/"msg":"rules reloaded"/);
      assert.equal((await nfq(lab, ['reload', '--control', ctl])).code, 0);
      await passes('reload');

      await lab.kill(d.child, 'SIGTERM');
      assert.equal(await d.exited, 0, d.err);
      assert.match(d.err, /iptables rules kept \(fail-closed\)/);
      await closed('after SIGTERM');

      d = await startDaemon(lab, args);
      assert.match(d.err, /removed stale nfqwall rules/);
      await passes('restart over the rules a stop left');

      await lab.kill(d.child, 'SIGKILL');
      await closed('after kill -9');
      d = await startDaemon(lab, args);
      assert.match(d.err, /"msg":"state restored"/);
      await passes('restart with --state after kill -9');

      // upgrade-style: stop, and start the next run at once
      await lab.kill(d.child, 'SIGTERM');
      assert.equal(await d.exited, 0, d.err);
      d = await startDaemon(lab, args);
      assert.match(d.err, /"msg":"state restored"/);
      await passes('upgrade-style restart with --state');
      const ipt = await iptables();
      assert.equal(ipt.match(new RegExp(`-A FORWARD -j ${chain}\\b`, 'g'))?.length, 1, ipt);

      await lab.kill(d.child, 'SIGTERM');
      assert.equal(await d.exited, 0, d.err);
      await closed('after the last SIGTERM');
      const rate = bad.rate();
      process.stderr.write(`failclosed ${queues.join(' ')}: forbidden flow ${bad.sent()} datagrams at ${rate}/s, none arrived\n`);

      // removing the rules is an explicit act; then the flow (still running) arrives
      const un = await nfq(lab, ['uninstall', ...queues]);
      assert.equal(un.code, 0, un.stderr);
      assert.doesNotMatch(await iptables(), new RegExp(chain));
      assert.doesNotMatch((await lab.exec('gw', ['iptables', '-t', 'raw', '-S'], { check: true })).stdout, new RegExp(chain));
      await until(async () => forbidden() > 0, 'the forbidden flow arrives once the rules are removed', 2400);
      assert.equal((await nfq(lab, ['uninstall', ...queues])).code, 0, 'uninstall with nothing installed');
      await lab.kill(bad.w.child);
      await lab.kill(good.w.child);
    });
  }

  test('--fail-open: SIGTERM removes the rules (the gateway is as without nfqwall)', T, async () => {
    const ctl = path.join(tmp, 'ctl-open.sock');
    const d = await startDaemon(lab, ['--rules', rules, '--queue', '55', '--control', ctl, '--fail-open']);
    assert.match(await iptables(), /-A NFQWALL-q55 -j NFQUEUE --queue-num 55 --queue-bypass/);
    assert.equal((await nfq(lab, ['uninstall', '--queue', '55'])).code, 1, 'refused while the daemon runs');
    const forced = await nfq(lab, ['uninstall', '--queue', '55', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.doesNotMatch(await iptables(), /NFQWALL-q55/, '--force removed them under the running daemon');
    await lab.kill(d.child, 'SIGTERM');
    assert.equal(await d.exited, 0, d.err);
    assert.doesNotMatch(await iptables(), /NFQWALL-q55/);
  });
});
