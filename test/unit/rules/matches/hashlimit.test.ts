import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, tcp, udp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';

const pkt = (src: string, dport = 80) => ipv4({ src, dst: '198.19.2.1' }, tcp({ sport: 40000, dport }));

test('-m hashlimit: a bucket per source, burst then the rate; above; a separate bucket per key', () => {
  const { engine } = engineFor(forward('-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name T1 -j ACCEPT'));
  const v = (src: string, now: number) => engine.evalFilter(ctxFor(pkt(src)), now);
  assert.deepEqual([v('198.18.1.1', 0), v('198.18.1.1', 0), v('198.18.1.1', 0), v('198.18.1.1', 0)], [A, A, A, D], 'burst 3');
  assert.equal(v('198.18.1.2', 0), A, 'another source');
  assert.equal(v('198.18.1.1', 999), D, 'not a whole second yet');
  assert.equal(v('198.18.1.1', 1000), A, 'one credit per second');
  assert.equal(v('198.18.1.1', 1001), D);
  const above = engineFor(forward('-m hashlimit --hashlimit-above 2/min --hashlimit-burst 1 --hashlimit-name T2 -j DROP', '-j ACCEPT'));
  const w = (src: string) => above.engine.evalFilter(ctxFor(pkt(src)), 0);
  assert.deepEqual([w('198.18.1.1'), w('198.18.1.9')], [A, D], 'no mode: one bucket for all');
});

test('-m hashlimit: srcmask, dstport mode, expiry at the collection, a full table drops', () => {
  const { engine } = engineFor(
    forward('-m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 1 --hashlimit-mode srcip,dstport --hashlimit-srcmask 24 --hashlimit-name T3 -j ACCEPT'),
  );
  const v = (src: string, dport: number, now = 0) => engine.evalFilter(ctxFor(pkt(src, dport)), now);
  assert.equal(v('198.18.1.1', 80), A);
  assert.equal(v('198.18.1.200', 80), D, 'same /24 and port');
  assert.equal(v('198.18.1.200', 81), A, 'another port');
  // expire = the rate's unit (an hour) when not given; collected at the next gcinterval (1 s)
  assert.equal(v('198.18.1.1', 80, 3_599_999), D);
  assert.equal(v('198.18.1.1', 80, 3_600_000 + 3_599_999 + 1000), A, 'the entry expired and was collected: a fresh bucket');
  const full = engineFor(
    forward(
      '-m hashlimit --hashlimit-upto 10/sec --hashlimit-mode srcip --hashlimit-name T4 --hashlimit-htable-size 2 --hashlimit-htable-max 2 -j ACCEPT',
      '-j ACCEPT',
    ),
  );
  const f = (src: string) => full.engine.evalFilter(ctxFor(pkt(src)), 0);
  assert.deepEqual(
    [f('198.18.1.1'), f('198.18.1.2'), f('198.18.1.3')],
    [A, A, D],
    'third key: table full, the packet is dropped (hotdrop), not passed on to -j ACCEPT',
  );
});

test('-m hashlimit: iptables-save spelling and errors', () => {
  assert.equal(
    savedRule('-m hashlimit --hashlimit-upto 1/min --hashlimit-name A'),
    '-A FORWARD -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 5 --hashlimit-name A',
  );
  assert.equal(
    savedRule(
      '-4 -m hashlimit --hashlimit-above 10/s --hashlimit-burst 20 --hashlimit-mode dstport,srcip --hashlimit-name B --hashlimit-srcmask 24 --hashlimit-htable-expire 30000 --hashlimit-htable-max 100 --hashlimit-htable-size 64 --hashlimit-htable-gcinterval 500',
    ),
    '-A FORWARD -4 -m hashlimit --hashlimit-above 10/sec --hashlimit-burst 20 --hashlimit-mode srcip,dstport --hashlimit-name B --hashlimit-htable-size 64 --hashlimit-htable-max 100 --hashlimit-htable-gcinterval 500 --hashlimit-htable-expire 30000 --hashlimit-srcmask 24',
  );
  assert.equal(
    savedRule('-m hashlimit --hashlimit 3/hour --hashlimit-name C'),
    '-A FORWARD -m hashlimit --hashlimit-upto 3/hour --hashlimit-burst 5 --hashlimit-name C',
  );
  const e = (r: string) => errorsOf(forward(r));
  assert.deepEqual(e('-m hashlimit --hashlimit-upto 1/min'), ['e.rules:5:15: hashlimit match needs --hashlimit-name']);
  assert.deepEqual(e('-m hashlimit --hashlimit-upto 1/s --hashlimit-mode srcip,foo --hashlimit-name F'), [
    'e.rules:5:63: hashlimit: bad mode "foo" (srcip, srcport, dstip, dstport)',
  ]);
});

