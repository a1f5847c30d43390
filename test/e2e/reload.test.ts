/**
 * Reloads under traffic (issues #5 and #9), through `nfqwall run` on a lab gateway whose
 * rules admit TCP only as a NEW SYN and afterwards only as ESTABLISHED, with
 * nf_conntrack_tcp_loose=0: a connection whose table entry were lost by a reload would be
 * dropped (shown at the end of the first test by deleting an entry on purpose).
 *
 * 1. A long TCP transfer (random bytes, hashed at both ends) spans good reloads by SIGHUP and
 *    by `nfqwall reload`, each file different (a generation comment, an extra rule), and a
 *    bad reload in the middle: the transfer arrives byte-exact, the entry stays ESTABLISHED
 *    in the table throughout, the new rules are listed after each good reload and the old
 *    ones stay after the bad one.
 * 2. NFQWALL_RELOADS (default 10; test/stress/reload.test.ts: 100) reloads alternating good
 *    and bad files, by SIGHUP, control-socket request and CLI in turn, while a stream and four
 *    echo connections run: no connection lost, every queued packet decided (kernel queue
 *    empty, nothing dropped by the kernel, decided = received), RSS after the second half of
 *    the reloads not above RSS after the first half by more than a margin.
 * Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { request } from '../../src/cli/client';
import {
  bulkStream,
  kernelQueue,
  nfq,
  ROOT,
  rssKb,
  scrape,
  skip,
  sleep,
  startDaemon,
  talker,
  TCP_TOOL,
  tmpDir,
  until,
  watch,
  type Watched,
} from './ops-harness';

if (skip) process.stderr.write(`reload e2e skipped: ${skip}\n`);
const RELOADS = Number(process.env.NFQWALL_RELOADS ?? 10);
const T = { timeout: 600_000 };
const QUEUE = 31;
const METRICS = 9471;

/** Generation `gen` of the rule file: a comment and an extra rule that differ per generation. */
function goodRules(gen: number): string {
  return `# generation ${gen}
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -m comment --comment "gen ${gen}" -j ACCEPT
-A FORWARD -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp --dport ${20000 + gen} -j ACCEPT
COMMIT
`;
}
/** A file with an error on line 8 (an unknown option). */
function badRules(gen: number): string {
  return goodRules(gen).replace(`-A FORWARD -p udp --dport ${20000 + gen} -j ACCEPT`, `-A FORWARD -p udp --frobnicate ${gen} -j ACCEPT`);
}

