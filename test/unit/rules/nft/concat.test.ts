/** Concatenations: "ip saddr . tcp dport @set", anonymous and named, intervals per component, verdict maps with concatenated keys, named verdict maps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf } from '../util';
import { icmp, icmpv6, ipv4, ipv6, tcp, udp } from '../../../helpers/packets';
import { NF_ACCEPT, NF_DROP } from '../../../../src/queue/layout';
import { formatRuleSet } from '../../../../src/rules/index';

const A = NF_ACCEPT;
const D = NF_DROP;
const pl = (protocol: string, field: string) => ({ payload: { protocol, field } });
const cat = (...parts: unknown[]) => ({ concat: parts });
const m = (left: unknown, right: unknown, op = '==') => ({ match: { op, left, right } });
const SADDR_DPORT = cat(pl('ip', 'saddr'), pl('tcp', 'dport'));

/** An inet table with a forward chain (policy drop) holding the rules, and the named sets/maps given. */
function doc(rules: unknown[][], objs: Record<string, unknown>[] = []): string {
  const items: unknown[] = [{ metainfo: { json_schema_version: 1 } }, { table: { family: 'inet', name: 't' } }];
  for (const o of objs) items.push({ [o.map ? 'map' : 'set']: { family: 'inet', table: 't', ...o } });
  items.push({ chain: { family: 'inet', table: 't', name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } });
  for (const expr of rules) items.push({ rule: { family: 'inet', table: 't', chain: 'fwd', expr } });
  return JSON.stringify({ nftables: items });
}

const t4 = (src: string, dport: number, dst = '198.19.2.1') => ipv4({ src, dst }, tcp({ sport: 40000, dport }));
const verdicts = (text: string, pkts: Uint8Array[]) => {
  const { engine } = engineFor(text);
  return pkts.map((p) => (engine.evalFilter(ctxFor(p), 0) === A ? 'A' : 'D')).join('');
};

test('ip saddr . tcp dport against an anonymous set, != and a failed load (UDP, IPv6)', () => {
  const set = { set: [cat('198.18.1.1', 22), cat('198.18.1.4', 443)] };
  const pkts = [t4('198.18.1.1', 22), t4('198.18.1.1', 443), t4('198.18.1.4', 443), t4('198.18.1.9', 22)];
  assert.equal(verdicts(doc([[m(SADDR_DPORT, set), { accept: null }]]), pkts), 'ADAD');
  assert.equal(verdicts(doc([[m(SADDR_DPORT, set, '!='), { accept: null }]]), pkts), 'DADA');
  // the load of tcp dport fails for UDP, of ip saddr for IPv6: no match whatever the operator
  const other = [ipv4({ src: '198.18.1.9' }, udp({ dport: 22 })), ipv6({}, tcp({ dport: 22 }))];
  assert.equal(verdicts(doc([[m(SADDR_DPORT, set, '!='), { accept: null }]]), other), 'DD');
});

test('a named interval set of concatenations: a prefix and a range per element (nft_set_pipapo)', () => {
  const svci = {
    name: 'svci',
    type: ['ipv4_addr', 'inet_service'],
    flags: ['interval'],
    elem: [cat({ prefix: { addr: '198.18.1.0', len: 24 } }, { range: [1000, 2000] }), cat('198.18.2.1', 22)],
  };
  const pkts = [t4('198.18.1.200', 1500), t4('198.18.1.200', 2001), t4('198.18.2.1', 22), t4('198.18.2.1', 1500), t4('198.18.3.1', 1000)];
  assert.equal(verdicts(doc([[m(SADDR_DPORT, '@svci'), { accept: null }]], [svci]), pkts), 'ADADD');
  // three components, IPv6 addresses: four words each
  const v6 = cat(pl('ip6', 'saddr'), pl('ip6', 'daddr'), pl('tcp', 'dport'));
  const el = { set: [cat({ prefix: { addr: '2001:2:0:1::', len: 64 } }, '2001:2:0:2::1', { range: [80, 90] })] };
  const p6 = (src: string, dport: number) => ipv6({ src, dst: '2001:2:0:2::1' }, tcp({ dport }));
  assert.equal(verdicts(doc([[m(v6, el), { accept: null }]]), [p6('2001:2:0:1::9', 85), p6('2001:2:0:3::9', 85), p6('2001:2:0:1::9', 91)]), 'ADD');
});

