import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, ipv6, tcp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D, NF_INET_FORWARD, NF_INET_LOCAL_IN } from '../../../../src/queue/layout';
import { recentControl, recentList, IP_LIST_TOT } from '../../../../src/rules/recent-lists';

const syn = (src = '198.18.1.1', ttl = 64, dst = '198.19.2.1') => ipv4({ src, dst, ttl }, tcp({ sport: 40000, dport: 22, flags: 'S' }));

/** The SSH guard operators publish: at most 3 new connections per source in 60 s, the 4th dropped. */
const GUARD = forward(
  '-p tcp --dport 22 -m recent --set --name SSH',
  '-p tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH -j DROP',
  '-p tcp --dport 22 -j ACCEPT',
);

test('-m recent: the SSH guard (set, then update --seconds --hitcount), per source, window sliding', () => {
  const { engine } = engineFor(GUARD);
  const v = (now: number, src?: string) => engine.evalFilter(ctxFor(syn(src)), now);
  assert.deepEqual([v(1000), v(2000), v(3000)], [A, A, A]);
  assert.equal(v(4000), D, '4th within 60 s');
  assert.equal(v(4000, '198.18.1.2'), A, 'another source has its own entry');
  // the matching --update added a stamp: 1,2,3,4,4 s; at 64 s the window [4 s, 64 s] holds 4, 4 and 64
  assert.equal(v(64_000), A, 'three stamps in the window (a stamp exactly 60 s old counts)');
  assert.deepEqual([v(64_100), v(64_200), v(64_300)], [A, A, D], 'the 4 s stamps left the window; the fourth within 60 s again');
  assert.equal(v(200_000), A, 'all stamps older than 60 s: allowed again');
  assert.deepEqual(
    recentControl('SSH', undefined, 200_000).lines!.map((l) => l.split(' ')[0]),
    ['src=198.18.1.2', 'src=198.18.1.1'],
    'least recently updated first',
  );
});

test('-m recent: --rcheck without --seconds, ! inversion, --remove, --rdest, --mask', () => {
  const { engine } = engineFor(
    forward(
      '-s 198.18.9.9 -m recent --set --name L --rdest',
      '-s 198.18.9.8 -m recent --remove --name L --rdest',
      '-m recent ! --rcheck --name L --rdest -j DROP',
      '-m recent --rcheck --name L --rdest -j ACCEPT',
    ),
  );
  const v = (src: string, dst: string) => engine.evalFilter(ctxFor(syn(src, 64, dst)), 1000);
  assert.equal(v('198.18.1.1', '198.19.2.7'), D, 'not in the list: ! --rcheck matches');
  assert.equal(v('198.18.9.9', '198.19.2.7'), A, '--set matches and adds the destination');
  assert.equal(v('198.18.1.1', '198.19.2.7'), A, 'now in the list');
  assert.equal(v('198.18.9.8', '198.19.2.7'), D, '--remove matched (no target) and removed it');
  assert.equal(v('198.18.1.1', '198.19.2.7'), D);

  const m = engineFor(forward('-m recent --set --name M --mask 255.255.255.0', '-m recent --rcheck --name M --mask 255.255.255.0 -j ACCEPT'));
  m.engine.evalFilter(ctxFor(syn('198.18.1.1')), 0);
  assert.equal(m.engine.evalFilter(ctxFor(syn('198.18.1.200')), 0), A);
  assert.equal(recentList('M')!.lines()[0].split(' ')[0], 'src=198.18.1.0', 'stored masked');
});

test('-m recent: --rttl compares the TTL as it was before forwarding; --reap drops the stalest address', () => {
  const { engine } = engineFor(forward('-m recent --set --name T', '-m recent --rcheck --rttl --name T -j ACCEPT'));
  const x = (ttl: number, hook = NF_INET_FORWARD, now = 0) => engine.evalFilter(ctxFor(syn('198.18.1.1', ttl), { hook }), now);
  x(63); // stored with TTL 64: 63 + 1 in FORWARD
  assert.equal(recentList('T')!.lines()[0].split(' ').slice(0, 3).join(' '), 'src=198.18.1.1 ttl: 64');
  const fwd = engineFor(forward('-m recent --rcheck --rttl --name T -j ACCEPT'));
  assert.equal(fwd.engine.evalFilter(ctxFor(syn('198.18.1.1', 63)), 0), A, 'same TTL before forwarding');
  assert.equal(fwd.engine.evalFilter(ctxFor(syn('198.18.1.1', 60)), 0), D, 'other TTL');
  const input = engineFor(
    ['*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', '-A INPUT -m recent --rcheck --rttl --name T -j ACCEPT', 'COMMIT', ''].join(
      '\n',
    ),
  );
  assert.equal(input.engine.evalFilter(ctxFor(syn('198.18.1.1', 64), { hook: NF_INET_LOCAL_IN }), 0), A, 'INPUT: the TTL as received');
  assert.equal(input.engine.evalFilter(ctxFor(syn('198.18.1.1', 63), { hook: NF_INET_LOCAL_IN }), 0), D, 'INPUT: not incremented');

  const r = engineFor(forward('-m recent --set --name R', '-m recent --rcheck --seconds 10 --reap --name R -j ACCEPT'));
  r.engine.evalFilter(ctxFor(syn('198.18.1.1')), 0);
  r.engine.evalFilter(ctxFor(syn('198.18.1.2')), 15_000);
  assert.equal(recentList('R')!.entries, 1, 'the stale address was reaped by the --rcheck of the second packet');
});

