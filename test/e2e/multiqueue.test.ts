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
 * addresses, so same queue) works; a queue that stops being read is noticed and reopened; a
 * worker thread that dies stops the daemon with exit 1 and its iptables rules removed.
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
import { writeVsftpdConf } from '../helpers/vsftpd';
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

  test('reload reaches every worker; an invalid file changes none', T, async () => {
    const d = await daemon();
    const srcs = [...SRC4, ...SRC6];
    assert.deepEqual(
      (await traffic(srcs, 20_000)).filter((f) => !f.ok),
      [],
    );
    fs.writeFileSync(rules, RAW + FILTER(`-A FORWARD -p tcp -m tcp --dport ${PORT} -m conntrack --ctstate NEW -j DROP\n`));
    const r = await nfq(lab, ['reload', '--control', ctl]);
    assert.equal(r.code, 0, r.stderr);
    // new TCP connections to PORT are refused by both workers now; UDP still flows
    const flows = await traffic(srcs, 20_000);
    assert.deepEqual(
      flows.filter((f) => f.proto === 'tcp' && f.ok),
      [],
      'no TCP flow got through',
    );
    assert.deepEqual(
      flows.filter((f) => f.proto === 'udp' && !f.ok),
      [],
      'UDP flows work',
    );
    const v = await nfq(lab, ['rules', '-L', '-v', '--control', ctl]);
    assert.match(v.stdout, new RegExp(`^\\[[1-9]\\d*:\\d+\\] -A FORWARD -p tcp -m tcp --dport ${PORT} -m conntrack --ctstate NEW -j DROP$`, 'm'));

    fs.writeFileSync(rules, RAW + FILTER('-A FORWARD -m nosuchmatch -j ACCEPT\n'));
    const bad = await nfq(lab, ['reload', '--control', ctl]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /fw\.rules:\d+:\d+: /);
    const still = await nfq(lab, ['rules', '-L', '--control', ctl]);
    assert.match(still.stdout, new RegExp(`--dport ${PORT} -m conntrack --ctstate NEW -j DROP`));
    assert.equal((await traffic([SRC4[0], SRC6[0]], 1000)).filter((f) => f.proto === 'tcp' && f.ok).length, 0, 'old rules still in force');

    fs.writeFileSync(rules, RAW + FILTER());
    assert.equal((await nfq(lab, ['reload', '--control', ctl])).code, 0);
    assert.deepEqual(
      (await traffic(srcs, 20_000)).filter((f) => !f.ok),
      [],
      'after the good reload everything flows',
    );
    assert.match(d.err, /"workers":2,"msg":"rules reloaded"/);
    assert.match(d.err, /reload refused: the rule file is invalid/);
    await stopDaemon(d);
  });

  /** Long-lived echo connections from the given sources (socat PIPE on srv, FIFO-fed socat clients). */
  async function connections(port: number, srcs: string[]) {
    lab.spawn('srv', ['socat', `TCP-LISTEN:${port},bind=${A.srv4},reuseaddr,fork`, 'PIPE']);
    await until(async () => (await lab.exec('srv', ['ss', '-Hltn', `sport = :${port}`])).stdout.trim() !== '', 'listening');
    return Promise.all(
      srcs.map(async (src, k) => {
        const fifo = path.join(tmp, `in-${port}-${k}`);
        await lab.exec('cli', ['mkfifo', fifo], { check: true });
        const w = watch(lab.spawn('cli', ['sh', '-c', `exec 3<>${fifo}; socat -T 600 - TCP:${A.srv4}:${port},bind=${src} <&3`]));
        let n = 0;
        return {
          src,
          async roundTrip(tries = 40): Promise<boolean> {
            const tag = `line-${k}-${++n}`;
            fs.appendFileSync(fifo, tag + '\n');
            for (let i = 0; i < tries; i++) {
              if (w.out.includes(tag)) return true;
              await sleep(100);
            }
            return false;
          },
        };
      }),
    );
  }

  test('state across a restart: established connections keep flowing, each claimed by its worker', T, async () => {
    const args = ['--state', state, '--set', 'net.netfilter.nf_conntrack_tcp_loose=0'];
    let d = await daemon(args);
    const conns = await connections(9200, SRC4.slice(0, 10));
    for (const c of conns) assert.equal(await c.roundTrip(), true, `${c.src} before`);
    await stopDaemon(d);
    assert.match(d.err, /"entries":\d+,"expectations":0,"msg":"state saved"/);

    d = await daemon(args);
    const restored = Number(/"restored":(\d+)/.exec(d.err)?.[1]);
    assert.ok(restored >= 10, `restored ${restored}`);
    // listed before any packet came (not yet claimed by a worker)
    const before = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--dport', '9200', '--control', ctl]);
    assert.equal(before.stdout.trim().split('\n').length, 10, before.stdout);
    for (const c of conns) assert.equal(await c.roundTrip(200), true, `${c.src} after the restart`);
    for (const c of conns) assert.equal(await c.roundTrip(), true, `${c.src} again`);
    const after = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--dport', '9200', '--control', ctl]);
    const lines = after.stdout.trim().split('\n');
    assert.equal(lines.length, 10, after.stdout);
    for (const l of lines) assert.match(l, /ESTABLISHED .*\[ASSURED\]/);
    // all of them now live in the workers' tables
    const m = await scrape();
    const total = Number((await nfq(lab, ['conntrack', '-C', '--control', ctl])).stdout.trim());
    assert.equal(metric(m, 'nfqwall_queue_conntrack_entries'), total, 'no entry left unclaimed');
    await stopDaemon(d);
  });

  test(
    'FTP passive through two queues: the data connection meets its expectation in the same worker',
    { ...T, skip: haveFtp ? false : 'vsftpd/curl not installed' },
    async () => {
      const ftpRules = path.join(tmp, 'ftp.rules');
      fs.writeFileSync(
        ftpRules,
        RAW +
          `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`,
      );
      const root = path.join(tmp, 'ftproot');
      fs.mkdirSync(path.join(root, 'pub'), { recursive: true });
      fs.chmodSync(root, 0o755);
      const data = randomBytes(300_000);
      fs.writeFileSync(path.join(root, 'pub', 'down.bin'), data);
      fs.chmodSync(path.join(root, 'pub', 'down.bin'), 0o644);
      const conf = writeVsftpdConf(tmp, root, ['write_enable=NO']);
      lab.spawn('srv', ['/usr/sbin/vsftpd', conf]);
      await until(async () => (await lab.exec('srv', ['ss', '-Hltn', 'sport = :21'])).stdout.trim() !== '', 'vsftpd listening');
      const d = await startDaemon(lab, ['--queues', '0:1', '--rules', ftpRules, '--control', ctl, '--metrics', `127.0.0.1:${metricsPort}`]);
      const srcs = [...SRC4.slice(0, 8), ...SRC6.slice(0, 4)];
      const results = await Promise.all(
        srcs.map(async (src, k) => {
          const out = path.join(tmp, `ftp-down-${k}.bin`);
          const host = src.includes(':') ? `[${A.srv6}]` : A.srv4;
          const r = await lab.exec('cli', [
            'curl',
            '-sS',
            '--connect-timeout',
            '10',
            '--max-time',
            '60',
            '--interface',
            src,
            ...(src.includes(':') ? [] : ['--disable-epsv']),
            `ftp://${host}/pub/down.bin`,
            '-o',
            out,
          ]);
          const got = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0);
          return { src, ok: r.code === 0 && createHash('sha256').update(got).digest('hex') === createHash('sha256').update(data).digest('hex'), err: r.stderr };
        }),
      );
      assert.deepEqual(
        results.filter((r) => !r.ok),
        [],
        'every passive download intact',
      );
      const m = await scrape();
      assert.ok(
        metric(m, 'nfqwall_queue_packets_total', { queue: '0' }) > 0 && metric(m, 'nfqwall_queue_packets_total', { queue: '1' }) > 0,
        'both queues carried FTP',
      );
      assert.ok(metric(m, 'nfqwall_nf_conntrack_stat_expect_new') >= srcs.length, 'every data connection was expected');
      await stopDaemon(d);
    },
  );

  test('a queue that stops being read is noticed and reopened', T, async () => {
    const d = await daemon(['--stall-timeout', '2'], { ...ENV, NFQWALL_TEST_HOOKS: '1' });
    const srcs = [...SRC4, ...SRC6];
    assert.deepEqual(
      (await traffic(srcs, 20_000)).filter((f) => !f.ok),
      [],
    );
    const r = await request(ctl, { op: 'debug.stall', queue: 0 });
    assert.equal(r.ok, true, JSON.stringify(r));
    const during = traffic(srcs, 20_000); // flows of queue 0 wait until the queue is reopened
    await d.waitFor(/"queue":0,.*"reason":"stalled".*queue 0 stopped delivering .*; reopened/);
    await during;
    assert.deepEqual(
      (await traffic(srcs, 20_000)).filter((f) => !f.ok),
      [],
      'everything flows after the reopen',
    );
    // without the hook there is no such control op
    await stopDaemon(d);
    const d2 = await daemon();
    const refused = await request(ctl, { op: 'debug.stall', queue: 0 });
    assert.equal(refused.ok, false);
    assert.match(String(refused.error), /test hooks are off/);
    await stopDaemon(d2);
  });

  test('REJECT from every worker: TCP resets and ICMP port unreachables reach the clients of both queues', T, async () => {
    // raw-socket polls on the main thread's libuv loop: a worker that opened its own raw
    // socket crashed or sent nothing, so the workers hand their replies to the main thread
    const rejectRules = path.join(tmp, 'reject.rules');
    const extra = `-A FORWARD -p tcp -m tcp --dport ${PORT + 99} -j REJECT --reject-with tcp-reset\n-A FORWARD -p udp -m udp --dport ${PORT + 99} -j REJECT\n`;
    fs.writeFileSync(rejectRules, RAW + FILTER(extra));
    const d = await startDaemon(lab, ['--queues', '0:1', '--rules', rejectRules, '--control', ctl, '--metrics', `127.0.0.1:${metricsPort}`]);
    const probe = `
import socket, sys
port = int(sys.argv[1])
for src in sys.argv[2:]:
    fam = socket.AF_INET6 if ':' in src else socket.AF_INET
    dst = ${JSON.stringify(A.srv6)} if fam == socket.AF_INET6 else ${JSON.stringify(A.srv4)}
    for kind, typ in (('tcp', socket.SOCK_STREAM), ('udp', socket.SOCK_DGRAM)):
        s = socket.socket(fam, typ)
        s.settimeout(10)
        s.bind((src, 0))
        try:
            s.connect((dst, port))
            if kind == 'udp':
                s.send(b'x')
                s.recv(10)
            r = 'open'
        except ConnectionRefusedError:
            r = 'refused'
        except socket.timeout:
            r = 'timeout'
        print(src, kind, r, flush=True)
        s.close()
`;
    const srcs = [...SRC4, ...SRC6.slice(0, 4)];
    const r = await lab.exec('cli', ['/usr/bin/python3', '-c', probe, String(PORT + 99), ...srcs], { check: true });
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2 * srcs.length, r.stdout);
    assert.deepEqual(
      lines.filter((l) => !l.endsWith(' refused')),
      [],
      'every TCP connect got a reset and every UDP datagram a port unreachable',
    );
    const m = await scrape();
    const q0 = metric(m, 'nfqwall_queue_packets_total', { queue: '0' });
    const q1 = metric(m, 'nfqwall_queue_packets_total', { queue: '1' });
    assert.ok(q0 > 0 && q1 > 0, `both queues decided some of them (queue 0: ${q0}, queue 1: ${q1})`);
    await stopDaemon(d);
  });

  test('a worker thread that dies stops the daemon: exit 1, logged, its iptables rules kept (fail-closed) until nfqwall uninstall', T, async () => {
    const d = await daemon([], { ...ENV, NFQWALL_TEST_HOOKS: '1' });
    const chains = async () => (await lab.exec('gw', ['iptables', '-S'], { check: true })).stdout;
    assert.match(await chains(), /-N NFQWALL-q0-1/);
    const r = await request(ctl, { op: 'debug.crash', queue: 1 });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(await d.exited, 1, d.err);
    assert.match(d.err, /"level":60,.*"queue":1,.*the worker thread of queue 1 is gone/);
    assert.match(d.err, /"msg":"nfqwall stopped"/);
    assert.match(await chains(), /-A FORWARD -j NFQWALL-q0-1/);
    const un = await nfq(lab, ['uninstall', '--queues', '0:1']);
    assert.equal(un.code, 0, un.stderr);
    assert.doesNotMatch(await chains(), /NFQWALL/);
  });
});