test('meta iif and mark in a concatenation; what is refused', () => {
  const k = cat({ meta: { key: 'iif' } }, pl('ip', 'saddr'));
  // ctxFor: in g0 (index 2)
  assert.equal(verdicts(doc([[m(k, { set: [cat('g0', '198.18.1.1')] }), { accept: null }]]), [t4('198.18.1.1', 1), t4('198.18.1.2', 1)]), 'AD');
  assert.equal(verdicts(doc([[m(k, { set: [cat('g1', '198.18.1.1')] }), { accept: null }]]), [t4('198.18.1.1', 1)]), 'D');
  const err = (text: string) => errorsOf(text, 'gw.json')[0];
  assert.match(
    err(doc([[m(cat({ meta: { key: 'iifname' } }, pl('ip', 'saddr')), { set: [cat('g0', '198.18.1.1')] })]])),
    /expr\[0\]\.match\.left\.concat\[0\]: meta iifname in a concatenation is not supported/,
  );
  assert.match(err(doc([[m(SADDR_DPORT, { set: [cat('198.18.1.1')] })]])), /match\.right\.set\[0\]: an element of 2 concatenated values/);
  assert.match(
    err(doc([[m(SADDR_DPORT, '@one')]], [{ name: 'one', type: 'ipv4_addr', elem: ['198.18.1.1'] }])),
    /set "one" is of type "ipv4_addr", not a concatenation of 2/,
  );
  assert.match(err(doc([[m(pl('ip', 'saddr'), '@two')]], [{ name: 'two', type: ['ipv4_addr', 'inet_service'], elem: [] }])), /set "two" holds concatenations/);
});

test('vmap with a concatenated key, anonymous and named (type verdict); overlapping elements refused', () => {
  const vm = (data: unknown) => [{ vmap: { key: SADDR_DPORT, data } }];
  const anon = {
    set: [
      [cat('198.18.1.1', 22), { accept: null }],
      [cat('198.18.1.2', 80), { drop: null }],
      [cat({ prefix: { addr: '198.18.3.0', len: 24 } }, { range: [1, 100] }), { accept: null }],
    ],
  };
  const pkts = [t4('198.18.1.1', 22), t4('198.18.1.2', 80), t4('198.18.3.7', 50), t4('198.18.3.7', 101)];
  // accept, drop, accept, and the policy (drop) for no element; a fall-through rule shows the map did not match
  const text = doc([vm(anon), [{ accept: null }]]);
  assert.equal(verdicts(text, pkts), 'ADAA');
  assert.equal(verdicts(doc([vm(anon)]), pkts), 'ADAD');
  const named = { name: 'm', type: ['ipv4_addr', 'inet_service'], map: 'verdict', elem: anon.set };
  assert.equal(verdicts(doc([vm('@m')], [named]), pkts), 'ADAD');
  // rules -L prints the document back, the map included
  assert.equal(formatRuleSet(engineFor(doc([vm('@m')], [named])).engine.compiled.set), doc([vm('@m')], [named]) + '\n');
  const overlap = { set: [anon.set[2], [cat('198.18.3.9', 50), { drop: null }]] };
  assert.match(errorsOf(doc([vm(overlap)]), 'gw.json')[0], /vmap\.data\.set\[1\]\[0\]: overlaps element 0 of the map/);
  assert.match(errorsOf(doc([vm('@s')], [{ name: 's', type: ['ipv4_addr', 'inet_service'], elem: [] }]), 'gw.json')[0], /"s" is not a verdict map/);
});

test('icmpv6 type . icmpv6 code and icmp code, as fw4 writes them', () => {
  const k = cat(pl('icmpv6', 'type'), pl('icmpv6', 'code'));
  const set = { set: [cat('packet-too-big', 'no-route'), cat('parameter-problem', 'admin-prohibited')] };
  const p6 = (type: number, code: number) => ipv6({}, icmpv6({ type, code }));
  assert.equal(verdicts(doc([[m(k, set), { accept: null }]]), [p6(2, 0), p6(2, 1), p6(4, 1), p6(4, 0), ipv4({}, icmp({ type: 3, code: 0 }))]), 'ADADD');
  const c4 = m(pl('icmp', 'code'), { set: ['port-unreachable', 'admin-prohibited'] });
  assert.equal(
    verdicts(doc([[c4, { accept: null }]]), [
      ipv4({}, icmp({ type: 3, code: 3 })),
      ipv4({}, icmp({ type: 3, code: 13 })),
      ipv4({}, icmp({ type: 3, code: 1 })),
    ]),
    'AAD',
  );
});
