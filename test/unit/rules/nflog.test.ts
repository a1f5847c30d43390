import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from './util';
import { ipv4, udp } from '../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../src/queue/layout';
import { newListenerTable, NflogRing, nflogBus, type NflogRecord } from '../../../src/rules/nflog-ring';
import { wallClock } from '../../../src/rules/wallclock';
import { MAX_BACKLOG, MAX_BACKLOG_CHARS, NflogHub } from '../../../src/daemon/nflog';
import { ControlAborted, type ControlOutput } from '../../../src/daemon/table-ops';
import { formatNflogText, parseNflogLine } from '../../../src/cli/nflog';
import { encodeNflogFrame, LINKTYPE_NFLOG, nflogAttributes, NFULA_PREFIX, pcapFileHeader, pcapRecord } from '../../../src/pcap/nflog';
import { readCapture } from '../../../src/pcap/read';

const pkt = (payload = 'hello') =>
  ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 7010, payload: new TextEncoder().encode(payload) }));

function withBus<T>(f: (ring: NflogRing, listeners: Int32Array) => T): T {
  const saved = { ring: nflogBus.ring, listeners: nflogBus.listeners };
  const sab = newListenerTable();
  const ring = new NflogRing();
  nflogBus.attach(ring, sab);
  try {
    return f(ring, nflogBus.listeners!);
  } finally {
    nflogBus.ring = saved.ring;
    nflogBus.listeners = saved.listeners;
  }
}
const drain = (ring: NflogRing) => {
  const out: NflogRecord[] = [];
  ring.drain((r) => out.push(r));
  return out;
};

test('-j NFLOG: non-terminal; nothing is copied for a group without a reader; the packet, prefix and --nflog-size for one with', () => {
  const { engine } = engineFor(
    forward('-p udp -j NFLOG --nflog-group 5 --nflog-prefix "udp in"', '-p udp -j NFLOG --nflog-group 6 --nflog-size 24', '-p udp -j NFLOG', '-p udp -j DROP'),
  );
  withBus((ring, listeners) => {
    wallClock.set(1_000_000);
    try {
      const p = pkt();
      assert.equal(engine.evalFilter(ctxFor(p), 5), D, 'NFLOG goes on to the DROP');
      assert.deepEqual(drain(ring), [], 'no reader: nothing written');
      listeners[5] = 1;
      listeners[6] = 1;
      listeners[0] = 1;
      assert.equal(engine.evalFilter(ctxFor(p, { mark: 7 }), 5), D);
      const recs = drain(ring);
      assert.deepEqual(
        recs.map((r) => [r.group, r.prefix, r.data.length, r.len, r.hook, r.indev, r.outdev, r.mark, r.tsMs]),
        [
          [5, 'udp in', p.length, p.length, 2, 2, 3, 7, 1_000_005],
          [6, '', 24, p.length, 2, 2, 3, 7, 1_000_005],
          [0, '', p.length, p.length, 2, 2, 3, 7, 1_000_005],
        ],
      );
      assert.deepEqual([...recs[0].data], [...p]);
      assert.deepEqual([...recs[1].data], [...p.subarray(0, 24)]);
    } finally {
      wallClock.release();
    }
  });
  assert.equal(engineFor(forward('-j NFLOG', '-j ACCEPT')).engine.evalFilter(ctxFor(pkt()), 0), A, 'no ring in this thread (check, replay): nothing to do');
});

test('NFLOG ring: records in order across the wrap; a full ring drops and counts', () => {
  const ring = new NflogRing(undefined, 4096);
  const data = new Uint8Array(1000).map((_, i) => i & 0xff);
  const pfx = Buffer.from('p');
  const push = (n: number) => ring.push(1, 4, 2, 0, 0, 1000, n, 0, pfx, data, 0, 1000);
  assert.deepEqual([push(1), push(2), push(3), push(4)], [true, true, true, false], 'three 1048-byte records fit in 4096 bytes');
  assert.equal(ring.dropped, 1);
  assert.deepEqual(
    drain(ring).map((r) => r.tsMs),
    [1, 2, 3],
  );
  for (let round = 0; round < 5; round++) {
    assert.deepEqual([push(10 + round), push(20 + round)], [true, true]);
    const got = drain(ring);
    assert.deepEqual(
      got.map((r) => r.tsMs),
      [10 + round, 20 + round],
      `round ${round}: wrapped records come out whole`,
    );
    assert.deepEqual([...got[1].data], [...data]);
  }
  assert.equal(ring.dropped, 1);
});