const bigUdp = (src: string, payload: number) => ipv4({ src, dst: '198.19.2.1' }, udp({ sport: 40000, dport: 7005, payload: new Uint8Array(payload) }));

test('-m hashlimit byte rates: a packet costs its 16-byte chunks, at most the whole bucket; --hashlimit-burst refills an empty one', () => {
  // 512b/s: a 1028-byte packet (65 chunks) costs more than a second of credit, so it takes the whole
  // bucket; burst 2kb = 4 refills of an empty bucket: 1 + 4 packets, then one per second
  const { engine } = engineFor(forward('-m hashlimit --hashlimit-upto 512b/s --hashlimit-burst 2kb --hashlimit-mode srcip --hashlimit-name HB1 -j ACCEPT'));
  const v = (now: number, src = '198.18.1.1', len = 1000) => engine.evalFilter(ctxFor(bigUdp(src, len)), now);
  assert.deepEqual(
    [0, 0, 0, 0, 0, 0].map((t) => v(t)),
    [A, A, A, A, A, D],
  );
  assert.equal(v(999), D, 'a jiffy short of a full bucket');
  assert.equal(v(1000), A);
  assert.equal(v(1000, '198.18.1.2'), A, 'another source, its own bucket');
  // 2kb/s without a burst: 4194304000 credits, a chunk costs user2credits_byte(33294320) = 32514000
  const two = engineFor(forward('-m hashlimit --hashlimit-upto 2kb/s --hashlimit-name HB2 -j ACCEPT'));
  const w = (now: number, len: number) => two.engine.evalFilter(ctxFor(bigUdp('198.18.1.1', len)), now);
  // 1028 bytes: 65 chunks = 2113410000; 100-byte payload (128 bytes): 9 chunks = 292626000
  assert.deepEqual([w(0, 1000), w(0, 1000)], [A, D], 'one 1028-byte packet, not two');
  assert.deepEqual(
    [w(0, 100), w(0, 100), w(0, 100), w(0, 100), w(0, 100), w(0, 100), w(0, 100)],
    [A, A, A, A, A, A, A],
    '7 × 292626000 of the 2080894000 left',
  );
  assert.equal(w(0, 100), D);
  assert.equal(w(70, 100), A, '70 jiffies × 2^22 credits bring back one small packet');
  const above = engineFor(forward('-m hashlimit --hashlimit-above 2kb/s --hashlimit-name HB3 -j DROP', '-j ACCEPT'));
  const x = (len: number) => above.engine.evalFilter(ctxFor(bigUdp('198.18.1.1', len)), 0);
  assert.deepEqual([x(1000), x(1000)], [A, D], 'above: over the limit matches');
});

