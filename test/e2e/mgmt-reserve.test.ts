/**
 * Management stays reachable under a flood (issue #18 point 4): a lab gateway runs
 * `nfqwall run --metrics GW:9100 --set net.netfilter.nf_conntrack_max=256`; the client
 * namespace fills the table with established (ASSURED) connections through it, then floods
 * new UDP flows through it (10× max before the scrapes, at least 10× max more while they
 * run) and scrapes the metrics listener over TCP, 11 scrapes at once.
 *
 * With `--set nfqwall.mgmt_reserve=64 --set nfqwall.mgmt_port=9100` every scrape succeeds
 * and the other flows stop at max - reserve (checked: table-full drops while the scrapes run);
 * without them (the control case, same traffic) every scrape fails. ASSURED entries are what
 * neither early drop nor the GC evicts, so the table stays full for as long as they are held:
 * the outcome depends on the table, not on timing (curl's --max-time only ends the scrapes a
 * full table blocks). The UDP entries live an hour (nfqwall's own nf_conntrack_udp_timeout
 * via --set); no global sysctl is touched.
 * Needs root; unique namespaces; after() tears everything down even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { watch, type Watched } from '../helpers/watch';
import { mgmtFloodRules } from '../helpers/flood-lab';

const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const isRoot = process.getuid?.() === 0;
const hasCurl = fs.existsSync('/usr/bin/curl');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : !hasCurl ? 'no /usr/bin/curl' : false;
if (skip) process.stderr.write(`mgmt-reserve e2e skipped: ${skip}\n`);

const MAX = 256;
const RESERVE = 64;
const PORT = 9100;
const SCRAPES = 11;
const T = { timeout: 600_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const RULES = mgmtFloodRules(PORT);

/**
 * New UDP flows from the client to srv:9000, one source port each (cycling 1024..65023 from
 * `base`): at least n datagrams, and on until the stop file exists (when one is given).
 */
const FLOOD_PY = `
import os, socket, sys
n, base, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
i = 0
while i < n or (stop != '-' and not os.path.exists(stop)):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('${A.cli4}', 1024 + (base + i) % 64000))
    s.sendto(b'flood', ('${A.srv4}', 9000))
    s.close()
    i += 1
print('SENT %d' % i, flush=True)
`;

/** Holds every connection it accepts on srv:7000. */
const HOLD_SRV = `const held = []; require('net').createServer((s) => { held.push(s); s.on('error', () => {}); }).listen(7000, '${A.srv4}', () => console.log('READY'));`;
/** Opens N connections to srv:7000 and keeps them (those the full table refuses stay pending). */
const HOLD_CLI = `const n = Number(process.argv[1]); let open = 0; const keep = []; for (let i = 0; i < n; i++) { const c = require('net').connect(7000, '${A.srv4}'); keep.push(c); c.on('connect', () => console.log('OPEN ' + ++open)); c.on('error', () => {}); }`;

