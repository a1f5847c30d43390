/**
 * Floods through a lab gateway running `nfqwall run --rules FILE --set
 * net.netfilter.nf_conntrack_max=256` (kernel-default bucket count, so early drop
 * usually finds nothing to evict and the table is really full): a SYN flood and a
 * UDP flood of new flows at 10× max, crafted with scapy (Debian's /usr/bin/python3),
 * while an ASSURED TCP stream opened before the flood keeps delivering.
 *
 * Checked: the stream keeps receiving after each flood; the daemon stays alive; its log
 * has `nf_conntrack: table full, dropping packet` and `callbacks suppressed` lines;
 * RSS after the third flood is not above RSS after the second by more than a margin
 * (memory, no timing); the table never exceeds max — `nfqwall conntrack -C` and `-S`
 * asked over and over while each flood runs (every answer ≤ max, the table seen full,
 * drop= never going down), and the captured floods replayed through a Firewall with the
 * same rules and max, checking the count after every packet.
 *
 * NFQWALL_FLOOD_MULT (default 10) scales the floods; test/stress/flood.test.ts runs it big.
 * Needs root; unique namespaces; after() tears everything down even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { readCaptureFile } from '../../src/pcap/read';
import { Firewall } from '../../src/pipeline/firewall';
import { loadRuleFile } from '../../src/pipeline/load-rules';
import { defaultTunables } from '../../src/conntrack/sysctl';
import { checkConntrack } from '../../src/conntrack/check';
import { NF_INET_FORWARD } from '../../src/queue/layout';

const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const PY = '/usr/bin/python3';
const isRoot = process.getuid?.() === 0;
const hasScapy = (() => {
  try {
    require('node:child_process').execFileSync(PY, ['-c', 'import scapy.all'], { stdio: 'ignore', timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
})();
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : !hasScapy ? 'no scapy in /usr/bin/python3' : false;
if (skip) process.stderr.write(`flood e2e skipped: ${skip}\n`);

const MAX = 256;
const MULT = Number(process.env.NFQWALL_FLOOD_MULT ?? 10);
const QUEUE = 23;
const T = { timeout: 600_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -s 198.18.1.0/24 -d 198.19.2.1/32 -p tcp -m multiport --dports 5001,7000 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -s 198.18.1.0/24 -d 198.19.2.1/32 -p udp -m udp --dport 9000 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

/** scapy: N new flows (distinct source ports) from cli to srv, sent and written to a pcap. */
const FLOOD_PY = `
import sys, time, random
from scapy.all import IP, TCP, UDP, send, wrpcap, conf
conf.verb = 0
n, kind, out, base = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
pk = []
for i in range(n):
    sp = 1024 + (base + i) % 64000
    if kind == 'syn':
        pk.append(IP(src='${A.cli4}', dst='${A.srv4}') / TCP(sport=sp, dport=7000, flags='S', seq=random.getrandbits(32), window=1024))
    else:
        pk.append(IP(src='${A.cli4}', dst='${A.srv4}') / UDP(sport=sp, dport=9000) / b'flood')
t = time.time()
send(pk, verbose=0)
dt = time.time() - t
wrpcap(out, pk)
print('SENT %d %.3f' % (n, dt), flush=True)
`;

const STREAM_SRV = `require('net').createServer((s) => { const b = Buffer.alloc(8192, 120); const t = setInterval(() => { if (!s.destroyed) s.write(b); }, 25); s.on('error', () => {}); s.on('close', () => clearInterval(t)); }).listen(5001, '${A.srv4}', () => console.log('READY'));`;
const STREAM_CLI = `let n = 0; const c = require('net').connect(5001, '${A.srv4}'); c.on('data', (d) => { n += d.length; }); setInterval(() => console.log('BYTES ' + n), 100); c.on('close', () => { console.log('CLOSED'); process.exit(0); }); c.on('error', (e) => console.log('ERR ' + e.message));`;

