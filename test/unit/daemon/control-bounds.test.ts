/**
 * Bounds of the control socket (issue #18 point 5): a cap on the connections served at once
 * (beyond it a clear error, then the connection is closed), memory given back when 1000 clients
 * that never read their listing leave, and the default socket directory (/run/nfqwall) kept
 * 0700 and owned by the daemon's user (ensurePrivateDir, tried on temporary directories).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import pino from 'pino';
import { Conntrack } from '../../../src/conntrack/core';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { TUPLE_WORDS } from '../../../src/conntrack/layout';
import { ControlServer, DEFAULT_MAX_SESSIONS, ensurePrivateDir, type ControlTarget } from '../../../src/daemon/control';
import { request } from '../../../src/cli/client';

const NOW = 1_000_000;
const N = 1_000;
const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function target(): ControlTarget {
  const tun = defaultTunables(1 << 30);
  tun.nf_conntrack_max = 4096;
  const ct = new Conntrack(tun);
  for (let i = 0; i < N; i++) {
    const t = new Array(TUPLE_WORDS).fill(0);
    t[0] = (4 << 8) | 17;
    t[1] = (0xc6120000 + (i >> 8)) >>> 0;
    t[5] = 0xc6130201;
    t[9] = (((10000 + (i & 0xff)) << 16) | 5300) >>> 0;
    assert.ok(ct.importEntry({ tuple: t, status: 0, timeoutMs: 600_000, ageMs: 0, mark: 0, helper: '', proto: [] }, NOW) >= 0);
  }
  return { tun, fw: { ct }, rules: { format: () => '' }, reload: () => ({ ok: true, errors: [] }) };
}

const liveSessions = (server: ControlServer) => (server as unknown as { sessions: Set<unknown> }).sessions.size;
async function until(fn: () => boolean, what: string) {
  for (let i = 0; i < 800; i++) {
    if (fn()) return;
    await sleep(25);
  }
  assert.fail(`gave up waiting: ${what}`);
}

/**
 * A client that asks for the extended listing and never reads it (paused); resolves once
 * connected. refusal() reads what the server sent until it closes (for the refused ones). A
 * connect() the listen backlog refuses (EAGAIN) is tried again.
 */
function nonReader(sock: string): Promise<{ c: net.Socket; refusal: () => Promise<string> }> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    let connected = false;
    const refusal = () =>
      new Promise<string>((r) => {
        let got = '';
        c.on('data', (d) => (got += d.toString()));
        c.on('close', () => r(got));
        c.resume();
      });
    c.on('error', () => {
      if (!connected) void sleep(10).then(() => nonReader(sock).then(resolve));
    });
    c.on('connect', () => {
      connected = true;
      c.pause();
      c.write('{"op":"ct.list","extended":true}\n');
      resolve({ c, refusal });
    });
  });
}

/** n non-readers, connected 50 at a time (a unix socket refuses connect() with EAGAIN beyond the listen backlog) */
async function nonReaders(sock: string, n: number): Promise<Awaited<ReturnType<typeof nonReader>>[]> {
  const out: Awaited<ReturnType<typeof nonReader>>[] = [];
  while (out.length < n) out.push(...(await Promise.all(Array.from({ length: Math.min(50, n - out.length) }, () => nonReader(sock)))));
  return out;
}

interface Mem {
  /** JS heap in use */
  heap: number;
  /** memory outside the heap (socket buffers, Buffers) */
  buffers: number;
}
const memory = (): Mem => {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.external };
};

