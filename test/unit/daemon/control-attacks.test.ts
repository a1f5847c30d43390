/**
 * Adversarial clients of the control socket (issue #9), against a real ControlServer over a
 * real Conntrack with 8 000 entries: oversized requests (a 10 MB line without a newline, a
 * 10 MB JSON document), malformed JSON, unknown ops and wrongly typed arguments (answered
 * with errors, nothing changed), 50 concurrent listings (all complete), slow readers that
 * never read a listing (bounded buffering, the event loop keeps turning, others served),
 * clients that pipeline requests without reading answers (reading paused, memory bounded),
 * and clients that leave mid-stream (sessions released).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Conntrack } from '../../../src/conntrack/core';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { TUPLE_WORDS } from '../../../src/conntrack/layout';
import { ControlServer, MAX_PENDING, parseAddr, type ControlTarget } from '../../../src/daemon/control';
import { request } from '../../../src/cli/client';

const NOW = 1_000_000;
const N = 8_000;
const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ip = (s: string) => parseAddr(s).words[0];

function makeTarget(): { target: ControlTarget; ct: Conntrack } {
  const tun = defaultTunables(1 << 30);
  tun.nf_conntrack_max = 1 << 20;
  const ct = new Conntrack(tun);
  for (let i = 0; i < N; i++) {
    const t = new Array(TUPLE_WORDS).fill(0);
    t[0] = (4 << 8) | 17;
    t[1] = (ip('198.18.0.0') + (i >> 8)) >>> 0;
    t[5] = ip('198.19.2.1');
    t[9] = (((10000 + (i & 0xff)) << 16) | 5300) >>> 0;
    assert.ok(ct.importEntry({ tuple: t, status: 0, timeoutMs: 600_000, ageMs: 0, mark: 0, helper: '', proto: [] }, NOW) >= 0);
  }
  return {
    ct,
    target: {
      tun,
      fw: { ct },
      rules: { format: () => '*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n' },
      reload: () => ({ ok: true, errors: [] }),
    },
  };
}

/** Internals read by the tests: live sessions and their sockets. */
function sessions(server: ControlServer): Array<{ sock: net.Socket; queue: unknown[] }> {
  return [...(server as unknown as { sessions: Set<{ sock: net.Socket; queue: unknown[] }> }).sessions];
}

/** Writes data (in pieces, respecting backpressure), collects answer lines until close or `lines` lines. */
function exchange(sockPath: string, data: Buffer | string, lines = 1): Promise<{ lines: string[]; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const c = net.connect(sockPath);
    let buf = '';
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      c.destroy();
      resolve({ lines: buf.split('\n').filter(Boolean), closedByServer });
    };
    c.on('connect', async () => {
      const b = Buffer.from(data);
      for (let o = 0; o < b.length && !done; o += 1 << 20) {
        if (!c.write(b.subarray(o, o + (1 << 20)))) await new Promise((r) => c.once('drain', r));
      }
    });
    c.on('data', (d) => {
      buf += d.toString();
      if (buf.split('\n').filter(Boolean).length >= lines) finish(false);
    });
    c.on('error', () => finish(true));
    c.on('close', () => finish(true));
  });
}

