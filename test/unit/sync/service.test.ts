import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CTSTATE_ESTABLISHED } from '../../../src/conntrack/constants';
import type { Conntrack } from '../../../src/conntrack/core';
import { formatConntrack } from '../../../src/conntrack/format';
import type { SyncConfig } from '../../../src/sync/config';
import { SyncService } from '../../../src/sync/service';
import { NF_ACCEPT } from '../../../src/queue/layout';
import { ipv4, tcp, udp } from '../../helpers/packets';
import { makeCt, pass } from '../conntrack/util';

const C = '198.18.0.2';
const S = '198.19.0.2';

const cfg: SyncConfig = {
  mode: 'notrack',
  transport: 'udp',
  address: '198.18.9.1',
  peer: '198.18.9.2',
  group: '',
  port: 3780,
  windowTracking: false,
  peerTimeoutSec: 3,
};

interface Side {
  ct: Conntrack;
  sync: SyncService;
  logs: string[];
  /** datagrams it sent */
  sent: Buffer[];
}

let clock = 1000;
const now = () => clock;

/** Two gateways joined by a link that hands each datagram over when deliver() is called. */
function pair(): { a: Side; b: Side; deliver: () => number } {
  const mk = (): Side => {
    const { ct } = makeCt();
    const logs: string[] = [];
    const sent: Buffer[] = [];
    const log = { info: (_o: object, m: string) => logs.push(m), warn: (_o: object, m: string) => logs.push(m) };
    const sync = new SyncService(cfg, ct, log, now, () => ({ open: async () => {}, send: (d) => sent.push(d), close: () => {} }));
    return { ct, sync, logs, sent };
  };
  const a = mk();
  const b = mk();
  const deliver = () => {
    let n = 0;
    for (;;) {
      const da = a.sent.splice(0);
      const db = b.sent.splice(0);
      if (da.length + db.length === 0) return n;
      for (const d of da) b.sync.receive(d);
      for (const d of db) a.sync.receive(d);
      n += da.length + db.length;
    }
  };
  return { a, b, deliver };
}

async function started(): Promise<{ a: Side; b: Side; deliver: () => number; stop: () => void }> {
  const p = pair();
  await p.a.sync.start();
  await p.b.sync.start();
  p.deliver();
  return { ...p, stop: () => (p.a.sync.stop(), p.b.sync.stop()) };
}

function handshake(ct: Conntrack, sport: number): void {
  assert.equal(pass(ct, ipv4({ src: C, dst: S }, tcp({ sport, dport: 80, flags: 'S', seq: 1000 })), clock).queue, NF_ACCEPT);
  pass(ct, ipv4({ src: S, dst: C }, tcp({ sport: 80, dport: sport, flags: 'SA', seq: 5000, ack: 1001 })), clock);
  pass(ct, ipv4({ src: C, dst: S }, tcp({ sport, dport: 80, flags: 'A', seq: 1001, ack: 5001 })), clock);
}

function listing(ct: Conntrack): string[] {
  return [...ct.entries(clock)].map((e) => formatConntrack(ct, e, clock)).sort();
}

test('NOTRACK: new, state changes and destroys reach the peer external cache, not its table', async () => {
  const { a, b, deliver, stop } = await started();
  try {
    handshake(a.ct, 40000);
    pass(a.ct, ipv4({ src: C, dst: S }, udp({ sport: 5000, dport: 53 })), clock);
    a.sync.flush();
    deliver();
    assert.equal(b.ct.count, 0);
    const lines = b.sync.cache.lines(clock).map((l) => l.replace(/ \[active since \d+s\]$/, ''));
    assert.deepEqual(lines.sort(), [
      `tcp      6 432000 ESTABLISHED src=${C} dst=${S} sport=40000 dport=80 src=${S} dst=${C} sport=80 dport=40000 [ASSURED] mark=0`,
      `udp      17 30 src=${C} dst=${S} sport=5000 dport=53 [UNREPLIED] src=${S} dst=${C} sport=53 dport=5000 mark=0`,
    ]);
    // NEW (SYN), UPD (SYN_RECV), UPD (ESTABLISHED, ASSURED), NEW udp: every one counted
    assert.equal(b.sync.stats().msgLost, 0);
    a.ct.flush();
    a.sync.flush();
    deliver();
    assert.equal(b.sync.cache.size, 0);
    assert.ok(b.sync.stats().peerUp);
  } finally {
    stop();
  }
});