class FakeOut implements ControlOutput {
  alive = true;
  sent: string[][] = [];
  /** when set, sendLines waits for it (a slow reader) */
  gate: Promise<void> | null = null;
  async sendLines(lines: string[]): Promise<void> {
    if (!this.alive) throw new ControlAborted();
    this.sent.push(lines);
    if (this.gate) await this.gate;
  }
}
const tick = () => new Promise((r) => setImmediate(r));

test("NFLOG hub: a reader gets its group's records as lines; a slow reader's backlog is bounded and the drops counted; leaving unregisters", async () => {
  const hub = new NflogHub((i) => (i === 2 ? 'g0' : i === 3 ? 'g1' : undefined));
  const ring = hub.newRing();
  const count = new Int32Array(hub.listeners);
  const out = new FakeOut();
  const done = hub.subscribe(5, out);
  await tick();
  assert.equal(count[5], 1, 'registered: the packet threads see a reader of group 5');
  const p = pkt('x');
  ring.push(5, 4, 2, 2, 3, p.length, 1234.5, 0, Buffer.from('pre fix'), p, 0, p.length);
  ring.push(6, 4, 2, 2, 3, p.length, 1234.5, 0, Buffer.from(''), p, 0, p.length);
  hub.poll();
  await tick();
  const lines = out.sent.flat();
  assert.equal(lines[0], 'S');
  assert.equal(lines.length, 2, "group 6 is not this reader's");
  const r = parseNflogLine(lines[1])!;
  assert.deepEqual([r.group, r.inName, r.outName, r.prefix, r.tsMs, [...r.data]], [5, 'g0', 'g1', 'pre fix', 1234.5, [...p]]);
  assert.match(
    formatNflogText(r),
    /^1970-01-01T00:00:01\.234Z pre fixIN=g0 OUT=g1 SRC=198\.18\.1\.1 DST=198\.19\.2\.1 LEN=29 .* PROTO=UDP SPT=5000 DPT=7010 LEN=9 $/,
  );
  // a reader that takes nothing: at most MAX_BACKLOG records wait, the rest are counted
  let open!: () => void;
  out.gate = new Promise((res) => (open = res));
  ring.push(5, 4, 2, 2, 3, p.length, 1, 0, Buffer.from('a'), p, 0, p.length);
  hub.poll();
  await tick();
  const before = out.sent.length;
  for (let i = 0; i < MAX_BACKLOG + 10; i++) {
    ring.push(5, 4, 2, 2, 3, p.length, 2, 0, Buffer.from('b'), p, 0, p.length);
    if (i % 500 === 0) hub.poll();
  }
  hub.poll();
  open();
  out.gate = null;
  for (let i = 0; i < 100 && out.sent.flat().filter((l) => l.startsWith('P ')).length < 2 + MAX_BACKLOG; i++) await tick();
  const after = out.sent.slice(before).flat();
  const ring2 = ring.dropped;
  assert.equal(after.filter((l) => l.startsWith('P ')).length, MAX_BACKLOG, 'the backlog held MAX_BACKLOG records');
  const dropped = after.filter((l) => l.startsWith('D ')).reduce((a, l) => a + Number(l.slice(2)), 0);
  assert.equal(dropped, 10 + ring2, 'the rest counted (backlog and ring)');
  out.alive = false;
  hub.poll();
  assert.deepEqual(await done, { ok: false, error: 'aborted' });
  assert.equal(count[5], 0, 'the reader left: group 5 has no reader');
  const other = new FakeOut();
  const ended = hub.subscribe(5, other);
  await tick();
  assert.equal(count[5], 1);
  hub.close();
  assert.deepEqual(await ended, { ok: true, stopped: true }, 'the daemon stops: the stream ends');
  assert.equal(count[5], 0);
});