describe('control socket under attack', () => {
  let dir: string;
  let sock: string;
  let server: ControlServer;
  let ctx: ReturnType<typeof makeTarget>;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-ctla-'));
    sock = path.join(dir, 'ctl.sock');
    ctx = makeTarget();
    server = new ControlServer({ path: sock, target: ctx.target, log, now: () => NOW });
    await server.listen();
  });
  after(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const alive = async () => {
    const r = await request(sock, { op: 'ct.count' });
    assert.equal(r.ok, true);
    assert.equal(r.count, N, 'the table is untouched');
  };
  const noSessions = () => until(() => sessions(server).length === 0, 'all sessions released');
  async function until(fn: () => boolean, what: string) {
    for (let i = 0; i < 400; i++) {
      if (fn()) return;
      await sleep(25);
    }
    assert.fail(`gave up waiting: ${what}`);
  }

  test('a 10 MB line without a newline: "too large", connection closed, server serving', async () => {
    const r = await exchange(sock, Buffer.alloc(10 << 20, 'a'));
    assert.match(r.lines[0] ?? '', /"ok":false.*request too large/);
    await noSessions();
    await alive();
  });

  test('a 10 MB JSON document on one line: "too large"', async () => {
    const big = JSON.stringify({ op: 'ct.list', pad: 'x'.repeat(10 << 20) }) + '\n';
    const r = await exchange(sock, big);
    assert.match(r.lines[0] ?? '', /request too large/);
    await noSessions();
    await alive();
  });

  test('malformed JSON, non-objects, unknown ops: one error answer each, in order, on one connection', async () => {
    const bad = [
      '{',
      '{"op":"ct.list"',
      'null',
      '"ct.list"',
      '42',
      '[]',
      '\u0000\u0001\u0002',
      '\uFFFD\uFFFD{}',
      '{}',
      '{"op":null}',
      '{"op":{"a":1}}',
      '{"op":"__proto__"}',
      '{"op":"constructor"}',
      '{"op":"toString"}',
      '{"op":"ct.list ","x":1}',
    ];
    const r = await exchange(sock, bad.join('\n') + '\n{"op":"ping"}\n', bad.length + 1);
    assert.equal(r.lines.length, bad.length + 1, r.lines.join('\n'));
    for (let i = 0; i < bad.length; i++) {
      const a = JSON.parse(r.lines[i]);
      assert.equal(a.ok, false, `${bad[i]} → ${r.lines[i]}`);
      assert.match(a.error, /malformed|JSON object|unknown op/, bad[i]);
    }
    assert.equal(JSON.parse(r.lines[bad.length]).ok, true, 'a good request after them is answered');
    await alive();
  });

  test('wrongly typed arguments: errors, and nothing is deleted or set', async () => {
    const cases: object[] = [
      { op: 'ct.list', filter: 'x' },
      { op: 'ct.list', filter: 5 },
      { op: 'ct.list', filter: null },
      { op: 'ct.list', filter: { sport: '80' } },
      { op: 'ct.list', filter: { sport: -1 } },
      { op: 'ct.list', filter: { dport: 70000 } },
      { op: 'ct.list', filter: { proto: 1.5 } },
      { op: 'ct.list', filter: { family: 5 } },
      { op: 'ct.list', filter: { src: 5 } },
      { op: 'ct.list', filter: { src: '198.18.0.0/33' } },
      { op: 'ct.list', filter: { dst: '::/129' } },
      { op: 'ct.list', filter: { mark: 2 ** 32 } },
      { op: 'ct.delete', filter: { src: 'everything' } },
      { op: 'ct.delete', filter: 'all' },
      { op: 'ct.delete', filter: { sport: '10000' } },
      { op: 'sysctl.get', name: 5 },
      { op: 'sysctl.get', name: { a: 1 } },
      { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_max' },
      { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_max', value: { a: 1 } },
      { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_max', value: [1] },
      { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_max', value: -5 },
      { op: 'sysctl.set', name: 'net.netfilter.nf_conntrack_max', value: 1e300 },
      { op: 'sysctl.set', name: '__proto__', value: 1 },
      { op: 'sysctl.set', name: 5, value: 1 },
    ];
    const maxBefore = ctx.target.tun.nf_conntrack_max;
    for (const c of cases) {
      const r = await request(sock, c as Record<string, unknown>, () => assert.fail(`lines streamed for ${JSON.stringify(c)}`));
      assert.equal(r.ok, false, JSON.stringify(c));
      assert.equal(typeof r.error, 'string');
    }
    assert.equal(ctx.target.tun.nf_conntrack_max, maxBefore, 'no tunable changed');
    assert.equal(({} as Record<string, unknown>).value, undefined, 'no prototype polluted');
    await alive();
  });

  test('50 concurrent listings of 8 000 entries: every client gets every entry once', async () => {
    let ticks = 0;
    let ticking = true;
    const tick = () => {
      ticks++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const results = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const lines: string[] = [];
        const r = await request(sock, { op: 'ct.list' }, (l) => lines.push(...l));
        return { r, lines };
      }),
    );
    ticking = false;
    for (const { r, lines } of results) {
      assert.equal(r.ok, true);
      assert.equal(r.count, N);
      assert.equal(lines.length, N);
      assert.equal(new Set(lines).size, N, 'no entry twice');
    }
    // the listings yield between chunks: the event loop (which also runs packet batches) turned
    assert.ok(ticks > 50, `event loop turns during the listings: ${ticks}`);
  });

  test('slow readers: a listing nobody reads is held back by the socket, not buffered; others are served', async () => {
    const slow: net.Socket[] = [];
    try {
      await slowReaders(slow);
    } finally {
      for (const c of slow) c.destroy();
    }
    await noSessions();
  });

  async function slowReaders(slow: net.Socket[]) {
    for (let i = 0; i < 10; i++) {
      const c = net.connect(sock);
      await new Promise((r) => c.once('connect', r));
      c.pause(); // never reads
      c.write('{"op":"ct.list","extended":true}\n');
      slow.push(c);
    }
    // their sessions fill the socket buffers, then wait for 'drain'
    await until(() => sessions(server).length === 10 && sessions(server).every((s) => s.sock.writableLength > 0), 'slow sessions backed up');
    await sleep(300);
    const a = sessions(server).map((s) => s.sock.writableLength);
    await sleep(300);
    const b = sessions(server).map((s) => s.sock.writableLength);
    assert.deepEqual(b, a, 'nothing more is produced while the reader does not read');
    // a full listing is ~N × 200 bytes; the server holds at most about a chunk per slow reader
    const listing = N * 150;
    for (const w of b) assert.ok(w < listing / 4, `buffered ${w} bytes of a ${listing}-byte listing`);
    // meanwhile everything else works
    await alive();
    const lines: string[] = [];
    assert.equal((await request(sock, { op: 'ct.list', filter: { sport: 10000 } }, (l) => lines.push(...l))).count, Math.ceil(N / 256));
  }

  test('a client pipelining requests without reading the answers: reading is paused, the queue stays bounded', async () => {
    const c = net.connect(sock);
    await new Promise((r) => c.once('connect', r));
    c.on('error', () => {});
    c.pause();
    const line = Buffer.from('{"op":"ct.list","filter":{"sport":10000}}\n');
    const block = Buffer.concat(Array.from({ length: 1000 }, () => line));
    let sent = 0;
    let blocked = false;
    // write until the kernel buffers are full (the server stopped reading) or 200 MB went out
    while (sent < 200 << 20) {
      if (!c.write(block)) {
        const drained = await Promise.race([new Promise((r) => c.once('drain', () => r(true))), sleep(1000).then(() => false)]);
        if (!drained) {
          blocked = true;
          break;
        }
      }
      sent += block.length;
    }
    const s = sessions(server);
    assert.equal(s.length, 1);
    const queued = s[0].queue.length;
    c.destroy();
    assert.ok(blocked, `the server kept reading ${sent} bytes of requests it could not answer`);
    // read ahead: MAX_PENDING requests plus what one read of the socket (64 KiB) holds
    const bound = MAX_PENDING + Math.ceil(65536 / line.length) + 1;
    assert.ok(queued <= bound, `${queued} requests queued (bound ${bound})`);
    await noSessions();
    await alive();
  });

  test('clients leaving mid-stream release their sessions; a half-closed client still gets its answer', async () => {
    await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<void>((resolve) => {
            const c = net.connect(sock);
            c.on('connect', () => c.write('{"op":"ct.list"}\n'));
            c.once('data', () => {
              c.destroy();
              resolve();
            });
          }),
      ),
    );
    await noSessions();
    const half = await new Promise<string>((resolve) => {
      const c = net.connect(sock);
      let out = '';
      c.on('connect', () => c.end('{"op":"ct.count"}\n'));
      c.on('data', (d) => (out += d.toString()));
      c.on('close', () => resolve(out));
    });
    assert.equal(JSON.parse(half.trim()).count, N);
    await alive();
  });
});
