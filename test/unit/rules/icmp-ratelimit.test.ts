import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultIcmpLimits, IcmpRateLimiter, Ipv6RoutePrefix, parseV6Ratemask, readIcmpLimits } from '../../../src/rules/targets/icmp-ratelimit';

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

test('IPv4 per-destination limit: a burst of 6, then one per icmp_ratelimit ms (inet_peer_xrlim_allow)', () => {
  const c = clock();
  const l = new IcmpRateLimiter(defaultIcmpLimits(), c.now);
  let sent = 0;
  for (let i = 0; i < 20; i++) if (l.allow4('198.18.1.2', 3, 3)) sent++;
  assert.equal(sent, 6);
  assert.equal(l.limitedHost, 14);
  c.t += 999;
  assert.equal(l.allow4('198.18.1.2', 3, 3), false);
  c.t += 1;
  assert.equal(l.allow4('198.18.1.2', 3, 3), true);
  assert.equal(l.allow4('198.18.1.2', 3, 3), false);
  // another destination has its own bucket
  assert.equal(l.allow4('198.18.1.3', 3, 1), true);
  // a long pause refills up to the burst, not beyond
  c.t += 60_000;
  sent = 0;
  for (let i = 0; i < 20; i++) if (l.allow4('198.18.1.2', 3, 3)) sent++;
  assert.equal(sent, 6);
});

test('IPv4: types outside icmp_ratemask and fragmentation-needed are not limited', () => {
  const l = new IcmpRateLimiter(defaultIcmpLimits(), clock().now);
  for (let i = 0; i < 20; i++) assert.equal(l.allow4('198.18.1.2', 3, 4), true);
  for (let i = 0; i < 20; i++) assert.equal(l.allow4('198.18.1.2', 0, 0), true); // echo reply: bit 0 not in 0x1818
  const none = new IcmpRateLimiter({ ...defaultIcmpLimits(), v4Ratemask: 0 }, clock().now);
  for (let i = 0; i < 20; i++) assert.equal(none.allow4('198.18.1.2', 3, 3), true);
});

test('global limit: icmp_msgs_burst messages, then icmp_msgs_per_sec, across destinations and families', () => {
  const c = clock();
  const l = new IcmpRateLimiter({ ...defaultIcmpLimits(), msgsBurst: 10, msgsPerSec: 100 }, c.now);
  let sent = 0;
  for (let i = 0; i < 40; i++) if (l.allow4(`198.18.2.${i}`, 3, 3)) sent++;
  assert.equal(sent, 10);
  assert.ok(l.limitedGlobal > 0);
  assert.equal(
    l.allow6('2001:2::9', 1, () => 128),
    false,
  );
  c.t += 10; // below the 20 ms refill granularity
  assert.equal(
    l.allow6('2001:2::9', 1, () => 128),
    false,
  );
  c.t += 90; // 100 ms at 100/s: 10 more credits
  sent = 0;
  for (let i = 0; i < 40; i++) if (l.allow4(`198.18.3.${i}`, 3, 3)) sent++;
  assert.equal(sent, 10); // refilled to min(0 + 10, burst), then spent again
});

test('IPv6: the timeout is halved for each 32 bits of route prefix below 128; ratemask list', () => {
  const c = clock();
  const l = new IcmpRateLimiter({ ...defaultIcmpLimits(), v6RatelimitMs: 1000 }, c.now);
  let sent = 0;
  for (let i = 0; i < 20; i++) if (l.allow6('2001:2:0:1::1', 1, () => 64)) sent++;
  assert.equal(sent, 6);
  c.t += 250; // /64: 1000 >> 2
  assert.equal(
    l.allow6('2001:2:0:1::1', 1, () => 64),
    true,
  );
  assert.equal(
    l.allow6('2001:2:0:1::1', 1, () => 64),
    false,
  );
  // packet too big is never limited
  for (let i = 0; i < 20; i++)
    assert.equal(
      l.allow6('2001:2:0:1::1', 2, () => 64),
      true,
    );
  const m = parseV6Ratemask('0-1,3-127');
  assert.deepEqual([m[0], m[1], m[2], m[3], m[127], m[128], m[255]], [1, 1, 0, 1, 1, 0, 0]);
  assert.throws(() => parseV6Ratemask('5-3'), /bad ratemask range/);
  assert.throws(() => parseV6Ratemask('x'), /bad ratemask element/);
});

test('the peer table is bounded: the least recently used destination is forgotten', () => {
  const c = clock();
  const l = new IcmpRateLimiter(defaultIcmpLimits(), c.now, 2);
  for (let i = 0; i < 6; i++) assert.equal(l.allow4('198.18.1.1', 3, 3), true);
  assert.equal(l.allow4('198.18.1.1', 3, 3), false);
  l.allow4('198.18.1.2', 3, 3);
  l.allow4('198.18.1.3', 3, 3); // evicts .1
  assert.equal(l.allow4('198.18.1.1', 3, 3), true, 'an evicted peer starts again with a full bucket');
});

test('readIcmpLimits reads the namespace sysctls; unreadable values keep the defaults', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-icmp-'));
  try {
    fs.mkdirSync(path.join(dir, 'net/ipv4'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'net/ipv6/icmp'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'net/ipv4/icmp_ratelimit'), '250\n');
    fs.writeFileSync(path.join(dir, 'net/ipv4/icmp_ratemask'), '8\n');
    fs.writeFileSync(path.join(dir, 'net/ipv6/icmp/ratemask'), '1\n');
    fs.writeFileSync(path.join(dir, 'net/ipv4/icmp_msgs_burst'), 'garbage\n');
    const l = readIcmpLimits(dir);
    assert.equal(l.v4RatelimitMs, 250);
    assert.equal(l.v4Ratemask, 8);
    assert.equal(l.v6Ratemask[1], 1);
    assert.equal(l.v6Ratemask[3], 0);
    assert.equal(l.msgsBurst, 50);
    assert.equal(l.v6RatelimitMs, 100);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Ipv6RoutePrefix: longest prefix match over /proc/net/ipv6_route lines', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-rt6-'));
  const file = path.join(dir, 'ipv6_route');
  const z = '0'.repeat(32);
  fs.writeFileSync(
    file,
    [
      `20010002000000010000000000000000 40 ${z} 00 ${z} 00000100 00000001 00000000 00000001 g1`,
      `20010002000000000000000000000000 30 ${z} 00 ${z} 00000100 00000001 00000000 00000001 g2`,
      `${z} 00 ${z} 00 20010002000000020000000000000001 00000400 00000002 00000000 00000003 g2`,
    ].join('\n') + '\n',
  );
  try {
    const c = clock();
    const r = new Ipv6RoutePrefix(file, c.now);
    const a = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
    assert.equal(r.plenFor(a('20010002000000010000000000000001')), 64);
    assert.equal(r.plenFor(a('20010002000000050000000000000001')), 48);
    assert.equal(r.plenFor(a('20010db8000000000000000000000001')), 0);
    const none = new Ipv6RoutePrefix(path.join(dir, 'missing'), c.now);
    assert.equal(none.plenFor(a('20010002000000010000000000000001')), 128);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