test("NFLOG hub: a slow reader's backlog is bounded in bytes too (large packets)", async () => {
  const hub = new NflogHub();
  const ring = hub.newRing();
  const out = new FakeOut();
  let open!: () => void;
  out.gate = new Promise((res) => (open = res));
  const done = hub.subscribe(1, out);
  await tick();
  const big = new Uint8Array(60000);
  const n = Math.ceil(MAX_BACKLOG_CHARS / 80000) + 20;
  for (let i = 0; i < n; i++) {
    assert.ok(ring.push(1, 4, 2, 0, 0, big.length, i, 0, Buffer.from(''), big, 0, big.length));
    if (i % 10 === 9) hub.poll();
  }
  hub.poll();
  const waiting = out.sent.flat().filter((l) => l.startsWith('P ')).length;
  open();
  out.gate = null;
  for (let i = 0; i < 200 && !out.sent.flat().some((l) => l.startsWith('D ')); i++) await tick();
  const lines = out.sent.flat();
  const got = lines.filter((l) => l.startsWith('P ')).length;
  const dropped = lines.filter((l) => l.startsWith('D ')).reduce((a, l) => a + Number(l.slice(2)), 0);
  assert.ok(dropped > 0 && got + dropped === n, `${got} delivered (${waiting} before the reader stalled) + ${dropped} dropped of ${n}`);
  assert.ok((got - waiting) * 80000 <= MAX_BACKLOG_CHARS, 'what waited fits the bound');
  out.alive = false;
  hub.poll();
  await done;
});

test('nflog --pcap frames: the NFLOG link type as tcpdump writes it, read back by the capture reader', () => {
  const p = pkt('payload');
  const frame = encodeNflogFrame({ group: 5, family: 4, hook: 2, indev: 2, outdev: 3, mark: 9, prefix: 'pfx', data: p });
  const { group, family, attrs } = nflogAttributes(frame);
  assert.deepEqual([group, family, Buffer.from(attrs.get(NFULA_PREFIX)!).toString()], [5, 4, 'pfx\0']);
  assert.equal(
    nflogAttributes(encodeNflogFrame({ group: 1, family: 4, hook: 2, indev: 0, outdev: 0, mark: 0, prefix: '', data: p })).attrs.get(NFULA_PREFIX)!.length,
    1,
    'an empty prefix is a NUL',
  );
  const file = Buffer.concat([pcapFileHeader(LINKTYPE_NFLOG, 65535), pcapRecord(1500.25, frame)]);
  const c = readCapture(new Uint8Array(file));
  assert.equal(c.error, null);
  assert.equal(c.packets.length, 1);
  assert.deepEqual([...c.packets[0].data.subarray(0, p.length)], [...p]);
  assert.equal(c.packets[0].tsMs, 1500.25);
});

test('-j NFLOG: iptables-save spelling and errors', () => {
  assert.equal(savedRule('-j NFLOG'), '-A FORWARD -j NFLOG');
  assert.equal(
    savedRule('-j NFLOG --nflog-threshold 10 --nflog-size 128 --nflog-group 3 --nflog-prefix "a b"'),
    '-A FORWARD -j NFLOG --nflog-prefix "a b" --nflog-group 3 --nflog-size 128 --nflog-threshold 10',
  );
  assert.equal(savedRule('-j NFLOG --nflog-range 100'), '-A FORWARD -j NFLOG --nflog-range 100');
  assert.equal(
    savedRule('-j NFLOG --nflog-group 010 --nflog-threshold 0x10'),
    '-A FORWARD -j NFLOG --nflog-group 8 --nflog-threshold 16',
    'base 0, as xtables_strtoui',
  );
  assert.equal(savedRule(`-j NFLOG --nflog-prefix ${'x'.repeat(70)}`), `-A FORWARD -j NFLOG --nflog-prefix ${'x'.repeat(63)}`);
  const e = (r: string) => errorsOf(forward(r));
  assert.deepEqual(e('-j NFLOG --nflog-group 65536'), ['e.rules:5:35: NFLOG: bad value for option "--nflog-group" ("65536"), 0..65535']);
  assert.deepEqual(e('-j NFLOG --nflog-size 1 --nflog-range 2'), ['e.rules:5:36: NFLOG: option "--nflog-range" cannot be used together with "--nflog-size"']);
  assert.deepEqual(e('-j NFLOG --nflog-group 1 --nflog-group 2'), ['e.rules:5:37: NFLOG: option "--nflog-group" can only be used once']);
});
