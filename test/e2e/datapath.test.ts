/**
 * End-to-end tests of the data path (native addon + queue API + daemon `run --accept-all`)
 * through a lab gateway: cli (198.18.1.1) -> gw -> srv (198.19.2.1), and the same over IPv6.
 * Needs root (network namespaces, NFQUEUE). Only lab addresses are used; only PIDs started
 * here are signalled; the lab is destroyed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { watch as watchOutput } from '../helpers/watch';

const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root (network namespaces, NFQUEUE)' : !fs.existsSync(ADDON) ? 'native addon not built (npm run build)' : false;
if (skip) process.stderr.write(`datapath e2e skipped: ${skip}\n`);

const T = { timeout: 180_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Seen {
  total: number;
  v4: number;
  v6: number;
  tcp: number;
  udp: number;
  udpDropped: number;
  icmp: number;
  icmp6: number;
  accepted: number;
  dropped: number;
  fragments: number;
  maxLen: number;
  minRoom: number;
}
type ConsumerStats = Record<string, number> & { seen: Seen };

/** Output of a child; waitFor() waits until the marker appears or the process exits. */
const watch = (child: ChildProcess) => watchOutput(child, { timeoutMs: Infinity });

describe('data path through a lab gateway', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let baseline4 = '';
  let baseline6 = '';
  let udpServer4: ChildProcess;
  let udpServer6: ChildProcess;

  const inRoot = { cwd: ROOT };
  const daemonEnv = { ...process.env, NFQWALL_FROM_SOURCE: '1' };

  async function startConsumer(args: string[]) {
    const child = lab.spawn('gw', ['node', '--import', 'tsx', 'test/helpers/nfq-consumer.ts', ...args], inRoot);
    const w = watch(child);
    await w.waitFor(/^READY /m);
    return {
      child,
      w,
      /** SIGTERM, then the STATS line it prints while closing. */
      async stop(): Promise<ConsumerStats> {
        await lab.kill(child, 'SIGTERM');
        const m = /^STATS (.*)$/m.exec(w.out);
        assert.ok(m, `consumer printed no STATS: ${w.out}\n${w.err}`);
        return JSON.parse(m[1]) as ConsumerStats;
      },
    };
  }

  /** Raw-table rules as `nfqwall run` installs them with --kernel-conntrack notrack (see src/daemon/iptables.ts). */
  const RAW_NOTRACK = [['-j', 'CT', '--notrack']];
  const RAW_DAEMON = [...RAW_NOTRACK, ['-m', 'conntrack', '--ctstate', 'UNTRACKED']];

  /** FORWARD -> NFQUEUE q in gw for v4 and v6 (test-owned rules, removed by unqueue()). */
  async function queueTo(q: number, raw: string[][] = []) {
    for (const bin of ['iptables', 'ip6tables']) {
      for (const r of raw) await lab.exec('gw', [bin, '-w', '-t', 'raw', '-A', 'PREROUTING', ...r], { check: true });
      await lab.exec('gw', [bin, '-w', '-A', 'FORWARD', '-j', 'NFQUEUE', '--queue-num', String(q)], { check: true });
    }
  }
  async function unqueue(q: number, raw: string[][] = []) {
    for (const bin of ['iptables', 'ip6tables']) {
      await lab.exec('gw', [bin, '-w', '-D', 'FORWARD', '-j', 'NFQUEUE', '--queue-num', String(q)], { check: true });
      for (const r of raw) await lab.exec('gw', [bin, '-w', '-t', 'raw', '-D', 'PREROUTING', ...r], { check: true });
    }
  }

  async function ping(dst: string, count = 3): Promise<number | null> {
    const v6 = dst.includes(':');
    const r = await lab.exec('cli', ['ping', ...(v6 ? ['-6'] : []), '-c', String(count), '-i', '0.2', '-W', '1', dst]);
    return r.code;
  }

  async function udp(dst: string, port: number, count: number, size = 64): Promise<{ sent: number; received: number }> {
    const r = await lab.exec('cli', ['node', 'test/helpers/udp.js', 'client', dst, String(port), String(count), String(size)], { ...inRoot, check: true });
    return JSON.parse(r.stdout);
  }

  /** Sends `file` from cli to srv over TCP with socat; returns the sha256 the server computed. */
  async function tcpTransfer(file: string, v6: boolean, port: number): Promise<string> {
    const listen = v6 ? `TCP6-LISTEN:${port},reuseaddr` : `TCP4-LISTEN:${port},reuseaddr`;
    const server = lab.spawn('srv', ['sh', '-c', `socat -u ${listen} - | sha256sum`]);
    const w = watch(server);
    for (;;) {
      const r = await lab.exec('srv', ['ss', '-Hltn', `sport = :${port}`]);
      if (r.stdout.trim()) break;
      await sleep(50);
    }
    const dst = v6 ? `TCP6:[${A.srv6}]:${port}` : `TCP4:${A.srv4}:${port}`;
    await lab.exec('cli', ['socat', '-u', `OPEN:${file}`, dst], { check: true });
    await w.exited;
    return w.out.split(/\s+/)[0];
  }

  async function iptablesSave(): Promise<string> {
    const strip = (s: string) => s.replace(/^#.*\n/gm, '');
    return strip((await lab.exec('gw', ['iptables-save'], { check: true })).stdout) + strip((await lab.exec('gw', ['ip6tables-save'], { check: true })).stdout);
  }

  async function kernelQueue(q: number) {
    const r = await lab.exec('gw', ['cat', '/proc/net/netfilter/nfnetlink_queue']);
    for (const line of r.stdout.split('\n')) {
      const f = line.trim().split(/\s+/).map(Number);
      if (f[0] === q) return { portid: f[1], qlen: f[2], queueDropped: f[5], userDropped: f[6] };
    }
    return undefined;
  }

  before(async () => {
    lab = await Lab.create();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-e2e-'));
    // Marker chains of the test's own (so the tables exist and foreign chains must survive).
    for (const bin of ['iptables', 'ip6tables']) {
      for (const table of ['raw', 'filter']) await lab.exec('gw', [bin, '-w', '-t', table, '-N', 'TESTMARK'], { check: true });
    }
    baseline4 = (await lab.exec('gw', ['iptables', '-S'])).stdout;
    baseline6 = (await lab.exec('gw', ['ip6tables', '-S'])).stdout;
    udpServer4 = lab.spawn('srv', ['node', 'test/helpers/udp.js', 'server', A.srv4, '5300'], inRoot);
    udpServer6 = lab.spawn('srv', ['node', 'test/helpers/udp.js', 'server', A.srv6, '5300'], inRoot);
    const u4 = lab.spawn('srv', ['node', 'test/helpers/udp.js', 'server', A.srv4, '5301'], inRoot);
    await Promise.all([watch(udpServer4).waitFor(/READY/), watch(udpServer6).waitFor(/READY/), watch(u4).waitFor(/READY/)]);
    // Neighbour discovery / ARP warm-up without any queue in the path.
    for (const dst of [A.srv4, A.srv6]) {
      const r = await lab.exec('cli', ['ping', ...(dst.includes(':') ? ['-6'] : []), '-c', '1', '-w', '10', dst]);
      assert.equal(r.code, 0, `warm-up ping ${dst}: ${r.stdout}`);
    }
  });

  after(async () => {
    try {
      if (lab) await lab.destroy();
    } finally {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('accept-all: TCP 10 MB (sha256 equal), UDP, ICMP and IPv6 arrive intact', T, async () => {
    await queueTo(1);
    const c = await startConsumer(['--queue', '1', '--mode', 'accept']);
    try {
      const file = path.join(tmp, 'payload.bin');
      const payload = randomBytes(10 * 1000 * 1000);
      fs.writeFileSync(file, payload);
      const want = createHash('sha256').update(payload).digest('hex');
      assert.equal(await tcpTransfer(file, false, 5201), want, 'TCP/IPv4 10 MB');
      assert.equal(await tcpTransfer(file, true, 5202), want, 'TCP/IPv6 10 MB');
      assert.deepEqual(await udp(A.srv4, 5300, 10, 1200), { sent: 10, received: 10 });
      assert.deepEqual(await udp(A.srv6, 5300, 10, 1200), { sent: 10, received: 10 });
      assert.equal(await ping(A.srv4), 0);
      assert.equal(await ping(A.srv6), 0);
    } finally {
      await unqueue(1);
      const s = await c.stop();
      // every forwarded byte passed the queue: two 10 MB transfers need at least this many
      // packets even as 64 KiB GSO super-packets (how many more depends on segmentation)
      const minTcp = 2 * Math.ceil((10 * 1000 * 1000) / 65536);
      assert.ok(s.seen.tcp >= minTcp, `tcp packets seen: ${s.seen.tcp} < ${minTcp}`);
      assert.equal(s.seen.udp, 40); // 10 + 10 echoes, v4 and v6
      assert.ok(s.seen.icmp >= 6 && s.seen.icmp6 >= 6, JSON.stringify(s.seen));
      assert.equal(s.seen.dropped, 0);
      assert.equal(s.packets, s.seen.total);
      assert.equal(s.errors, 0);
      assert.ok(s.batches <= s.packets && s.sendmsgCalls <= s.batches + s.drained, JSON.stringify(s));
    }
  });

  test('drop: a DROP decision stops TCP, UDP and ICMP', T, async () => {
    await queueTo(2);
    const c = await startConsumer(['--queue', '2', '--mode', 'drop']);
    try {
      assert.notEqual(await ping(A.srv4, 2), 0);
      assert.notEqual(await ping(A.srv6, 2), 0);
      assert.deepEqual(await udp(A.srv4, 5300, 3), { sent: 3, received: 0 });
      const r = await lab.exec('cli', ['socat', '-u', '-', `TCP4:${A.srv4}:5201,connect-timeout=2`], { input: 'x' });
      assert.notEqual(r.code, 0, 'TCP connect must fail');
    } finally {
      await unqueue(2);
      const s = await c.stop();
      assert.ok(s.seen.dropped >= 8, JSON.stringify(s.seen));
      assert.equal(s.seen.accepted, 0);
    }
    // Without the queue rule traffic flows again (the DROP was the consumer's decision).
    assert.equal(await ping(A.srv4, 1), 0);
  });

  test('mixed: DROP UDP to port 5301, ACCEPT the rest (ICMP with a mark), counted per class', T, async () => {
    await queueTo(3);
    await lab.exec('gw', ['iptables', '-w', '-t', 'mangle', '-A', 'POSTROUTING', '-m', 'mark', '--mark', '0x42'], { check: true });
    const c = await startConsumer(['--queue', '3', '--mode', 'mixed', '--drop-udp-port', '5301', '--mark-icmp', '66']);
    let s: ConsumerStats;
    try {
      assert.deepEqual(await udp(A.srv4, 5300, 10), { sent: 10, received: 10 });
      assert.deepEqual(await udp(A.srv4, 5301, 10), { sent: 10, received: 0 });
      assert.equal(await ping(A.srv4, 2), 0);
    } finally {
      await unqueue(3);
      s = await c.stop();
    }
    assert.equal(s.seen.udpDropped, 10);
    assert.equal(s.seen.udp, 30); // 10 to 5300 + 10 echoes + 10 to 5301
    assert.equal(s.seen.icmp, 4);
    assert.equal(s.seen.dropped, 10);
    assert.equal(s.seen.accepted, s.seen.total - 10);
    assert.equal(s.packets, s.seen.total);
    // The 4 ICMP packets left the gateway with mark 0x42 (single NFQNL_MSG_VERDICT + NFQA_MARK).
    const m = await lab.exec('gw', ['iptables', '-w', '-t', 'mangle', '-L', 'POSTROUTING', '-v', '-n', '-x'], { check: true });
    const row = m.stdout.split('\n').find((l) => l.includes('mark match 0x42'));
    assert.ok(row, m.stdout);
    assert.equal(Number(row.trim().split(/\s+/)[0]), 4, row);
    await lab.exec('gw', ['iptables', '-w', '-t', 'mangle', '-D', 'POSTROUTING', '-m', 'mark', '--mark', '0x42'], { check: true });
  });

  test('a payload rewritten in place (VERDICT_SET_PAYLOAD) is what leaves the gateway, IPv4 and IPv6; not for a truncated copy', T, async () => {
    const text = 'nfqwall rewrote this datagram 0123';
    const echo = async (dst: string) => {
      const r = await lab.exec('cli', ['node', 'test/helpers/udp.js', 'text', dst, '5300', text], { ...inRoot, check: true });
      return (JSON.parse(r.stdout) as { echo: string | null }).echo;
    };
    await queueTo(11);
    let c = await startConsumer(['--queue', '11', '--mode', 'accept', '--rewrite-udp-port', '5300']);
    let s: ConsumerStats;
    try {
      // the request is rewritten on its way to the server; the echo back (from port 5300) is not
      assert.equal(await echo(A.srv4), text.toUpperCase());
      assert.equal(await echo(A.srv6), text.toUpperCase());
    } finally {
      s = await c.stop();
    }
    assert.equal(s.badVerdicts, 0);
    assert.equal(s.seen.udp, 4);
    // 40 bytes of each packet copied: the addon refuses to send them back as the packet (the
    // kernel would cut it to 40 bytes) and gives the error verdict, DROP
    c = await startConsumer(['--queue', '11', '--mode', 'accept', '--rewrite-udp-port', '5300', '--copy-range', '40']);
    try {
      assert.equal(await echo(A.srv4), null);
    } finally {
      await unqueue(11);
      s = await c.stop();
    }
    assert.equal(s.seen.udp, 1);
    assert.equal(s.badVerdicts, 1);
  });

  test('a rewritten payload may grow or shrink (IX_ROOM / IX_CAPLEN), IPv4 and IPv6; a length beyond the room is refused', T, async () => {
    const text = 'nfqwall resized this datagram 0123456789';
    const echo = async (dst: string) => {
      const r = await lab.exec('cli', ['node', 'test/helpers/udp.js', 'text', dst, '5300', text], { ...inRoot, check: true });
      return (JSON.parse(r.stdout) as { echo: string | null }).echo;
    };
    const run = async (by: number, extra: string[] = []) => {
      const c = await startConsumer(['--queue', '12', '--mode', 'accept', '--resize-udp-port', '5300', '--resize-by', String(by), ...extra]);
      const got: (string | null)[] = [];
      let s: ConsumerStats;
      try {
        got.push(await echo(A.srv4), await echo(A.srv6));
      } finally {
        s = await c.stop();
      }
      return { got, s };
    };
    await queueTo(12);
    try {
      // the request grows (or shrinks) on its way to the server, which echoes what it got
      let r = await run(1000);
      assert.deepEqual(r.got, [text + '+'.repeat(1000), text + '+'.repeat(1000)]);
      assert.equal(r.s.badVerdicts, 0);
      r = await run(-7);
      assert.deepEqual(r.got, [text.slice(0, -7), text.slice(0, -7)]);
      assert.equal(r.s.badVerdicts, 0);
      // a 200-byte copy range: slots of 8 KiB beyond it; 1000 more bytes fit, 9000 do not
      r = await run(1000, ['--copy-range', '200']);
      assert.deepEqual(r.got, [text + '+'.repeat(1000), text + '+'.repeat(1000)]);
      assert.ok(r.s.seen.minRoom >= 8192 && r.s.seen.minRoom < 9000, JSON.stringify(r.s.seen));
      r = await run(9000, ['--copy-range', '200']);
      assert.deepEqual(r.got, [null, null]);
      assert.equal(r.s.badVerdicts, 2);
    } finally {
      await unqueue(12);
    }
  });

  async function fragRun(q: number, raw: string[][]): Promise<ConsumerStats> {
    await queueTo(q, raw);
    const c = await startConsumer(['--queue', String(q), '--mode', 'accept']);
    try {
      for (const dst of [A.srv4, A.srv6]) {
        const r = await lab.exec('cli', ['node', 'test/helpers/udp.js', 'frag', dst, '5300', '4000'], { ...inRoot, check: true });
        assert.deepEqual(JSON.parse(r.stdout), { sent: 1, received: 1 }, dst);
      }
    } finally {
      await unqueue(q, raw);
    }
    return c.stop();
  }

  test('fragmented UDP (IPv4 and IPv6) reaches the queue reassembled with the raw-table rules of `run`', T, async () => {
    const s = await fragRun(4, RAW_DAEMON);
    assert.equal(s.seen.fragments, 0, JSON.stringify(s.seen));
    assert.equal(s.seen.udp, 4, JSON.stringify(s.seen)); // one datagram each way per family
    assert.ok(s.seen.maxLen >= 4028, JSON.stringify(s.seen));
    // For the record (docs/API.md): CT --notrack alone does not turn defragmentation on.
    const bare = await fragRun(5, RAW_NOTRACK);
    process.stderr.write(`# CT --notrack only: ${bare.seen.fragments} fragments of ${bare.seen.total} packets queued\n`);
  });

  test('a throwing handler: its packets get the error verdict (fail-closed: DROP), the error is reported, the consumer lives', T, async () => {
    await queueTo(10);
    const c = await startConsumer(['--queue', '10', '--throw']);
    let s: ConsumerStats;
    try {
      assert.notEqual(await ping(A.srv4, 2), 0);
      assert.equal(c.child.exitCode, null);
    } finally {
      await unqueue(10);
      s = await c.stop();
    }
    assert.ok(s.handlerErrors >= 2, JSON.stringify(s));
    assert.equal(s.reported, s.handlerErrors);
    assert.equal(s.sendErrors, 0);
    assert.ok(s.verdictMsgs >= s.batches, JSON.stringify(s)); // every batch was answered
  });

  test('overload: a tiny queue flooded with UDP survives (ENOBUFS/queue full) and still passes traffic', T, async () => {
    await queueTo(6);
    const c = await startConsumer(['--queue', '6', '--mode', 'accept', '--max-len', '16', '--rcvbuf', '4096', '--batch', '4', '--slow-ms', '5']);
    let s: ConsumerStats;
    let k: Awaited<ReturnType<typeof kernelQueue>>;
    try {
      await lab.exec('cli', ['node', 'test/helpers/udp.js', 'flood', A.srv4, '5300', '20000', '1000'], { ...inRoot, check: true });
      assert.equal(c.child.exitCode, null, 'consumer alive after the flood');
      assert.equal(await ping(A.srv4, 3), 0, 'traffic passes after the flood');
      k = await kernelQueue(6);
    } finally {
      await unqueue(6);
      s = await c.stop();
    }
    assert.ok(k, 'queue 6 listed in /proc');
    const overload = s.enobufs + k.queueDropped + k.userDropped;
    assert.ok(overload > 0, `overload visible: enobufs=${s.enobufs} queue_dropped=${k.queueDropped} user_dropped=${k.userDropped}`);
    assert.ok(s.packets > 0);
    assert.equal(s.handlerErrors, 0);
  });

  test('a queue already bound by another process is refused with its owner', T, async () => {
    const c = await startConsumer(['--queue', '9']);
    try {
      const r = await lab.exec('gw', ['node', 'bin/nfqwall.js', 'run', '--accept-all', '--queue', '9', '--iptables', 'off'], { ...inRoot, env: daemonEnv });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /queue 9 is already bound by another process \(owner: netlink portid \d+/);
      const ready = JSON.parse(/^READY (.*)$/m.exec(c.w.out)![1]);
      assert.ok(r.stderr.includes(`portid ${ready.portid}`), r.stderr);
    } finally {
      await c.stop();
    }
  });

  async function startDaemon(args: string[]) {
    const child = lab.spawn('gw', ['node', 'bin/nfqwall.js', 'run', '--accept-all', '--iptables', 'auto', ...args], { ...inRoot, env: daemonEnv });
    const w = watch(child);
    await w.waitFor(/"msg":"nfqwall started"/, 'err');
    return { child, w };
  }

  /** `nfqwall uninstall ARGS` in the gateway. */
  async function uninstall(args: string[]) {
    const r = await lab.exec('gw', ['node', 'bin/nfqwall.js', 'uninstall', ...args], { ...inRoot, env: daemonEnv });
    assert.equal(r.code, 0, r.stderr);
  }

  test(
    'nfqwall run --accept-all --iptables auto passes traffic, installs its rules; SIGTERM keeps them (fail-closed), uninstall removes exactly them',
    T,
    async () => {
      const before = await iptablesSave();
      const d = await startDaemon(['--queue', '7']);
      try {
        const during = await iptablesSave();
        assert.match(during, /-A FORWARD -j NFQWALL-q7/);
        assert.match(during, /-A NFQWALL-q7 -j NFQUEUE --queue-num 7/);
        assert.match(during, /-A NFQWALL-q7 -j CT --notrack/);
        assert.match(during, /-A NFQWALL-q7 -m conntrack --ctstate UNTRACKED/);
        assert.equal(await ping(A.srv4), 0);
        assert.equal(await ping(A.srv6), 0);
        assert.deepEqual(await udp(A.srv4, 5300, 5), { sent: 5, received: 5 });
        const file = path.join(tmp, 'small.bin');
        const payload = randomBytes(1 << 20);
        fs.writeFileSync(file, payload);
        assert.equal(await tcpTransfer(file, false, 5203), createHash('sha256').update(payload).digest('hex'));
      } finally {
        await lab.kill(d.child, 'SIGTERM');
      }
      assert.equal(await d.w.exited, 0, d.w.err);
      assert.match(d.w.err, /"msg":"nfqwall stopped"/);
      assert.match(d.w.err, /iptables rules kept \(fail-closed\)/);
      assert.match(await iptablesSave(), /-A FORWARD -j NFQWALL-q7/);
      assert.notEqual(await ping(A.srv4, 1), 0, 'stopped, fail-closed: the kernel drops what nobody reads');
      await uninstall(['--queue', '7']);
      assert.equal(await iptablesSave(), before);
      assert.equal((await lab.exec('gw', ['iptables', '-S'])).stdout, baseline4);
      assert.equal((await lab.exec('gw', ['ip6tables', '-S'])).stdout, baseline6);
    },
  );

  for (const failOpen of [false, true]) {
    test(
      `daemon killed with SIGKILL: ${failOpen ? 'fail-open lets traffic pass' : 'fail-closed stops traffic'}; a restart replaces the stale rules`,
      T,
      async () => {
        const before = await iptablesSave();
        const args = ['--queue', '8', ...(failOpen ? ['--fail-open'] : [])];
        const d = await startDaemon(args);
        try {
          assert.equal(await ping(A.srv4, 1), 0);
        } finally {
          await lab.kill(d.child, 'SIGKILL');
        }
        // The crashed daemon's rules are still there; there is no listener on queue 8.
        assert.match(await iptablesSave(), /NFQWALL-q8/);
        if (failOpen) {
          assert.equal(await ping(A.srv4, 2), 0, 'fail-open: traffic passes without a listener');
          assert.deepEqual(await udp(A.srv4, 5300, 3), { sent: 3, received: 3 });
        } else {
          assert.notEqual(await ping(A.srv4, 2), 0, 'fail-closed: traffic stops without a listener');
          assert.deepEqual(await udp(A.srv4, 5300, 2), { sent: 2, received: 0 });
        }
        // A new run finds the stale chains and replaces them; on SIGTERM fail-open removes its
        // rules, fail-closed keeps them until `nfqwall uninstall`.
        const d2 = await startDaemon(args);
        try {
          assert.match(d2.w.err, /removed stale nfqwall rules/);
          const during = await iptablesSave();
          assert.equal(during.match(/-A FORWARD -j NFQWALL-q8/g)?.length, 2, during); // once per family
          assert.equal(await ping(A.srv4, 1), 0);
        } finally {
          await lab.kill(d2.child, 'SIGTERM');
        }
        assert.equal(await d2.w.exited, 0);
        if (!failOpen) {
          assert.match(await iptablesSave(), /NFQWALL-q8/, 'fail-closed: the rules stay after SIGTERM');
          await uninstall(['--queue', '8']);
        }
        const after = await iptablesSave();
        assert.doesNotMatch(after, /NFQWALL/);
        // Equal to the state before the first daemon (the crash left nothing behind after the restart).
        assert.equal(after, before);
      },
    );
  }
});