test("-m hashlimit --hashlimit-rate-match: counts per interval, rate + burst in the first, the last interval's rate decides the next", () => {
  // 3/min with --hashlimit-rate-match: avg/60 → rate 3 per interval of 60 s, window burst 5 + 3 = 8
  const { engine } = engineFor(forward('-m hashlimit --hashlimit-upto 3/min --hashlimit-rate-match --hashlimit-mode srcip --hashlimit-name HR1 -j ACCEPT'));
  const v = (now: number) => engine.evalFilter(ctxFor(pkt('198.18.1.1')), now);
  const burst = Array.from({ length: 10 }, () => v(0));
  assert.deepEqual(burst, [A, A, A, A, A, A, A, A, D, D], 'eight in the first window');
  assert.equal(v(59_999), D, 'still the first window');
  // at 60 s: 11 counted × 60000 > 60000 × 3: the previous window was over, so nothing matches in this one
  assert.equal(v(60_000), D);
  // at 120 s: one counted in the window before: under the rate, matching again
  assert.equal(v(120_000), A);
  // bytes: rate user2rate_bytes(cost of 2kb/s) = 2048 bytes per second, burst = the rate without --hashlimit-burst
  const b = engineFor(forward('-m hashlimit --hashlimit-upto 2kb/s --hashlimit-rate-match --hashlimit-name HR2 -j ACCEPT'));
  const w = (now: number, len: number) => b.engine.evalFilter(ctxFor(bigUdp('198.18.1.1', len)), now);
  assert.deepEqual([w(0, 1000), w(0, 992), w(0, 0)], [A, A, D], '1028 + 1020 = 2048 bytes, then over');
  assert.equal(w(999, 0), D);
  assert.equal(w(1000, 0), D, 'the window had 2076 bytes in 1000 jiffies: over 2048, so this one does not match');
  assert.equal(w(2000, 0), A);
});

test('-m hashlimit byte rates and rate-match: iptables-save spelling (as iptables 1.8.9) and errors', () => {
  const cases: [string, string][] = [
    ['--hashlimit-upto 512b/s --hashlimit-burst 2kb --hashlimit-name B1', '--hashlimit-upto 512b/s --hashlimit-burst 2kb --hashlimit-name B1'],
    ['--hashlimit-upto 1kb/s --hashlimit-name B2', '--hashlimit-upto 1kb/s --hashlimit-name B2'],
    [
      '--hashlimit-above 3mb/s --hashlimit-burst 5m --hashlimit-mode srcip --hashlimit-name B3',
      '--hashlimit-above 3mb/s --hashlimit-burst 6mb --hashlimit-mode srcip --hashlimit-name B3',
    ],
    ['--hashlimit-upto 1000b/s --hashlimit-burst 1500 --hashlimit-name B4', '--hashlimit-upto 992b/s --hashlimit-burst 1kb --hashlimit-name B4'],
    [
      '--hashlimit-upto 3/min --hashlimit-rate-match --hashlimit-name R1',
      '--hashlimit-upto 3/sec --hashlimit-burst 5 --hashlimit-name R1 --hashlimit-htable-expire 60000 --hashlimit-rate-match --hashlimit-rate-interval 60',
    ],
    [
      '--hashlimit-upto 10/sec --hashlimit-rate-match --hashlimit-rate-interval 5 --hashlimit-name R2',
      '--hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-name R2 --hashlimit-rate-match --hashlimit-rate-interval 5',
    ],
    ['--hashlimit-upto 2kb/s --hashlimit-rate-match --hashlimit-name R3', '--hashlimit-upto 2kb/s --hashlimit-name R3 --hashlimit-rate-match'],
    [
      '--hashlimit-upto 60/min --hashlimit-burst 20000 --hashlimit-name P1',
      '--hashlimit-upto 1/sec --hashlimit-burst 20000 --hashlimit-name P1 --hashlimit-htable-expire 60000',
    ],
    ['--hashlimit-upto 1/s --hashlimit-rate-interval 3 --hashlimit-name E2', '--hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name E2'],
  ];
  for (const [rule, saved] of cases) assert.equal(savedRule(`-m hashlimit ${rule}`), `-A FORWARD -m hashlimit ${saved}`, rule);
  const e = (r: string) => errorsOf(forward(`-m hashlimit ${r}`));
  assert.deepEqual(e('--hashlimit-upto 100b/s --hashlimit-burst 50 --hashlimit-name E1'), ['e.rules:5:15: burst cannot be smaller than 96b']);
  assert.deepEqual(e('--hashlimit-upto 1/s --hashlimit-burst 1000001 --hashlimit-name E3'), [
    'e.rules:5:64: bad value for option "--hashlimit-burst", or out of range (1-1000000)',
  ]);
  assert.deepEqual(e('--hashlimit-upto 1/s --hashlimit-rate-match --hashlimit-rate-interval 0 --hashlimit-name E4'), [
    'e.rules:5:95: hashlimit: bad value for option "--hashlimit-rate-interval" ("0")',
  ]);
});
