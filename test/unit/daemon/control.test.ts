/**
 * The control socket against a real Conntrack filled with synthetic UDP entries: listings
 * and filters, deletes, sysctl, streaming in chunks, and requests that must not hurt the
 * server (garbage, oversized, unknown op, a client that leaves mid-stream, a live socket).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Conntrack } from '../../../src/conntrack/core';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { TUPLE_WORDS } from '../../../src/conntrack/layout';
import { ControlServer, MAX_REQUEST, parseAddr, type ControlTarget } from '../../../src/daemon/control';
import { request } from '../../../src/cli/client';
import { engineFor, forward } from '../rules/util';

const NOW = 1_000_000;
const log = pino({ level: 'silent' });

function udpTuple(src: number, dst: number, sport: number, dport: number): number[] {
  const t = new Array(TUPLE_WORDS).fill(0);
  t[0] = (4 << 8) | 17;
  t[1] = src >>> 0;
  t[5] = dst >>> 0;
  t[9] = ((sport << 16) | dport) >>> 0;
  return t;
}
const ip = (s: string) => parseAddr(s).words[0];

function makeTarget(n: number): { target: ControlTarget; ct: Conntrack; reloads: number[] } {
  const tun = defaultTunables(1 << 30);
  tun.nf_conntrack_max = 1 << 20;
  const ct = new Conntrack(tun);
  for (let i = 0; i < n; i++) {
    const src = i % 2 === 0 ? ip('198.18.1.1') : ip('198.18.1.2');
    const e = ct.importEntry(
      {
        tuple: udpTuple(src, ip('198.19.2.1'), 10000 + (i % 50000), i % 3 === 0 ? 53 : 5300),
        status: 0,
        timeoutMs: 30_000,
        ageMs: 0,
        mark: 0,
        helper: '',
        proto: [],
      },
      NOW,
    );
    assert.ok(e >= 0);
  }
  const reloads: number[] = [];
  const target: ControlTarget = {
    tun,
    fw: { ct },
    rules: { format: (v: boolean) => (v ? '*filter\n[1:2] -A FORWARD -j ACCEPT\nCOMMIT\n' : '*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n') },
    reload: () => {
      reloads.push(1);
      return reloads.length % 2 === 1 ? { ok: false, errors: ['x.rules:3:7: bad'] } : { ok: true, errors: [] };
    },
  };
  return { target, ct, reloads };
}

/** Sends raw bytes, collects everything until the server closes or `lines` lines arrived. */
function raw(sockPath: string, data: string | Buffer, lines = 1): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sockPath);
    let buf = '';
    c.on('connect', () => c.write(data));
    c.on('data', (d) => {
      buf += d.toString();
      const got = buf.split('\n').filter(Boolean);
      if (got.length >= lines) {
        c.destroy();
        resolve(got);
      }
    });
    c.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? resolve(buf.split('\n').filter(Boolean)) : reject(e)));
    c.on('close', () => resolve(buf.split('\n').filter(Boolean)));
  });
}

