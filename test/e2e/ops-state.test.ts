/**
 * --state FILE across a restart: a long-lived TCP connection keeps flowing across SIGTERM +
 * restart under rules that admit only SYNs as NEW and otherwise only ESTABLISHED, with
 * nf_conntrack_tcp_loose=0 (no mid-stream pickup could hide a failed restore). The same
 * restart without the state file cuts the connection (the rules really depend on the
 * restored entry). A corrupt state file: logged, the daemon starts empty. Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { nfq, skip, startDaemon, tmpDir, until, waitListen, watch, type Watched } from './ops-harness';

if (skip) process.stderr.write(`ops-state e2e skipped: ${skip}\n`);
const T = { timeout: 240_000 };

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;

describe('state file across a restart', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let rules: string;
  let ctl: string;
  let state: string;

  before(async () => {
    tmp = tmpDir('state');
    rules = path.join(tmp, 'fw.rules');
    fs.writeFileSync(rules, RULES);
    ctl = path.join(tmp, 'ctl.sock');
    state = path.join(tmp, 'ct.state');
    lab = await Lab.create();
  });
  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const args = (withState: boolean) => [
    '--rules',
    rules,
    '--control',
    ctl,
    '--set',
    'net.netfilter.nf_conntrack_tcp_loose=0',
    ...(withState ? ['--state', state] : []),
  ];

  /**
   * A line-echo connection: srv echoes, cli sends numbered lines on demand through a FIFO.
   * Returns a function sending one line and waiting for its echo (false when it does not come back).
   */
  async function connection(port: number) {
    lab.spawn('srv', ['socat', `TCP-LISTEN:${port},bind=${A.srv4},reuseaddr`, 'PIPE']);
    await waitListen(lab, port);
    const fifo = path.join(tmp, `in-${port}`);
    await lab.exec('cli', ['mkfifo', fifo], { check: true });
    // the client holds the FIFO open for writing itself (exec 3<>) so it never sees EOF
    const client: ChildProcess = lab.spawn('cli', ['sh', '-c', `exec 3<>${fifo}; socat -T 600 - TCP:${A.srv4}:${port} <&3`]);
    const w = watch(client);
    let n = 0;
    return {
      w,
      async roundTrip(tries = 40): Promise<boolean> {
        const tag = `line-${port}-${++n}`;
        fs.appendFileSync(fifo, tag + '\n');
        for (let i = 0; i < tries; i++) {
          if (w.out.includes(tag)) return true;
          await new Promise((r) => setTimeout(r, 100));
        }
        return false;
      },
    };
  }

  test('an established TCP connection survives SIGTERM + restart with --state', T, async () => {
    let d: Watched = await startDaemon(lab, args(true));
    const c = await connection(7001);
    assert.equal(await c.roundTrip(), true, 'first round trip');
    const before = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--dport', '7001', '--control', ctl]);
    assert.match(before.stdout, /ESTABLISHED .*dport=7001 .*\[ASSURED\]/);
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
    assert.match(d.err, /"msg":"state saved"/);
    const saved = fs.readFileSync(state, 'utf8').split('\n');
    assert.match(saved[0], /^\{"format":"nfqwall-state","version":1,/);

    d = await startDaemon(lab, args(true));
    assert.match(d.err, /"restored":1,/);
    const restored = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--dport', '7001', '--control', ctl]);
    assert.match(restored.stdout, /ESTABLISHED .*dport=7001 .*\[ASSURED\]/);
    // the connection flows through the new daemon (retransmissions may be needed for what
    // was sent while no daemon ran: fail-closed dropped it)
    assert.equal(await c.roundTrip(200), true, 'round trip after the restart');
    assert.equal(await c.roundTrip(), true, 'and again');
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
  });

  test('without the state file the same restart cuts the connection (the rules need the entry)', T, async () => {
    let d = await startDaemon(lab, args(false));
    const c = await connection(7002);
    assert.equal(await c.roundTrip(), true);
    await lab.kill(d.child);
    d = await startDaemon(lab, args(false));
    assert.equal(await c.roundTrip(30), false, 'no entry, no loose pickup: dropped');
    const s = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--dport', '7002', '--control', ctl]);
    assert.equal(s.stdout, '');
    await lab.kill(d.child);
  });

  test('a corrupt state file is logged and ignored: the daemon starts empty', T, async () => {
    fs.writeFileSync(state, '{"format":"nfqwall-state","version":1,"savedAt":0,"entries":3,"expectations":0}\n{"tuple":[1,2');
    const d = await startDaemon(lab, args(true));
    assert.match(d.err, /state file ignored: .*starting with an empty table/);
    const c = await nfq(lab, ['conntrack', '-C', '--control', ctl]);
    assert.equal(c.stdout, '0\n');
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
    // and the file written on exit is a good one again
    assert.match(fs.readFileSync(state, 'utf8'), /^\{"format":"nfqwall-state","version":1,.*\n\{"end":true,"entries":0,"expectations":0\}\n$/s);
    void until;
  });
});
