import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, tcp } from '../../../helpers/packets';
import { NF_ACCEPT as A } from '../../../../src/queue/layout';

const pkt = () => ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({}));
/** which of n packets the rule accepts (policy DROP) */
function accepted(rule: string, n: number): number[] {
  const { engine } = engineFor(forward(`${rule} -j ACCEPT`));
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (engine.evalFilter(ctxFor(pkt()), 0) === A) out.push(i);
  return out;
}

test('-m statistic --mode nth: the packet that wraps the counter matches (xt_statistic: count starts at every-1-packet)', () => {
  assert.deepEqual(accepted('-m statistic --mode nth --every 3 --packet 0', 9), [1, 4, 7]);
  assert.deepEqual(accepted('-m statistic --mode nth --every 3 --packet 2', 9), [3, 6, 9]);
  assert.deepEqual(accepted('-m statistic --mode nth --every 1 --packet 0', 3), [1, 2, 3]);
  assert.deepEqual(accepted('-m statistic --mode nth ! --every 2 --packet 1', 6), [1, 3, 5]);
});

test('-m statistic --mode random: probability 0 never, 1 always, ! inverts, 0.5 about half', () => {
  assert.deepEqual(accepted('-m statistic --mode random --probability 0', 200), []);
  assert.equal(accepted('-m statistic --mode random --probability 1', 200).length, 200);
  assert.equal(accepted('-m statistic --mode random ! --probability 1', 200).length, 0);
  // binomial(4000, 0.5): 2000 ± 316 is more than 10 standard deviations
  const half = accepted('-m statistic --mode random --probability 0.5', 4000).length;
  assert.ok(half > 1684 && half < 2316, String(half));
});

test('-m statistic: iptables-save spelling (checked against iptables 1.8.9) and its errors', () => {
  assert.equal(savedRule('-m statistic --mode random --probability 0.5'), '-A FORWARD -m statistic --mode random --probability 0.50000000000');
  assert.equal(savedRule('-m statistic --mode random ! --probability 0.3333333333'), '-A FORWARD -m statistic --mode random ! --probability 0.33333333349');
  assert.equal(savedRule('-m statistic --mode random --probability 1'), '-A FORWARD -m statistic --mode random --probability 1.00000000000');
  // 2^-12 lies exactly halfway at 11 decimals: printf rounds to even
  assert.equal(savedRule('-m statistic --mode random --probability 0.000244140625'), '-A FORWARD -m statistic --mode random --probability 0.00024414062');
  assert.equal(savedRule('-m statistic --mode nth --every 3 --packet 0'), '-A FORWARD -m statistic --mode nth --every 3 --packet 0');
  assert.equal(savedRule('-m statistic --mode nth ! --every 5 --packet 2'), '-A FORWARD -m statistic --mode nth ! --every 5 --packet 2');
  const e = (r: string) => errorsOf(forward(r)).map((x) => x.replace(/^e\.rules:\d+:\d+: /, ''));
  assert.deepEqual(e('-m statistic --mode nth --every 2 --packet 2'), ['the --packet p must be 0 <= p <= n-1']);
  assert.deepEqual(e('-m statistic --mode random --probability 1.5'), ['statistic: bad value for option "--probability", or out of range (0-1).']);
  assert.deepEqual(e('-m statistic --mode foo'), ['Bad mode "foo"']);
  assert.deepEqual(e('-m statistic --mode nth'), ['--every and --packet must be specified when using nth mode']);
  assert.deepEqual(e('-m statistic --mode nth --every 2'), ['statistic: option "--every" also requires "--packet".']);
  assert.deepEqual(e('-m statistic --mode random'), ['--probability must be specified when using random mode']);
  assert.deepEqual(e('-m statistic --probability 0.5'), ['statistic: option "--mode" must be specified']);
  assert.deepEqual(e('-m statistic --mode nth --every 0 --packet 0'), ['statistic: bad value for option "--every", or out of range (1-4294967295).']);
  assert.deepEqual(e('-m statistic --mode random ! --packet 1'), ['option "--packet" cannot be inverted']);
});