function watch(child: ChildProcess) {
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  return {
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    async waitFor(re: RegExp, where: 'out' | 'err' = 'out', limitMs = 120_000): Promise<void> {
      const end = Date.now() + limitMs;
      for (;;) {
        if (re.test(where === 'out' ? out : err)) return;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${out}\n${err}`);
        if (Date.now() > end) throw new Error(`no ${re} within ${limitMs} ms:\n${out.slice(-2000)}\n${err.slice(-2000)}`);
        await sleep(50);
      }
    },
  };
}

/** Last "BYTES n" the stream client printed. */
function streamBytes(out: string): number {
  const m = out.match(/BYTES (\d+)\n(?![\s\S]*BYTES)/);
  return m ? Number(m[1]) : 0;
}

function rssKb(pid: number): number {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : NaN;
}

describe('floods through nfqwall run (nf_conntrack_max = 256)', { skip }, () => {
  let lab: Lab | undefined;
  let tmp = '';
  let daemon: ChildProcess | undefined;
  let dw: ReturnType<typeof watch>;
  let cliStream: ReturnType<typeof watch>;
  let rulesFile = '';
  const captures: string[] = [];
  const figures: string[] = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-flood-'));
    fs.chmodSync(tmp, 0o755);
    rulesFile = path.join(tmp, 'flood.rules');
    fs.writeFileSync(rulesFile, RULES);
    fs.writeFileSync(path.join(tmp, 'flood.py'), FLOOD_PY);
    lab = await Lab.create({ prefix: 'nfqf' });
    const ping = await lab.exec('cli', ['ping', '-c', '1', '-w', '10', A.srv4]);
    assert.equal(ping.code, 0, 'warm-up ping');
    const srv = watch(lab.spawn('srv', [process.execPath, '-e', STREAM_SRV], { cwd: ROOT }));
    await srv.waitFor(/READY/);
    daemon = lab.spawn(
      'gw',
      [
        'node',
        'bin/nfqwall.js',
        'run',
        '--rules',
        rulesFile,
        '--set',
        `net.netfilter.nf_conntrack_max=${MAX}`,
        '--queue',
        String(QUEUE),
        '--iptables',
        'auto',
        '--control',
        path.join(tmp, 'ctl.sock'),
      ],
      { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } },
    );
    dw = watch(daemon);
    await dw.waitFor(/"msg":"nfqwall started"/, 'err');
    cliStream = watch(lab.spawn('cli', [process.execPath, '-e', STREAM_CLI], { cwd: ROOT }));
    // the stream is established (and ASSURED: data flowed both ways) before any flood
    for (let i = 0; streamBytes(cliStream.out) < 64 * 1024; i++) {
      assert.ok(i < 1200, `stream did not start: ${cliStream.out.slice(-300)} ${dw.err.slice(-2000)}`);
      await sleep(50);
    }
  });

  after(async () => {
    try {
      if (figures.length) process.stderr.write(`flood figures:\n  ${figures.join('\n  ')}\n`);
      if (lab && daemon) await lab.kill(daemon, 'SIGTERM');
    } finally {
      try {
        if (lab) await lab.destroy();
      } finally {
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
  });

  /** `nfqwall conntrack ARGS` against the running daemon (its control socket). */
  const ctCli = (...args: string[]) =>
    lab!.exec('gw', [process.execPath, 'bin/nfqwall.js', 'conntrack', ...args, '--control', path.join(tmp, 'ctl.sock')], {
      cwd: ROOT,
      env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
    });
  /** -C and -S answers sampled while the floods ran. */
  const liveCounts: number[] = [];
  const liveDrops: number[] = [];

  async function flood(kind: 'syn' | 'udp', n: number, base: number): Promise<void> {
    const out = path.join(tmp, `${kind}-${base}.pcap`);
    const before = streamBytes(cliStream.out);
    let flooding = true;
    const sent = lab!.exec('cli', [PY, path.join(tmp, 'flood.py'), String(n), kind, out, String(base)], { timeoutMs: 550_000 }).finally(() => {
      flooding = false;
    });
    // operators ask while the flood runs: conntrack -C and -S answer, the count never above max
    let samples = 0;
    do {
      const [c, st] = await Promise.all([ctCli('-C'), ctCli('-S')]);
      assert.equal(c.code, 0, `conntrack -C during the ${kind} flood: ${c.stderr}`);
      assert.match(c.stdout, /^\d+\n$/);
      const count = Number(c.stdout);
      assert.ok(count <= MAX, `conntrack -C said ${count} > ${MAX} during the ${kind} flood`);
      liveCounts.push(count);
      assert.equal(st.code, 0, st.stderr);
      const drop = /\bdrop=(\d+)/.exec(st.stdout);
      assert.ok(drop && /\binsert=\d+ /.test(st.stdout) && /\bearly_drop=\d+ /.test(st.stdout), st.stdout);
      liveDrops.push(Number(drop[1]));
      samples++;
    } while (flooding);
    const r = await sent;
    assert.equal(r.code, 0, r.stderr);
    figures.push(`${kind} flood: conntrack -C/-S answered ${samples} times while it ran`);
    const m = r.stdout.match(/SENT (\d+) ([\d.]+)/);
    assert.ok(m, r.stdout);
    figures.push(`${kind} flood: ${n} new flows in ${m[2]} s (${Math.round(n / Number(m[2]))} pkt/s)`);
    captures.push(out);
    assert.equal(daemon!.exitCode, null, `daemon died: ${dw.err.slice(-3000)}`);
    // the established stream keeps delivering after the flood
    const target = streamBytes(cliStream.out) + 256 * 1024;
    for (let i = 0; streamBytes(cliStream.out) < target; i++) {
      assert.ok(!/CLOSED|ERR/.test(cliStream.out), `stream broke: ${cliStream.out.slice(-200)}`);
      assert.ok(i < 2400, `stream stalled after the ${kind} flood at ${streamBytes(cliStream.out)} (before ${before})`);
      await sleep(50);
    }
  }

  test(`SYN and UDP floods of ${MULT}× max new flows: stream survives, daemon alive, table-full logged, memory bounded`, T, async () => {
    const n = MULT * MAX;
    await flood('syn', n, 0);
    await flood('udp', n, 0);
    const rss1 = rssKb(daemon!.pid!);
    await flood('syn', n, 20000);
    await flood('udp', n, 20000);
    const rss2 = rssKb(daemon!.pid!);
    await flood('syn', n, 40000);
    await flood('udp', n, 40000);
    const rss3 = rssKb(daemon!.pid!);
    figures.push(`daemon RSS after floods 1, 2, 3: ${rss1} kB, ${rss2} kB, ${rss3} kB`);
    assert.equal(daemon!.exitCode, null);
    assert.match(dw.err, /nf_conntrack: table full, dropping packet/);
    assert.match(dw.err, /net_ratelimit: \d+ callbacks suppressed/);
    const fulls = dw.err.split('\n').filter((l) => l.includes('table full, dropping packet')).length;
    figures.push(`table-full lines logged: ${fulls} (the rest suppressed by the rate limit)`);
    // the live answers: the table was seen full, never above max; drop= only grows
    figures.push(
      `conntrack -C during the floods: ${liveCounts.length} answers, max ${Math.max(...liveCounts)}; -S drop= ${liveDrops[0]} → ${liveDrops[liveDrops.length - 1]}`,
    );
    assert.equal(Math.max(...liveCounts), MAX, 'conntrack -C saw the table full');
    for (let i = 1; i < liveDrops.length; i++) assert.ok(liveDrops[i] >= liveDrops[i - 1], `drop= went down: ${liveDrops.join(',')}`);
    assert.ok(liveDrops[liveDrops.length - 1] > 0, 'drops counted by conntrack -S');
    // a table bounded by max and typed arrays that only grow to max: the third round of
    // floods may not need noticeably more memory than the second (GC noise allowed)
    assert.ok(rss3 <= rss2 * 1.2 + 16 * 1024, `RSS grew from ${rss2} kB to ${rss3} kB`);
  });

  test('the same floods replayed through a Firewall with the same rules and max: count never above max', T, () => {
    assert.ok(captures.length >= 2, 'floods ran');
    const loaded = loadRuleFile(rulesFile, { log: () => {} });
    assert.ok(loaded.rules, loaded.errors.join('\n'));
    const tun = defaultTunables();
    tun.nf_conntrack_max = MAX;
    const warns: string[] = [];
    const fw = new Firewall({ tun, rules: loaded.rules!, log: { warn: (m) => warns.push(m), info: () => {}, debug: () => {} } });
    let peak = 0;
    let pkts = 0;
    let now = 1000;
    for (const file of captures) {
      const cap = readCaptureFile(file);
      assert.equal(cap.error, null);
      for (const p of cap.packets) {
        fw.decide(p.data, 0, p.data.length, p.origLen, NF_INET_FORWARD, p.data[0] >> 4 === 6 ? 6 : 4, 2, 3, 0, 0, now);
        now += 0.05;
        pkts++;
        if (fw.ct.count > peak) peak = fw.ct.count;
        assert.ok(fw.ct.count <= MAX, `count ${fw.ct.count} > ${MAX} after packet ${pkts}`);
      }
      fw.tick(now);
    }
    assert.equal(peak, MAX, 'the table was full');
    assert.ok(warns.some((w) => w.includes('table full')));
    assert.deepEqual(checkConntrack(fw.ct), []);
    figures.push(`replay: ${pkts} packets, peak ${peak} entries, drops ${fw.ct.stats.drop}, early_drop ${fw.ct.stats.early_drop}`);
  });
});