test('commit: the external entries are live at once, TCP picked up without windows (mid-stream data, both directions)', async () => {
  const { a, b, deliver, stop } = await started();
  try {
    handshake(a.ct, 40001);
    pass(a.ct, ipv4({ src: C, dst: S }, udp({ sport: 5001, dport: 53 })), clock);
    pass(a.ct, ipv4({ src: S, dst: C }, udp({ sport: 53, dport: 5001 })), clock);
    a.sync.flush();
    deliver();
    const r = b.sync.commit();
    assert.deepEqual([r.committed, r.failed], [2, 0]);
    assert.equal(b.sync.cache.size, 0);
    assert.deepEqual(
      listing(b.ct).map((l) => l.replace(/^(\S+\s+\d+) \d+/, '$1 T')),
      listing(a.ct).map((l) => l.replace(/^(\S+\s+\d+) \d+/, '$1 T')),
    );
    // the stream went on through A meanwhile: B sees sequence numbers it never saw, in both directions
    clock += 5000;
    const d1 = pass(b.ct, ipv4({ src: C, dst: S }, tcp({ sport: 40001, dport: 80, flags: 'PA', seq: 901001, ack: 7005001, payload: 'x'.repeat(100) })), clock);
    assert.equal(d1.ctstate, CTSTATE_ESTABLISHED);
    const d2 = pass(b.ct, ipv4({ src: S, dst: C }, tcp({ sport: 80, dport: 40001, flags: 'A', seq: 7005001, ack: 901101 })), clock);
    assert.equal(d2.ctstate, CTSTATE_ESTABLISHED);
    // and the commit sent B's table to A (the new primary's bulk)
    deliver();
    assert.equal(a.sync.cache.size, 2);
  } finally {
    stop();
  }
});

test('a RESYNC request is answered with the whole table; demotion moves the table into the cache without DELs', async () => {
  const { a, b, deliver, stop } = await started();
  try {
    handshake(a.ct, 40002);
    a.sync.flush();
    deliver();
    b.sync.cache.flush();
    b.sync.requestResync();
    deliver();
    assert.equal(b.sync.cache.size, 1);
    assert.equal(a.sync.stats().resyncRequestsReceived, 2); // B's at start, and this one
    assert.equal(a.sync.demote(), 1);
    assert.equal(a.ct.count, 0);
    assert.equal(a.sync.cache.size, 1);
    a.sync.flush();
    deliver(); // a.demote asked B for its table: B has none; A sent no DEL
    assert.equal(b.sync.cache.size, 1);
  } finally {
    stop();
  }
});

test('sequence gaps are counted lost; malformed messages refused; peer loss and recovery logged', async () => {
  const { a, b, deliver, stop } = await started();
  try {
    handshake(a.ct, 40003);
    a.sync.flush();
    a.sent.splice(0, 1); // lose one datagram
    a.ct.flush();
    a.sync.flush();
    deliver();
    assert.ok(b.sync.stats().msgLost > 0);
    b.sync.receive(Buffer.from('10000010000000ff000c000000000000', 'hex')); // a NEW whose IPv4 group runs past its length
    assert.equal(b.sync.stats().malformed, 1);
    clock += 10000;
    // A's ALIVE would have gone out meanwhile; B hears nothing: its timer tick calls the peer lost
    (b.sync as unknown as { tick(): void }).tick();
    assert.ok(b.logs.includes('sync peer lost: nothing heard for 3 s'));
    a.sync.requestResync();
    deliver();
    assert.ok(b.logs.includes('sync peer back'));
  } finally {
    stop();
  }
});
