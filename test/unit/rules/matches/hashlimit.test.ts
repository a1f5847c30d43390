import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, tcp } from '../../../helpers/packets';
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
  assert.deepEqual(e('-m hashlimit --hashlimit-upto 1kb/s --hashlimit-name D'), ['e.rules:5:42: hashlimit: byte rates ("1kb/s") are not supported']);
  assert.deepEqual(e('-m hashlimit --hashlimit-upto 7/s --hashlimit-name E --hashlimit-rate-match'), [
    'e.rules:5:65: option "--hashlimit-rate-match" of match hashlimit is not supported',
  ]);
  assert.deepEqual(e('-m hashlimit --hashlimit-upto 1/s --hashlimit-mode srcip,foo --hashlimit-name F'), [
    'e.rules:5:63: hashlimit: bad mode "foo" (srcip, srcport, dstip, dstport)',
  ]);
});