describe('reloads under traffic', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let rules: string;
  let ctl: string;
  let daemon: Watched | undefined;
  const figures: string[] = [];

  before(async () => {
    tmp = tmpDir('reload');
    rules = path.join(tmp, 'fw.rules');
    ctl = path.join(tmp, 'ctl.sock');
    lab = await Lab.create();
    const echo = watch(lab.spawn('srv', [process.execPath, TCP_TOOL, 'echo', A.srv4, '6100'], { cwd: ROOT }));
    await echo.waitFor(/^READY$/m, 'out');
  });
  after(async () => {
    if (daemon) await lab.kill(daemon.child);
    if (figures.length) process.stderr.write(`reload figures:\n  ${figures.join('\n  ')}\n`);
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function start(): Promise<Watched> {
    fs.writeFileSync(rules, goodRules(0));
    if (daemon) await lab.kill(daemon.child);
    return (daemon = await startDaemon(lab, [
      '--rules',
      rules,
      '--control',
      ctl,
      '--queue',
      String(QUEUE),
      '--metrics',
      `127.0.0.1:${METRICS}`,
      '--set',
      'net.netfilter.nf_conntrack_tcp_loose=0',
    ]));
  }

  const listed = async () => {
    const lines: string[] = [];
    const r = await request(ctl, { op: 'rules.list' }, (l) => lines.push(...l));
    assert.equal(r.ok, true);
    return lines.join('\n');
  };
  const genOf = (text: string) => Number(/--comment "?gen (\d+)"?/.exec(text)?.[1]);
  const count = (d: Watched, re: RegExp) => d.err.split('\n').filter((l) => re.test(l)).length;

  test('a long TCP transfer survives good reloads (SIGHUP and nfqwall reload) and a bad one, byte-exact, its entry kept', T, async () => {
    const d = await start();
    const stream = await bulkStream(lab, 6001);
    await stream.progress(2 << 20, 'start');
    const entry = async (what: string) => {
      const r = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--dport', '6001', '--control', ctl]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, `${what}: one entry for the stream: ${r.stdout}`);
      assert.match(
        lines[0],
        new RegExp(`^tcp +6 \\d+ ESTABLISHED src=198\\.18\\.1\\.1 dst=198\\.19\\.2\\.1 sport=${stream.localPort} dport=6001 .*\\[ASSURED\\]`),
        what,
      );
    };
    await entry('before any reload');
    const hup = async (gen: number) => {
      const before = count(d, /"msg":"rules reloaded"/);
      fs.writeFileSync(rules, goodRules(gen));
      process.kill(d.child.pid!, 'SIGHUP');
      await until(async () => count(d, /"msg":"rules reloaded"/) > before, `SIGHUP reload to generation ${gen}`);
    };
    const cli = async (gen: number, good: boolean) => {
      fs.writeFileSync(rules, good ? goodRules(gen) : badRules(gen));
      return nfq(lab, ['reload', '--control', ctl]);
    };
    const steps: Array<[string, () => Promise<number>]> = [
      ['SIGHUP to generation 1', async () => (await hup(1), 1)],
      [
        'nfqwall reload to generation 2',
        async () => {
          const r = await cli(2, true);
          assert.equal(r.code, 0, r.stderr);
          return 2;
        },
      ],
      [
        'a bad file (nfqwall reload): the old rules stay',
        async () => {
          const r = await cli(3, false);
          assert.equal(r.code, 1, 'a refused reload exits 1');
          assert.match(r.stderr, new RegExp(`^${rules.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8:\\d+: `, 'm'));
          return 2;
        },
      ],
      ['SIGHUP to generation 4', async () => (await hup(4), 4)],
      [
        'nfqwall reload to generation 5',
        async () => {
          const r = await cli(5, true);
          assert.equal(r.code, 0, r.stderr);
          return 5;
        },
      ],
    ];
    for (const [what, step] of steps) {
      const want = await step();
      const text = await listed();
      assert.equal(genOf(text), want, `${what}: rules in force\n${text}`);
      assert.equal(text.includes(`--dport ${20000 + want}`), true, `${what}: the generation's own rule is loaded\n${text}`);
      await entry(`after ${what}`);
      await stream.progress(2 << 20, `after ${what}`);
    }
    const res = await stream.stop();
    assert.ok(res.sent[0] >= 12 << 20, `sent ${res.sent[0]} bytes`);
    assert.deepEqual(res.received, res.sent, 'the receiver got exactly what was sent');
    figures.push(`transfer across 4 good reloads and 1 bad one: ${res.sent[0]} bytes, sha256 equal`);
    const m = await scrape(lab, METRICS);
    assert.equal(m.val(/^nfqwall_reloads_total (\d+)$/m), 4);
    assert.equal(m.val(/^nfqwall_reload_failures_total (\d+)$/m), 1);
    assert.match(d.err, /"msg":"reload refused: the rule file is invalid; the old rules stay in force"/);

    // the control: these rules really need the table entry — an echo connection whose entry
    // is deleted stops working (no loose pickup with tcp_loose=0)
    const t = await talker(lab, 6100);
    assert.equal(await t.roundTrip(), true, 'echo before the delete');
    const del = await nfq(lab, ['conntrack', '-D', '-p', 'tcp', '--sport', String(t.localPort), '--control', ctl]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stderr, /1 flow entries have been deleted/);
    assert.equal(await t.roundTrip(50), false, 'without its entry the connection is dropped');
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
  });

  test('a reload to 100k rules compiles off the packet path, with one queue and with a worker thread per queue', T, async () => {
    // 100k rules that match nothing of this test's traffic (UDP from addresses nobody uses), after the ESTABLISHED rule
    const big = (gen: number) => {
      const extra: string[] = [];
      for (let i = 0; i < 100_000; i++)
        extra.push(`-A FORWARD -s 198.19.${200 + ((i >> 8) % 50)}.${i & 255}/32 -p udp -m udp --dport ${1 + (i % 60000)} -j DROP`);
      return goodRules(gen).replace('COMMIT\n', `${extra.join('\n')}\nCOMMIT\n`);
    };
    for (const [k, queues] of [
      ['--queue', String(QUEUE)],
      ['--queues', `${QUEUE}:${QUEUE + 1}`],
    ].entries()) {
      fs.writeFileSync(rules, goodRules(0));
      if (daemon) await lab.kill(daemon.child);
      const d = (daemon = await startDaemon(lab, ['--rules', rules, '--control', ctl, ...queues, '--set', 'net.netfilter.nf_conntrack_tcp_loose=0']));
      const stream = await bulkStream(lab, 6010 + k);
      await stream.progress(1 << 20, `${queues[0]}: start`);
      fs.writeFileSync(rules, big(7));
      // the reply comes once the new rules are in force; the stream (admitted only by the
      // ESTABLISHED rule of the rules in force) runs while they compile
      const r = await request(ctl, { op: 'reload' });
      assert.equal(r.ok, true, JSON.stringify(r));
      const line = await until(async () => d.err.split('\n').find((l) => /"msg":"rules reloaded"/.test(l)), 'the reload logged');
      const c = JSON.parse(line) as { rules: number; compile: { ms: number; batchesDecided: number } };
      assert.equal(c.rules, 100_003);
      assert.ok(c.compile.batchesDecided > 0, `${queues[0]}: batches decided while the 100k rules compiled: ${line}`);
      const text = await listed();
      assert.equal(genOf(text), 7, 'the new rules are in force');
      assert.equal(text.split('\n').filter((l) => l.startsWith('-A FORWARD -s 198.19.')).length, 100_000);
      await stream.progress(1 << 20, `${queues[0]}: after the reload`);
      const res = await stream.stop();
      assert.deepEqual(res.received, res.sent, 'the stream arrived byte-exact');
      figures.push(`reload to 100k rules (${queues.join(' ')}): compile ${c.compile.ms} ms, ${c.compile.batchesDecided} batches decided meanwhile`);
      await lab.kill(d.child);
      assert.equal(await d.exited, 0);
      daemon = undefined;
    }
  });

  test(`${RELOADS} reloads alternating good and bad files under sustained traffic: no connection lost, every packet decided, memory flat`, T, async () => {
    const d = await start();
    const pid = d.child.pid!;
    const stream = await bulkStream(lab, 6002);
    const talkers = [];
    for (let i = 0; i < 4; i++) talkers.push(await talker(lab, 6100));
    for (const t of talkers) assert.equal(await t.roundTrip(), true);
    await stream.progress(1 << 20, 'start');
    let gen = 0;
    let good = 0;
    let bad = 0;
    let rssMid = 0;
    for (let i = 1; i <= RELOADS; i++) {
      const ok = i % 2 === 1;
      const how = i % 5 === 0 ? 'cli' : i % 3 === 0 ? 'sighup' : 'socket';
      fs.writeFileSync(rules, ok ? goodRules(i) : badRules(i));
      const okBefore = count(d, /"msg":"rules reloaded"/);
      const badBefore = count(d, /"msg":"reload refused/);
      if (how === 'cli') {
        const r = await nfq(lab, ['reload', '--control', ctl]);
        assert.equal(r.code, ok ? 0 : 1, `reload ${i} (${how}): ${r.stderr}`);
      } else if (how === 'socket') {
        const r = await request(ctl, { op: 'reload' });
        assert.equal(r.ok, ok, `reload ${i} (${how}): ${JSON.stringify(r)}`);
      } else {
        process.kill(pid, 'SIGHUP');
        await until(async () => count(d, ok ? /"msg":"rules reloaded"/ : /"msg":"reload refused/) > (ok ? okBefore : badBefore), `SIGHUP reload ${i}`);
      }
      if (ok) {
        gen = i;
        good++;
      } else bad++;
      // the log is read through a pipe: wait for the line, then check nothing else came
      await until(async () => count(d, /"msg":"rules reloaded"/) >= good && count(d, /"msg":"reload refused/) >= bad, `reload ${i} logged`);
      assert.equal(count(d, /"msg":"rules reloaded"/), good, `reload ${i}: good reloads logged`);
      assert.equal(count(d, /"msg":"reload refused/), bad, `reload ${i}: refused reloads logged`);
      assert.equal(genOf(await listed()), gen, `reload ${i} (${how}, ${ok ? 'good' : 'bad'}): generation in force`);
      // an echo connection answers after every reload, the stream keeps moving
      assert.equal(await talkers[i % talkers.length].roundTrip(), true, `echo after reload ${i}`);
      if (i % 10 === 0 || i === RELOADS) await stream.progress(256 << 10, `after reload ${i}`);
      if (i === Math.floor(RELOADS / 2)) rssMid = rssKb(pid);
    }
    const rssEnd = rssKb(pid);
    figures.push(`${RELOADS} reloads (${good} good, ${bad} refused): daemon RSS after half ${rssMid} kB, after all ${rssEnd} kB`);
    for (const t of talkers) assert.equal(await t.roundTrip(), true, 'every echo connection still works');
    const res = await stream.stop();
    assert.deepEqual(res.received, res.sent, 'the stream arrived byte-exact');
    figures.push(`stream during the reloads: ${res.sent[0]} bytes, sha256 equal; connections lost: 0 of ${talkers.length + 1}`);
    const l = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--control', ctl]);
    for (const t of [...talkers.map((x) => x.localPort), stream.localPort]) {
      assert.match(l.stdout, new RegExp(`sport=${t} dport=(6100|6002) `), `entry of the connection from port ${t}`);
    }
    // every packet the kernel queued was received and decided: the queue drains to empty,
    // the kernel dropped none, and the firewall decided as many packets as the queue delivered
    await until(async () => (await kernelQueue(lab, QUEUE))?.qlen === 0, 'an empty kernel queue');
    const k = (await kernelQueue(lab, QUEUE))!;
    assert.equal(k.queueDropped, 0, 'queue_dropped');
    assert.equal(k.userDropped, 0, 'user_dropped');
    const m = await scrape(lab, METRICS);
    const received = m.val(new RegExp(`^nfqwall_queue_packets_total\\{queue="${QUEUE}"\\} (\\d+)$`, 'm'));
    // every hook counts (the gateway's own packets, e.g. this very scrape, are queued too)
    const decided = m.sum(/^nfqwall_packets_total\{hook="\w+",verdict="(?:accept|drop)"\} (\d+)$/);
    assert.equal(decided, received, `decided ${decided} vs received ${received}`);
    assert.equal(m.val(/^nfqwall_queue_enobufs_total\{queue="\d+"\} (\d+)$/m), 0);
    assert.equal(m.val(/^nfqwall_reloads_total (\d+)$/m), good);
    assert.equal(m.val(/^nfqwall_reload_failures_total (\d+)$/m), bad);
    // memory: the second half of the reloads may not need noticeably more than the first
    assert.ok(rssEnd <= rssMid * 1.2 + 16 * 1024, `RSS grew from ${rssMid} kB to ${rssEnd} kB`);
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
    void sleep;
  });
});
