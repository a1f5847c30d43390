/**
 * nfqwall.per_source_max end to end: through a lab gateway running
 * `nfqwall run --rules FILE --set nfqwall.per_source_max=20`, source B (198.18.1.2)
 * holds 10 connections; source A (198.18.1.1) then tries to open 60. A gets at most 20,
 * B's 10 connections keep working, B and a third source C (198.18.1.3) can still open
 * new ones: one source cannot push another's connections out, nor lock it out.
 * Needs root; unique namespaces; torn down in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';

const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : false;
if (skip) process.stderr.write(`per-source e2e skipped: ${skip}\n`);

const LIMIT = 20;
const T = { timeout: 180_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 198.18.1.0/24 -d 198.19.2.1/32 -p tcp -m tcp --dport 5002 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

const ECHO_SRV = `require('net').createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); }).listen(5002, '${A.srv4}', () => console.log('READY'));`;

/** Opens N connections from LOCAL (4 s connect timeout each), prints OPEN k; on each stdin line pings every open one, prints ECHO m. */
const CLIENT = `
const net = require('net');
const [local, n] = [process.argv[1], Number(process.argv[2])];
const open = [];
let settled = 0;
for (let i = 0; i < n; i++) {
  const c = net.connect({ host: '${A.srv4}', port: 5002, localAddress: local });
  const t = setTimeout(() => { c.destroy(); done(); }, 4000);
  c.once('connect', () => { clearTimeout(t); open.push(c); done(); });
  c.on('error', () => { clearTimeout(t); done(); });
}
function done() { if (++settled === n) console.log('OPEN ' + open.length); }
require('readline').createInterface({ input: process.stdin }).on('line', () => {
  let got = 0, left = open.length;
  if (left === 0) return console.log('ECHO 0');
  const t = setTimeout(() => console.log('ECHO ' + got), 4000);
  for (const c of open) {
    c.once('data', () => { got++; if (--left === 0) { clearTimeout(t); console.log('ECHO ' + got); } });
    c.write('x');
  }
});
`;

function watch(child: ChildProcess) {
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  return {
    child,
    get out() {
      return out;
    },
    async next(re: RegExp, from: number): Promise<RegExpMatchArray> {
      for (let i = 0; ; i++) {
        const m = out.slice(from).match(re);
        if (m) return m;
        if (child.exitCode !== null) throw new Error(`exited: ${out}`);
        if (i > 1200) throw new Error(`no ${re}: ${out}`);
        await sleep(50);
      }
    },
  };
}

describe('per-source limit through nfqwall run', { skip }, () => {
  let lab: Lab | undefined;
  let tmp = '';
  let daemon: ChildProcess | undefined;
  let derr = '';
  const clients: ChildProcess[] = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-persrc-'));
    fs.chmodSync(tmp, 0o755);
    fs.writeFileSync(path.join(tmp, 'ps.rules'), RULES);
    lab = await Lab.create({ prefix: 'nfqp' });
    for (const a of ['198.18.1.2', '198.18.1.3']) await lab.exec('cli', ['ip', 'addr', 'add', `${a}/24`, 'dev', 'c0'], { check: true });
    const ping = await lab.exec('cli', ['ping', '-c', '1', '-w', '10', A.srv4]);
    assert.equal(ping.code, 0);
    const srv = watch(lab.spawn('srv', [process.execPath, '-e', ECHO_SRV], { cwd: ROOT }));
    await srv.next(/READY/, 0);
    daemon = lab.spawn(
      'gw',
      [
        'node',
        'bin/nfqwall.js',
        'run',
        '--rules',
        path.join(tmp, 'ps.rules'),
        '--set',
        `nfqwall.per_source_max=${LIMIT}`,
        '--queue',
        '24',
        '--iptables',
        'auto',
        '--control',
        path.join(tmp, 'ctl.sock'),
      ],
      { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } },
    );
    daemon.stderr?.on('data', (b: Buffer) => (derr += b.toString()));
    for (let i = 0; !derr.includes('"msg":"nfqwall started"'); i++) {
      assert.ok(i < 1200 && daemon.exitCode === null, `daemon did not start: ${derr}`);
      await sleep(50);
    }
  });

  after(async () => {
    try {
      for (const c of clients) if (lab && c.exitCode === null) await lab.kill(c, 'SIGTERM', 2000);
      if (lab && daemon) await lab.kill(daemon, 'SIGTERM');
    } finally {
      try {
        if (lab) await lab.destroy();
      } finally {
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
  });

  function client(local: string, n: number) {
    const c = lab!.spawn('cli', [process.execPath, '-e', CLIENT, local, String(n)], { cwd: ROOT });
    clients.push(c);
    return watch(c);
  }
  async function ping(w: ReturnType<typeof watch>): Promise<number> {
    const from = w.out.length;
    w.child.stdin!.write('ping\n');
    return Number((await w.next(/ECHO (\d+)/, from))[1]);
  }

  test(`source A beyond per_source_max=${LIMIT} cannot push out or lock out source B`, T, async () => {
    const b = client('198.18.1.2', 10);
    assert.equal(Number((await b.next(/OPEN (\d+)/, 0))[1]), 10, 'B opens its 10');
    assert.equal(await ping(b), 10);
    const a = client(A.cli4, 60);
    const aOpen = Number((await a.next(/OPEN (\d+)/, 0))[1]);
    assert.ok(aOpen <= LIMIT, `A opened ${aOpen} > ${LIMIT}`);
    assert.ok(aOpen >= LIMIT - 2, `A opened only ${aOpen}: the limit, not something else, stopped it`);
    assert.equal(await ping(a), aOpen, "A's admitted connections work");
    // B's connections were not pushed out
    assert.equal(await ping(b), 10, "B's connections survived A's flood");
    // B and C can still open new ones while A sits at its limit
    const b2 = client('198.18.1.2', 5);
    assert.equal(Number((await b2.next(/OPEN (\d+)/, 0))[1]), 5, 'B can open more');
    const c = client('198.18.1.3', 5);
    assert.equal(Number((await c.next(/OPEN (\d+)/, 0))[1]), 5, 'C is not locked out');
    // A is still refused
    const a2 = client(A.cli4, 3);
    assert.equal(Number((await a2.next(/OPEN (\d+)/, 0))[1]), 0, 'A stays at its limit');
    assert.equal(daemon!.exitCode, null);
    assert.match(derr, /nfqwall: per-source limit reached, dropping packet/);
  });
});