describe('management traffic under a new-flow flood (nf_conntrack_max = 256)', { skip }, () => {
  let lab: Lab | undefined;
  let tmp = '';
  const figures: string[] = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-mgmt-'));
    fs.chmodSync(tmp, 0o755);
    fs.writeFileSync(path.join(tmp, 'mgmt.rules'), RULES);
    fs.writeFileSync(path.join(tmp, 'flood.py'), FLOOD_PY);
    lab = await Lab.create({ prefix: 'nfqm' });
    const srv = watch(lab.spawn('srv', [process.execPath, '-e', HOLD_SRV], { cwd: ROOT }));
    await srv.waitFor(/READY/);
  });

  after(async () => {
    try {
      if (figures.length) process.stderr.write(`mgmt-reserve figures:\n  ${figures.join('\n  ')}\n`);
    } finally {
      try {
        if (lab) await lab.destroy();
      } finally {
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
  });

  const env = { ...process.env, NFQWALL_FROM_SOURCE: '1' };
  const ctCount = async (sock: string): Promise<number> => {
    const r = await lab!.exec('gw', [process.execPath, 'bin/nfqwall.js', 'conntrack', '-C', '--control', sock], { cwd: ROOT, env });
    assert.equal(r.code, 0, r.stderr);
    return Number(r.stdout);
  };
  const ctDrops = async (sock: string): Promise<number> => {
    const r = await lab!.exec('gw', [process.execPath, 'bin/nfqwall.js', 'conntrack', '-S', '--control', sock], { cwd: ROOT, env });
    assert.equal(r.code, 0, r.stderr);
    const m = /\bdrop=(\d+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    return Number(m[1]);
  };
  const ctAssured = async (sock: string): Promise<number> => {
    const r = await lab!.exec('gw', [process.execPath, 'bin/nfqwall.js', 'conntrack', '-L', '--control', sock], { cwd: ROOT, env });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l.includes('dport=7000') && l.includes('[ASSURED]')).length;
  };
  const scrape = () =>
    lab!.exec('cli', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '30', `http://${A.gwCli4}:${PORT}/metrics`], {
      timeoutMs: 120_000,
    });

  /** Starts a daemon (with or without the reserve), floods, scrapes during a second flood; returns successful scrapes. */
  async function run(label: string, reserve: boolean): Promise<{ ok: number; count: number }> {
    const sock = path.join(tmp, `${label}.sock`);
    const stop = path.join(tmp, `${label}.stop`);
    const args = ['node', 'bin/nfqwall.js', 'run', '--rules', path.join(tmp, 'mgmt.rules'), '--queue', '24', '--iptables', 'auto'];
    args.push('--control', sock, '--metrics', `${A.gwCli4}:${PORT}`);
    for (const s of [`net.netfilter.nf_conntrack_max=${MAX}`, 'net.netfilter.nf_conntrack_buckets=65536', 'net.netfilter.nf_conntrack_udp_timeout=3600'])
      args.push('--set', s);
    if (reserve) args.push('--set', `nfqwall.mgmt_reserve=${RESERVE}`, '--set', `nfqwall.mgmt_port=${PORT}`);
    let hold: Watched | undefined;
    const daemon: Watched = watch(lab!.spawn('gw', args, { cwd: ROOT, env }), { timeoutMs: 120_000 });
    try {
      await daemon.waitFor(/"msg":"nfqwall started"/, 'err');
      // established (ASSURED) connections fill the table to its limit: early drop and the GC
      // evict only unassured entries, so it stays full for as long as they are held
      const limit = reserve ? MAX - RESERVE : MAX;
      hold = watch(lab!.spawn('cli', [process.execPath, '-e', HOLD_CLI, String(MAX + 16)], { cwd: ROOT }), { timeoutMs: 120_000 });
      await hold.waitFor(new RegExp(`OPEN ${limit}\n`));
      for (let i = 0; (await ctAssured(sock)) < limit; i++) {
        assert.ok(i < 600, `${label}: the held connections did not become ASSURED`);
        await sleep(100);
      }
      // then new UDP flows at 10× max: every one is refused (table full, nothing to evict)
      const first = await lab!.exec('cli', ['python3', path.join(tmp, 'flood.py'), String(10 * MAX), '0', '-'], { timeoutMs: 300_000 });
      assert.equal(first.code, 0, first.stderr);
      const drop0 = await ctDrops(sock);
      assert.ok(drop0 > 0, `${label}: the first flood did not fill the table`);
      assert.equal(await ctCount(sock), limit, `${label}: the table is at its limit`);
      const second = lab!.exec('cli', ['python3', path.join(tmp, 'flood.py'), String(10 * MAX), '20000', stop], { timeoutMs: 300_000 });
      const codes = (await Promise.all(Array.from({ length: SCRAPES }, scrape))).map((r) => r.stdout.trim());
      fs.writeFileSync(stop, '');
      const sent = await second;
      assert.equal(sent.code, 0, sent.stderr);
      const n = Number(/SENT (\d+)/.exec(sent.stdout)?.[1]);
      assert.ok(n >= 10 * MAX, `second flood sent ${n}`);
      const ok = codes.filter((c) => c === '200').length;
      const count = await ctCount(sock);
      const drops = (await ctDrops(sock)) - drop0;
      figures.push(
        `${label}: ${ok} of ${SCRAPES} scrapes answered (${10 * MAX} + ${n} flood datagrams, ${drops} table-full drops while scraping; table ${count} of ${MAX}; codes ${codes.join(',')})`,
      );
      assert.ok(drops > 0, `${label}: the table was not full while the scrapes ran`);
      assert.equal(daemon.child.exitCode, null, `daemon died: ${daemon.err.slice(-2000)}`);
      return { ok, count };
    } finally {
      if (hold) await lab!.kill(hold.child, 'SIGKILL');
      await lab!.kill(daemon.child, 'SIGTERM');
    }
  }

  test(`with nfqwall.mgmt_reserve=${RESERVE}, mgmt_port=${PORT}: every scrape during the flood succeeds`, T, async () => {
    const r = await run('reserve', true);
    assert.equal(r.ok, SCRAPES, `${SCRAPES - r.ok} of ${SCRAPES} scrapes failed`);
    assert.ok(r.count <= MAX);
  });

  test('without the reserve (the control case): the same flood makes every scrape fail', T, async () => {
    const r = await run('no reserve', false);
    assert.equal(r.ok, 0, 'a scrape got an entry in a table full of ASSURED entries');
    assert.equal(r.count, MAX);
  });
});
