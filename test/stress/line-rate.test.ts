/**
 * Floods at line rate (issue #18 point 6): a C sender (test/helpers/flood_sender.c, built
 * here with cc) writes new UDP flows and TCP SYNs with sendmmsg on a raw socket, as fast as
 * the machine lets it, for FLOOD_SECONDS each, through a lab gateway running `nfqwall run`
 * with nf_conntrack_max = 256, a management reserve for its metrics port, and an ASSURED TCP
 * stream through it opened before the floods. Checked (counts, no timing): every flood sends
 * at least 10× max; while it runs `nfqwall conntrack -C` answers over the control socket
 * (every answer ≤ max) and every metrics scrape over TCP answers 200; the stream keeps
 * delivering after each flood; the daemon stays alive; RSS after the third round is not
 * noticeably above the second's. The rate reached is printed. npm run stress.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { watch, type Watched } from '../helpers/watch';
import { mgmtFloodRules, STREAM_CLI, STREAM_SRV, streamBytes } from '../helpers/flood-lab';

const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const hasCc = (() => {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : !hasCc ? 'no cc' : !fs.existsSync('/usr/bin/curl') ? 'no curl' : false;
if (skip) process.stderr.write(`line-rate flood skipped: ${skip}\n`);

const MAX = 256;
const PORT = 9100;
const FLOOD_SECONDS = 3;
const T = { timeout: 600_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const RULES = mgmtFloodRules(PORT);

const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

describe('line-rate floods through nfqwall run (nf_conntrack_max = 256)', { skip }, () => {
  let lab: Lab | undefined;
  let tmp = '';
  let sender = '';
  let daemon: Watched;
  let stream: Watched;
  const figures: string[] = [];
  const env = { ...process.env, NFQWALL_FROM_SOURCE: '1' };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-linerate-'));
    fs.chmodSync(tmp, 0o755);
    sender = path.join(tmp, 'flood_sender');
    execFileSync('cc', ['-O2', '-o', sender, path.join(ROOT, 'test', 'helpers', 'flood_sender.c')]);
    fs.writeFileSync(path.join(tmp, 'r.rules'), RULES);
    lab = await Lab.create({ prefix: 'nfql' });
    const srv = watch(lab.spawn('srv', [process.execPath, '-e', STREAM_SRV], { cwd: ROOT }));
    await srv.waitFor(/READY/);
    const args = ['node', 'bin/nfqwall.js', 'run', '--rules', path.join(tmp, 'r.rules'), '--queue', '25', '--iptables', 'auto'];
    args.push('--control', path.join(tmp, 'ctl.sock'), '--metrics', `${A.gwCli4}:${PORT}`);
    for (const s of [`net.netfilter.nf_conntrack_max=${MAX}`, 'nfqwall.mgmt_reserve=32', `nfqwall.mgmt_port=${PORT}`]) args.push('--set', s);
    daemon = watch(lab.spawn('gw', args, { cwd: ROOT, env }), { timeoutMs: 120_000 });
    await daemon.waitFor(/"msg":"nfqwall started"/, 'err');
    stream = watch(lab.spawn('cli', [process.execPath, '-e', STREAM_CLI], { cwd: ROOT }));
    for (let i = 0; streamBytes(stream.out) < 64 * 1024; i++) {
      assert.ok(i < 1200, `stream did not start: ${stream.out.slice(-300)} ${daemon.err.slice(-2000)}`);
      await sleep(50);
    }
  });

  after(async () => {
    try {
      if (figures.length) process.stderr.write(`line-rate figures:\n  ${figures.join('\n  ')}\n`);
      if (lab && daemon) await lab.kill(daemon.child, 'SIGTERM');
    } finally {
      try {
        if (lab) await lab.destroy();
      } finally {
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
  });

  async function flood(kind: 'syn' | 'udp'): Promise<void> {
    let running = true;
    const dport = kind === 'syn' ? '7000' : '9000';
    const sent = lab!.exec('cli', [sender, kind, A.cli4, A.srv4, dport, String(FLOOD_SECONDS)], { timeoutMs: 120_000 }).finally(() => {
      running = false;
    });
    let answers = 0;
    let scrapes = 0;
    let peak = 0;
    do {
      const [c, m] = await Promise.all([
        lab!.exec('gw', [process.execPath, 'bin/nfqwall.js', 'conntrack', '-C', '--control', path.join(tmp, 'ctl.sock')], { cwd: ROOT, env }),
        lab!.exec('cli', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '60', `http://${A.gwCli4}:${PORT}/metrics`], {
          timeoutMs: 120_000,
        }),
      ]);
      assert.equal(c.code, 0, `conntrack -C during the ${kind} flood: ${c.stderr}`);
      const count = Number(c.stdout);
      assert.ok(count <= MAX, `conntrack -C said ${count} > ${MAX}`);
      peak = Math.max(peak, count);
      answers++;
      assert.equal(m.stdout.trim(), '200', `metrics scrape during the ${kind} flood: ${m.stdout} ${m.stderr}`);
      scrapes++;
    } while (running);
    const r = await sent;
    assert.equal(r.code, 0, r.stderr);
    const [, n, secs] = /SENT (\d+) ([\d.]+)/.exec(r.stdout) ?? [];
    assert.ok(Number(n) >= 10 * MAX, `${kind}: only ${n} packets sent`);
    figures.push(
      `${kind}: ${n} new flows in ${secs} s (${Math.round(Number(n) / Number(secs))} pkt/s); conntrack -C answered ${answers}× (peak ${peak}), metrics ${scrapes}× 200`,
    );
    assert.equal(daemon.child.exitCode, null, `daemon died: ${daemon.err.slice(-3000)}`);
    const target = streamBytes(stream.out) + 256 * 1024;
    for (let i = 0; streamBytes(stream.out) < target; i++) {
      assert.ok(!/CLOSED|ERR/.test(stream.out), `stream broke: ${stream.out.slice(-200)}`);
      assert.ok(i < 2400, `stream stalled after the ${kind} flood`);
      await sleep(50);
    }
  }

  test('SYN and UDP floods at line rate: table bounded, stream unharmed, control socket and metrics answering, RSS flat', T, async () => {
    const rss: number[] = [];
    for (let round = 0; round < 3; round++) {
      await flood('syn');
      await flood('udp');
      rss.push(rssKb(daemon.child.pid!));
    }
    figures.push(`daemon RSS after rounds 1, 2, 3: ${rss.join(' kB, ')} kB`);
    assert.ok(rss[2] <= rss[1] * 1.2 + 16 * 1024, `RSS grew from ${rss[1]} kB to ${rss[2]} kB`);
    assert.match(daemon.err, /nf_conntrack: table full, dropping packet/);
  });
});