describe('control socket', () => {
  let dir: string;
  let sock: string;
  let server: ControlServer;
  let ctx: ReturnType<typeof makeTarget>;
  const N = 5000;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-ctl-'));
    sock = path.join(dir, 'sub', 'ctl.sock');
    ctx = makeTarget(N);
    server = new ControlServer({ path: sock, target: ctx.target, log, now: () => NOW, chunk: 256 });
    await server.listen();
  });
  after(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('socket is 0600 in a 0700 directory', () => {
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(sock)).mode & 0o777, 0o700);
    assert.ok(fs.statSync(sock).isSocket());
  });

  test('list streams every entry in chunks, in conntrack -L format', async () => {
    const chunks: number[] = [];
    const lines: string[] = [];
    const r = await request(sock, { op: 'ct.list' }, (l) => {
      chunks.push(l.length);
      lines.push(...l);
    });
    assert.equal(r.ok, true);
    assert.equal(r.count, N);
    assert.equal(lines.length, N);
    assert.ok(chunks.length > 1, 'more than one chunk');
    for (const l of lines)
      assert.match(
        l,
        /^udp {6}17 30 src=198\.18\.1\.[12] dst=198\.19\.2\.1 sport=\d+ dport=(53|5300) \[UNREPLIED\] src=198\.19\.2\.1 dst=198\.18\.1\.[12] sport=(53|5300) dport=\d+ mark=0 use=1$/,
      );
  });

  test('recent: the list names, a list as /proc/net/xt_recent/NAME, and writes to it', async () => {
    engineFor(forward('-m recent --rcheck --name CTLTEST -j ACCEPT'));
    assert.deepEqual((await request(sock, { op: 'recent' }, () => {})).names, ['CTLTEST']);
    assert.equal((await request(sock, { op: 'recent', name: 'CTLTEST', write: '+198.18.1.9' }, () => {})).ok, true);
    const lines: string[] = [];
    await request(sock, { op: 'recent', name: 'CTLTEST' }, (l) => lines.push(...l));
    assert.deepEqual(lines, [`src=198.18.1.9 ttl: 0 last_seen: ${NOW} oldest_pkt: 1 ${NOW}`]);
    const bad = await request(sock, { op: 'recent', name: 'CTLTEST', write: '198.18.1.9' }, () => {});
    assert.equal(bad.ok, false);
    assert.match(String(bad.error), /need "\+ADDR", "-ADDR" or "\/"/);
    assert.equal((await request(sock, { op: 'recent', name: 'NOSUCH' }, () => {})).ok, false);
    assert.equal((await request(sock, { op: 'recent', name: 'CTLTEST', write: '/' }, () => {})).ok, true);
    const after: string[] = [];
    await request(sock, { op: 'recent', name: 'CTLTEST' }, (l) => after.push(...l));
    assert.deepEqual(after, []);
  });

  test('filters apply to the ORIG tuple', async () => {
    const count = async (filter: object) => {
      const r = await request(sock, { op: 'ct.list', filter }, () => {});
      assert.equal(r.ok, true, String(r.error));
      return r.count as number;
    };
    assert.equal(await count({ src: '198.18.1.1' }), N / 2);
    assert.equal(await count({ src: '198.18.1.0/24' }), N);
    assert.equal(await count({ src: '198.19.2.1' }), 0);
    assert.equal(await count({ replySrc: '198.19.2.1' }), N);
    assert.equal(await count({ dst: '198.19.2.1', dport: 53 }), Math.ceil(N / 3));
    assert.equal(await count({ proto: 6 }), 0);
    assert.equal(await count({ family: 6 }), 0);
    assert.equal(await count({ sport: 10000 }), 1);
    const bad = await request(sock, { op: 'ct.list', filter: { src: 'not-an-address' } });
    assert.equal(bad.ok, false);
    assert.match(String(bad.error), /bad address/);
  });

  test('garbage, unknown op and oversized requests get an error; the server keeps serving', async () => {
    const g = await raw(sock, 'this is not json\n');
    assert.equal(JSON.parse(g[0]).ok, false);
    assert.match(JSON.parse(g[0]).error, /malformed/);
    const u = await raw(sock, '{"op":"nope"}\n');
    assert.match(JSON.parse(u[0]).error, /unknown op/);
    const arr = await raw(sock, '[1,2]\n');
    assert.match(JSON.parse(arr[0]).error, /JSON object/);
    const big = await raw(sock, Buffer.alloc(MAX_REQUEST + 10, 'a'));
    assert.match(JSON.parse(big[0]).error, /too large/);
    // two requests on one connection are answered in order
    const two = await raw(sock, '{"op":"ct.count"}\n{"op":"ping"}\n', 2);
    assert.equal(JSON.parse(two[0]).count, N);
    assert.equal(JSON.parse(two[1]).pid, process.pid);
    assert.equal((await request(sock, { op: 'ping' })).ok, true);
  });

  test('a client that leaves mid-stream ends its listing; others are served', async () => {
    await new Promise<void>((resolve) => {
      const c = net.connect(sock);
      c.on('connect', () => c.write('{"op":"ct.list"}\n'));
      c.once('data', () => {
        c.destroy();
        resolve();
      });
    });
    const parallel = await Promise.all([
      request(sock, { op: 'ct.count' }),
      request(sock, { op: 'ct.list', filter: { sport: 10001 } }, () => {}),
      request(sock, { op: 'ping' }),
    ]);
    assert.deepEqual(
      parallel.map((r) => r.ok),
      [true, true, true],
    );
    assert.equal(parallel[0].count, N);
    assert.equal(parallel[1].count, 1);
  });

  test('sysctl get/set through Conntrack.setTunable (buckets rehash)', async () => {
    const all = await request(sock, { op: 'sysctl.get' });
    const values = new Map(all.values as [string, number][]);
    assert.equal(values.get('net.netfilter.nf_conntrack_count'), N);
    assert.ok(values.has('nfqwall.per_source_max'));
    const set = await request(sock, { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_buckets', value: '1024' });
    assert.equal(set.ok, true, String(set.error));
    assert.equal(ctx.ct.table.nbuckets, 1024);
    const r = await request(sock, { op: 'ct.list' }, () => {});
    assert.equal(r.count, N);
    const shrink = await request(sock, { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_max', value: '10' });
    assert.equal(shrink.ok, true);
    assert.equal(ctx.ct.count, N, 'shrinking max drops nothing at once');
    assert.equal((await request(sock, { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_count', value: '1' })).ok, false);
    assert.match(String((await request(sock, { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_max', value: 'x' })).error), /invalid value/);
    assert.match(String((await request(sock, { op: 'sysctl.get', name: 'net.nope' })).error), /unknown tunable/);
  });

  test('rules, reload errors', async () => {
    const lines: string[] = [];
    assert.equal((await request(sock, { op: 'rules.list', verbose: true }, (l) => lines.push(...l))).ok, true);
    assert.deepEqual(lines, ['*filter', '[1:2] -A FORWARD -j ACCEPT', 'COMMIT']);
    const bad = await request(sock, { op: 'reload' });
    assert.equal(bad.ok, false);
    assert.deepEqual(bad.errors, ['x.rules:3:7: bad']);
    assert.equal((await request(sock, { op: 'reload' })).ok, true);
  });

  test('a second server on a live socket is refused; a stale socket file is replaced', async () => {
    const other = new ControlServer({ path: sock, target: ctx.target, log });
    await assert.rejects(other.listen(), /another nfqwall daemon is listening/);
    // a stale socket: bound by a server that is gone without unlinking
    const stale = path.join(dir, 'stale.sock');
    // a process that bound the path and died leaves the file behind
    execFileSync('/usr/bin/python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)', stale]);
    assert.ok(fs.existsSync(stale));
    const fresh = new ControlServer({ path: stale, target: ctx.target, log });
    await fresh.listen();
    assert.equal((await request(stale, { op: 'ping' })).ok, true);
    await fresh.close();
    assert.equal(fs.existsSync(stale), false);
    // not a socket: never replaced
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, 'x');
    await assert.rejects(new ControlServer({ path: file, target: ctx.target, log }).listen(), /not a socket/);
  });

  test('delete and flush', async () => {
    const deleted: string[] = [];
    const d = await request(sock, { op: 'ct.delete', filter: { src: '198.18.1.2' } }, (l) => deleted.push(...l));
    assert.equal(d.count, N / 2);
    assert.equal(deleted.length, N / 2);
    assert.equal(ctx.ct.count, N / 2);
    const f = await request(sock, { op: 'ct.flush' });
    assert.equal(f.count, N / 2);
    assert.equal(ctx.ct.count, 0);
  });

  test('client: a clear message when no daemon listens', async () => {
    await assert.rejects(request(path.join(dir, 'none.sock'), { op: 'ping' }), /no nfqwall daemon is listening on .*none\.sock/);
  });
});