describe('control socket bounds', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-ctlb-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test(`at most --control-max-clients (default ${DEFAULT_MAX_SESSIONS}) connections are served; more get an error and are closed`, async () => {
    const sock = path.join(dir, 'cap.sock');
    const server = new ControlServer({ path: sock, target: target(), log, now: () => NOW });
    assert.equal(server.maxSessions, DEFAULT_MAX_SESSIONS);
    await server.listen();
    const clients: net.Socket[] = [];
    try {
      const held = await nonReaders(sock, 1000);
      clients.push(...held.map((h) => h.c));
      await until(() => server.counters.connections === 1000, '1000 connections accepted');
      assert.equal(liveSessions(server), DEFAULT_MAX_SESSIONS);
      assert.equal(server.counters.refusedConnections, 1000 - DEFAULT_MAX_SESSIONS);
      // a client beyond the cap learns why
      const beyond = await request(sock, { op: 'ct.count' });
      assert.equal(beyond.ok, false);
      assert.match(String(beyond.error), /^too many control connections \(limit 128, --control-max-clients\)$/);
      const refused = held.slice(DEFAULT_MAX_SESSIONS);
      const answers = await Promise.all(refused.map((h) => h.refusal()));
      for (const a of answers) assert.match(a, /^\{"ok":false,"error":"too many control connections/);
      for (const c of clients) c.destroy();
      await until(() => liveSessions(server) === 0, 'sessions released');
      assert.equal((await request(sock, { op: 'ct.count' })).count, N, 'served again once they left');
    } finally {
      for (const c of clients) c.destroy();
      await server.close();
    }
  });

  test('1000 clients that never read their listing: the heap comes back once they leave, and nothing accumulates round after round', async () => {
    const sock = path.join(dir, 'mem.sock');
    const server = new ControlServer({ path: sock, target: target(), log, now: () => NOW, maxSessions: 1000 });
    await server.listen();
    const mb = (x: number) => (x / 1048576).toFixed(1);
    try {
      const rounds: { base: Mem; peak: Mem; left: Mem }[] = [];
      for (let round = 0; round < 2; round++) {
        const base = memory();
        const held = await nonReaders(sock, 1000);
        await until(() => liveSessions(server) === 1000, '1000 sessions');
        const peak = memory();
        for (const h of held) h.c.destroy();
        await until(() => liveSessions(server) === 0, 'sessions released');
        rounds.push({ base, peak, left: memory() });
      }
      const figures = rounds
        .map(
          (r, i) =>
            `round ${i}: heap ${mb(r.base.heap)} -> ${mb(r.peak.heap)} -> ${mb(r.left.heap)} MB, buffers ${mb(r.base.buffers)} -> ${mb(r.peak.buffers)} -> ${mb(r.left.buffers)} MB`,
        )
        .join('; ');
      // generous bounds from the measured baseline: what 1000 held listings cost must not stay
      for (const r of rounds) assert.ok(r.left.heap < rounds[0].base.heap * 1.5 + (4 << 20), figures);
      const total = (m: Mem) => m.heap + m.buffers;
      assert.ok(total(rounds[1].left) < total(rounds[0].left) * 1.25 + (4 << 20), figures);
    } finally {
      await server.close();
    }
  });
});

describe('the default socket directory (ensurePrivateDir)', { skip: process.getuid?.() !== 0 && 'needs root (chown)' }, () => {
  let base: string;
  before(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-rundir-'));
  });
  after(() => fs.rmSync(base, { recursive: true, force: true }));
  const warnings: string[] = [];
  const wlog = { warn: (_o: object, msg: string) => warnings.push(msg) } as unknown as Parameters<typeof ensurePrivateDir>[1];

  test('created 0700; an existing 0755 one is set back to 0700 with a warning', () => {
    const d = path.join(base, 'made');
    ensurePrivateDir(d, wlog);
    assert.equal(fs.statSync(d).mode & 0o7777, 0o700);
    assert.deepEqual(warnings, []);
    fs.chmodSync(d, 0o755);
    ensurePrivateDir(d, wlog);
    assert.equal(fs.statSync(d).mode & 0o7777, 0o700);
    assert.match(warnings[0], /had mode 755: set to 700/);
  });

  test('owned by another user, a link or a file: refused', () => {
    const theirs = path.join(base, 'theirs');
    fs.mkdirSync(theirs, { mode: 0o700 });
    fs.chownSync(theirs, 65534, 65534);
    assert.throws(() => ensurePrivateDir(theirs, wlog), /theirs is owned by uid 65534, not by uid 0 that runs nfqwall/);
    const link = path.join(base, 'link');
    fs.symlinkSync(theirs, link);
    assert.throws(() => ensurePrivateDir(link, wlog), /link is not a directory/);
    const file = path.join(base, 'file');
    fs.writeFileSync(file, '');
    assert.throws(() => ensurePrivateDir(file, wlog), /file is not a directory/);
  });
});