test('-m recent: at most ip_list_tot addresses, the least recently updated evicted; IPv6; lists shared by name and kept over a reload', () => {
  const { engine } = engineFor(forward('-m recent --set --name N'));
  for (let i = 0; i < IP_LIST_TOT + 5; i++) engine.evalFilter(ctxFor(syn(`198.18.${i >> 8}.${i & 255}`)), i);
  const l = recentList('N')!;
  assert.equal(l.entries, IP_LIST_TOT);
  assert.equal(l.lines()[0].split(' ')[0], 'src=198.18.0.5');
  engine.evalFilter(ctxFor(ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, tcp({ dport: 22 }))), 500);
  assert.match(l.lines().at(-1)!, /^src=2001:0002:0000:0001:0000:0000:0000:0001 ttl: 65 last_seen: 500 oldest_pkt: 1 500$/);
  engineFor(forward('-m recent --rcheck --name N'));
  assert.equal(recentList('N'), l, 'the reload kept the list');
  engineFor(forward('-j ACCEPT'));
  assert.equal(recentList('N'), undefined, 'a rule set without it frees it');
});

test('-m recent: writes as to /proc/net/xt_recent/NAME', () => {
  engineFor(forward('-m recent --rcheck --name W -j ACCEPT'));
  recentControl('W', '+198.18.5.5', 10);
  recentControl('W', '+2001:2::5', 11);
  recentControl('W', '+198.18.5.5', 12);
  assert.deepEqual(recentControl('W', undefined, 13).lines, [
    'src=2001:0002:0000:0000:0000:0000:0000:0005 ttl: 0 last_seen: 11 oldest_pkt: 1 11',
    'src=198.18.5.5 ttl: 0 last_seen: 12 oldest_pkt: 2 10, 12',
  ]);
  recentControl('W', '-198.18.5.5', 14);
  assert.equal(recentControl('W', undefined, 15).lines!.length, 1);
  recentControl('W', '/', 16);
  assert.deepEqual(recentControl('W', undefined, 17).lines, []);
  assert.throws(() => recentControl('W', '198.18.5.5', 0), /need "\+ADDR", "-ADDR" or "\/"/);
  assert.throws(() => recentControl('W', '+1.2.3', 0), /illegal address/);
  assert.throws(() => recentControl('NOPE', undefined, 0), /no recent list "NOPE"/);
  assert.deepEqual(recentControl(undefined, undefined, 0).names, ['W']);
});

test('-m recent: iptables-save spelling', () => {
  assert.equal(
    savedRule('-p tcp --dport 22 -m recent --set --name SSH -4'),
    '-A FORWARD -4 -p tcp -m tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.255 --rsource',
  );
  assert.equal(
    savedRule('-m recent --update --rttl --hitcount 4 --seconds 60 --name SSH --rsource -4 -j DROP'),
    '-A FORWARD -4 -m recent --update --seconds 60 --hitcount 4 --rttl --name SSH --mask 255.255.255.255 --rsource -j DROP',
  );
  assert.equal(
    savedRule('-m recent ! --rcheck --seconds 5 --reap --mask 255.255.0.0 --rdest'),
    '-A FORWARD -m recent ! --rcheck --seconds 5 --reap --name DEFAULT --mask 255.255.0.0 --rdest',
  );
  assert.equal(savedRule('-6 -m recent --set'), '-A FORWARD -6 -m recent --set --name DEFAULT --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource');
  assert.equal(savedRule('-m recent --remove --name X'), '-A FORWARD -m recent --remove --name X --rsource', 'a rule for both families: no mask to print');
});

test('-m recent: errors with LINE:COL', () => {
  const e = (r: string) => errorsOf(forward(r));
  assert.deepEqual(e('-m recent --name A'), ["e.rules:5:15: recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'"]);
  assert.deepEqual(e('-m recent --rcheck --set'), ['e.rules:5:31: option "--set" cannot be used together with "--rcheck"']);
  assert.deepEqual(e('-m recent --rcheck --seconds 0'), ['e.rules:5:41: bad value for option "--seconds", or out of range (1-4294967295)']);
  assert.deepEqual(e('-m recent --set --seconds 5'), ['e.rules:5:15: recent: --set cannot be used with --seconds, --hitcount, --reap or --rttl']);
  assert.deepEqual(e('-m recent --rcheck --reap'), ['e.rules:5:15: recent: option "--reap" also requires "--seconds"']);
  assert.deepEqual(e('-m recent --rcheck --hitcount 65536'), ['e.rules:5:42: hitcount (65536) is larger than allowed maximum (65535)']);
  assert.deepEqual(e('-m recent --rcheck --name A --name B'), ['e.rules:5:40: option "--name" can only be used once']);
  assert.deepEqual(e('-m recent --rcheck --mask 1.2.3'), ['e.rules:5:38: bad --mask "1.2.3" (an IPv4 or IPv6 address)']);
});
