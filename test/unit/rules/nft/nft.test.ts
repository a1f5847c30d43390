/** The nftables JSON front end: each expression translated, evaluated on packets; errors with their JSON path. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, type CtxOpts } from '../util';
import { icmp, icmpv6, ipv4, ipv6, tcp, udp } from '../../../helpers/packets';
import { NF_ACCEPT, NF_DROP, NF_INET_LOCAL_OUT, NF_INET_FORWARD } from '../../../../src/queue/layout';
import { CTSTATE_ESTABLISHED, CTSTATE_INVALID, CTSTATE_NEW, CTSTATE_RELATED, IPS_ASSURED, IP_CT_ESTABLISHED_REPLY } from '../../../../src/conntrack/constants';
import { isNftJson } from '../../../../src/rules/index';
import {
  RJ_ICMP6_ADM_PROHIBITED,
  RJ_ICMP_ADMIN_PROHIBITED,
  RJ_ICMP_PORT_UNREACHABLE,
  RJ_ICMP6_PORT_UNREACH,
  RJ_TCP_RESET,
} from '../../../../src/rules/targets/REJECT';

const A = NF_ACCEPT;
const D = NF_DROP;

type Expr = unknown[];
interface ChainSpec {
  name: string;
  base?: { hook: string; prio: number; policy?: string; type?: string };
  rules?: Expr[];
}

/** An `nft -j list ruleset` document: one table per entry of tables. */
function doc(tables: { family?: string; name?: string; chains: ChainSpec[]; sets?: Record<string, unknown>[] }[]): string {
  const items: unknown[] = [{ metainfo: { version: '1.0.6', json_schema_version: 1 } }];
  for (const t of tables) {
    const family = t.family ?? 'inet';
    const table = t.name ?? 't';
    items.push({ table: { family, name: table, handle: 1 } });
    for (const s of t.sets ?? []) items.push({ set: { family, table, ...s } });
    for (const c of t.chains)
      items.push({
        chain: {
          family,
          table,
          name: c.name,
          ...(c.base ? { type: c.base.type ?? 'filter', hook: c.base.hook, prio: c.base.prio, policy: c.base.policy ?? 'accept' } : {}),
        },
      });
    for (const c of t.chains) for (const expr of c.rules ?? []) items.push({ rule: { family, table, chain: c.name, expr } });
  }
  return JSON.stringify({ nftables: items });
}

/** A forward chain (policy drop) in an inet table holding the rules. */
function fwd(rules: Expr[], extra: ChainSpec[] = [], sets: Record<string, unknown>[] = [], family = 'inet'): string {
  return doc([{ family, chains: [{ name: 'fwd', base: { hook: 'forward', prio: 0, policy: 'drop' }, rules }, ...extra], sets }]);
}

const m = (left: unknown, right: unknown, op = '==') => ({ match: { op, left, right } });
const pl = (protocol: string, field: string) => ({ payload: { protocol, field } });
const meta = (key: string) => ({ meta: { key } });
const ct = (key: string) => ({ ct: { key } });
const ACCEPT = { accept: null };

/** Verdict of [...matches, accept] in forward (policy drop). */
function v(matches: unknown[], pkt: Uint8Array, o: CtxOpts = {}, sets: Record<string, unknown>[] = []): number {
  return engineFor(fwd([[...matches, ACCEPT]], [], sets)).engine.evalFilter(ctxFor(pkt, o), 0);
}

const t4 = (s: Parameters<typeof tcp>[0] = {}, ip: Parameters<typeof ipv4>[0] = {}) =>
  ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ...ip }, tcp({ sport: 40000, dport: 80, ...s }));
const u4 = (s: Parameters<typeof udp>[0] = {}) => ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5353, dport: 53, ...s }));
const t6 = (s: Parameters<typeof tcp>[0] = {}, ip: Parameters<typeof ipv6>[0] = {}) =>
  ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1', ...ip }, tcp({ sport: 40000, dport: 80, ...s }));

test('recognised by content: an object with an nftables list', () => {
  assert.ok(isNftJson(fwd([])));
  assert.ok(isNftJson(`  \n${fwd([])}`));
  assert.ok(!isNftJson('*filter\nCOMMIT\n'));
  assert.ok(!isNftJson('{"other": []}'));
});

test('ip saddr / daddr: address, prefix, !=, range, anonymous and named interval sets', () => {
  assert.equal(v([m(pl('ip', 'saddr'), '198.18.1.1')], t4()), A);
  assert.equal(v([m(pl('ip', 'saddr'), { prefix: { addr: '198.18.1.0', len: 24 } })], t4()), A);
  assert.equal(v([m(pl('ip', 'saddr'), { prefix: { addr: '198.18.2.0', len: 24 } })], t4()), D);
  assert.equal(v([m(pl('ip', 'daddr'), '198.19.2.1', '!=')], t4()), D);
  assert.equal(v([m(pl('ip', 'saddr'), { range: ['198.18.0.250', '198.18.1.2'] })], t4()), A);
  assert.equal(v([m(pl('ip', 'saddr'), { range: ['198.18.1.2', '198.18.1.9'] })], t4()), D);
  assert.equal(v([m(pl('ip', 'saddr'), { set: ['198.18.0.1', { prefix: { addr: '198.18.1.0', len: 30 } }] })], t4()), A);
  assert.equal(v([m(pl('ip', 'saddr'), { set: ['198.18.0.1'] }, '!=')], t4()), A);
  const blk = [
    { name: 'blk', type: 'ipv4_addr', flags: ['interval'], elem: [{ range: ['198.18.1.0', '198.18.1.5'] }, { elem: { val: '198.18.9.9', timeout: 60 } }] },
  ];
  assert.equal(v([m(pl('ip', 'saddr'), '@blk')], t4(), {}, blk), A);
  assert.equal(v([m(pl('ip', 'saddr'), '@blk')], t4({}, { src: '198.18.9.9' }), {}, blk), A);
  assert.equal(v([m(pl('ip', 'saddr'), '@blk')], t4({}, { src: '198.18.9.8' }), {}, blk), D);
  // an IPv4 test never matches IPv6 (nft's nfproto dependency), whatever the operator
  assert.equal(v([m(pl('ip', 'saddr'), '198.18.0.1', '!=')], t6()), D);
});

test('ip6 saddr / daddr: address, prefix, set, named set', () => {
  assert.equal(v([m(pl('ip6', 'saddr'), '2001:2:0:1::1')], t6()), A);
  assert.equal(v([m(pl('ip6', 'daddr'), { prefix: { addr: '2001:2:0:2::', len: 64 } })], t6()), A);
  assert.equal(v([m(pl('ip6', 'daddr'), { prefix: { addr: '2001:2:0:3::', len: 64 } })], t6()), D);
  assert.equal(v([m(pl('ip6', 'saddr'), { set: ['2001:2::9', { range: ['2001:2:0:1::', '2001:2:0:1::ff'] }] })], t6()), A);
  const s6 = [{ name: 's6', type: 'ipv6_addr', elem: ['2001:2:0:1::1'] }];
  assert.equal(v([m(pl('ip6', 'saddr'), '@s6', '!=')], t6(), {}, s6), D);
  assert.equal(v([m(pl('ip6', 'saddr'), '2001:2:0:1::1')], t4()), D);
});

test('protocols: ip protocol, meta l4proto (names, numbers, sets, !=)', () => {
  assert.equal(v([m(pl('ip', 'protocol'), 'tcp')], t4()), A);
  assert.equal(v([m(pl('ip', 'protocol'), 'tcp')], t6()), D);
  assert.equal(v([m(meta('l4proto'), 'tcp')], t6()), A);
  assert.equal(v([m(meta('l4proto'), 17, '!=')], t6()), A);
  assert.equal(v([m(meta('l4proto'), { set: ['icmp', 'ipv6-icmp'] })], ipv6({}, icmpv6({ type: 128 }))), A);
  assert.equal(v([m(meta('l4proto'), { set: ['icmp', 'ipv6-icmp'] })], t4()), D);
});

test('tcp / udp / th ports: value, range, set, named set, !=, <', () => {
  assert.equal(v([m(pl('tcp', 'dport'), 80)], t4()), A);
  assert.equal(v([m(pl('tcp', 'dport'), 80)], u4({ dport: 80 })), D);
  assert.equal(v([m(pl('udp', 'dport'), 53)], u4()), A);
  assert.equal(v([m(pl('tcp', 'sport'), { range: [1024, 65535] })], t4()), A);
  assert.equal(v([m(pl('tcp', 'dport'), { set: [22, { range: [79, 81] }] })], t6()), A);
  assert.equal(v([m(pl('tcp', 'dport'), { set: [22, 443] }, '!=')], t4()), A);
  assert.equal(v([m(pl('tcp', 'dport'), 1024, '<')], t4()), A);
  assert.equal(v([m(pl('tcp', 'dport'), 80, '>')], t4()), D);
  const web = [{ name: 'web', type: 'inet_service', elem: [8080, 80] }];
  assert.equal(v([m(pl('tcp', 'dport'), '@web')], t4(), {}, web), A);
  // th: the transport header's bytes 2-3 whatever the protocol (for ICMP echo: the checksum is not 53)
  assert.equal(v([m(pl('th', 'dport'), 53)], u4()), A);
  assert.equal(v([m(pl('th', 'dport'), 80)], t6()), A);
  assert.equal(v([m(pl('th', 'dport'), 53)], ipv4({}, icmp({ type: 8 }))), D);
  // a fragment after the first has no transport header: no match, also with !=
  const head = tcp({ dport: 80 });
  assert.equal(v([m(pl('tcp', 'dport'), 22, '!=')], ipv4({ proto: 6 }, head)), A);
  assert.equal(v([m(pl('tcp', 'dport'), 22, '!=')], ipv4({ fragOffset: 8, proto: 6 }, head)), D);
});

test('tcp flags: == under a mask, in (any of the bits)', () => {
  const synOnly = m({ '&': [pl('tcp', 'flags'), ['fin', 'syn', 'rst', 'ack']] }, 'syn');
  assert.equal(v([synOnly], t4({ flags: 'S' })), A);
  assert.equal(v([synOnly], t4({ flags: 'SA' })), D);
  assert.equal(v([synOnly], t4({ flags: 'SP' })), A);
  assert.equal(v([m(pl('tcp', 'flags'), 'syn', 'in')], t4({ flags: 'SA' })), A);
  assert.equal(v([m(pl('tcp', 'flags'), 'syn', 'in')], t4({ flags: 'A' })), D);
  assert.equal(v([m(pl('tcp', 'flags'), 'syn')], t4({ flags: 'SA' })), D);
});

test('icmp type / icmpv6 type: names, sets, family', () => {
  assert.equal(v([m(pl('icmp', 'type'), 'echo-request')], ipv4({}, icmp({ type: 8 }))), A);
  assert.equal(v([m(pl('icmp', 'type'), 'echo-request')], ipv4({}, icmp({ type: 0 }))), D);
  assert.equal(v([m(pl('icmpv6', 'type'), { set: ['echo-request', 'nd-neighbor-solicit'] })], ipv6({}, icmpv6({ type: 135 }))), A);
  assert.equal(v([m(pl('icmpv6', 'type'), 'echo-request')], ipv4({}, icmp({ type: 8 }))), D);
});

test('meta iifname / oifname (wildcard, !=), nfproto, mark (mask, set)', () => {
  assert.equal(v([m(meta('iifname'), 'g0')], t4()), A);
  assert.equal(v([m(meta('iifname'), 'g*')], t4()), A);
  assert.equal(v([m(meta('oifname'), 'g1', '!=')], t4()), D);
  assert.equal(v([m(meta('nfproto'), 'ipv6')], t4()), D);
  assert.equal(v([m(meta('nfproto'), 'ipv6')], t6()), A);
  assert.equal(v([m(meta('mark'), 16)], t4(), { mark: 16 }), A);
  assert.equal(v([m({ '&': [meta('mark'), 255] }, 1)], t4(), { mark: 0x301 }), A);
  assert.equal(v([m({ '&': [meta('mark'), 255] }, 1)], t4(), { mark: 0x302 }), D);
  assert.equal(v([m(meta('mark'), { set: [1, 2, 3] })], t4(), { mark: 2 }), A);
});

test('ct state / status / direction / mark', () => {
  const est = { ctstate: CTSTATE_ESTABLISHED };
  assert.equal(v([m(ct('state'), { set: ['established', 'related'] })], t4(), est), A);
  assert.equal(v([m(ct('state'), { set: ['established', 'related'] })], t4(), { ctstate: CTSTATE_NEW }), D);
  assert.equal(v([m(ct('state'), 'invalid', '!=')], t4(), { ctstate: CTSTATE_INVALID, entry: -1 }), D);
  assert.equal(v([m(ct('status'), 'assured', 'in')], t4(), { ctstatus: IPS_ASSURED }), A);
  assert.equal(v([m(ct('status'), 'assured', 'in')], t4()), D);
  assert.equal(v([m(ct('direction'), 'reply')], t4(), { ctinfo: IP_CT_ESTABLISHED_REPLY, ctstate: CTSTATE_ESTABLISHED }), A);
  assert.equal(v([m(ct('direction'), 'original')], t4(), { ctinfo: IP_CT_ESTABLISHED_REPLY, ctstate: CTSTATE_ESTABLISHED }), D);
  const marked = (ctx: ReturnType<typeof ctxFor>) => ((ctx.ctmark = 5), ctx);
  const e = (rules: unknown[]) => engineFor(fwd([[...rules, ACCEPT]])).engine;
  assert.equal(e([m(ct('mark'), 5)]).evalFilter(marked(ctxFor(t4())), 0), A);
  assert.equal(e([m(ct('mark'), { set: [4, 5] })]).evalFilter(marked(ctxFor(t4())), 0), A);
  // no conntrack: ct mark does not load, so not even != matches
  assert.equal(e([m(ct('mark'), { set: [4] }, '!=')]).evalFilter(marked(ctxFor(t4(), { entry: -1 })), 0), D);
});

test('verdict map: one rule per element, jump returns after the map', () => {
  const vm = {
    vmap: {
      key: ct('state'),
      data: {
        set: [
          ['invalid', { drop: null }],
          ['established', ACCEPT],
          ['related', { jump: { target: 'rel' } }],
        ],
      },
    },
  };
  const { engine } = engineFor(fwd([[vm], [m(pl('tcp', 'dport'), 80), ACCEPT]], [{ name: 'rel', rules: [[m(pl('tcp', 'dport'), 81), ACCEPT]] }]));
  assert.equal(engine.evalFilter(ctxFor(t4(), { ctstate: CTSTATE_ESTABLISHED, ctinfo: 0 }), 0), A);
  assert.equal(engine.evalFilter(ctxFor(t4(), { ctstate: CTSTATE_INVALID }), 0), D);
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 81 }), { ctstate: CTSTATE_RELATED }), 0), A);
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 80 }), { ctstate: CTSTATE_RELATED }), 0), A, 'back from rel, the next rule');
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 82 }), { ctstate: CTSTATE_RELATED }), 0), D);
  const ports = {
    vmap: {
      key: pl('tcp', 'dport'),
      data: {
        set: [
          [22, ACCEPT],
          [{ range: [80, 90] }, ACCEPT],
        ],
      },
    },
  };
  const p = engineFor(fwd([[ports]])).engine;
  assert.equal(p.evalFilter(ctxFor(t4({ dport: 85 })), 0), A);
  assert.equal(p.evalFilter(ctxFor(t4({ dport: 23 })), 0), D);
});

test('regular chains: jump, goto, return; the base chain policy at the end', () => {
  const { engine } = engineFor(
    fwd(
      [
        [m(pl('tcp', 'dport'), 80), { jump: { target: 'a' } }],
        [m(pl('tcp', 'dport'), 81), { goto: { target: 'a' } }],
        [m(pl('tcp', 'dport'), 80), ACCEPT],
      ],
      [{ name: 'a', rules: [[m(pl('ip', 'saddr'), '198.18.1.9'), ACCEPT], [{ return: null }], [ACCEPT]] }],
    ),
  );
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 80 })), 0), A, 'returned, then accepted by the next rule');
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 81 })), 0), D, 'goto: return ends the base chain (policy drop)');
});

test('several base chains on one hook: priority order, accept goes on, drop ends; families', () => {
  const text = doc([
    { name: 'late', chains: [{ name: 'c', base: { hook: 'forward', prio: 10 }, rules: [[m(pl('tcp', 'dport'), 80), { drop: null }]] }] },
    { name: 'early', chains: [{ name: 'c', base: { hook: 'forward', prio: -5 }, rules: [[m(pl('tcp', 'dport'), 81), ACCEPT], [{ drop: null }]] }] },
    { family: 'ip6', name: 'six', chains: [{ name: 'c', base: { hook: 'forward', prio: 0, policy: 'drop' } }] },
  ]);
  const { engine } = engineFor(text);
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 81 })), 0), A);
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 80 })), 0), D);
  assert.equal(engine.evalFilter(ctxFor(t6({ dport: 81 })), 0), D, 'the ip6 chain (policy drop) sees only IPv6');
  assert.deepEqual(Array.from(engine.compiled.bases[3], (c) => engine.compiled.chains[c].name).join(' '), 'inet/early/c ip6/six/c inet/late/c');
});

test('raw priority: notrack in prerouting before conntrack; output split at -200', () => {
  const text = doc([
    {
      chains: [
        { name: 'pre', base: { hook: 'prerouting', prio: -300 }, rules: [[m(pl('udp', 'dport'), 53), { notrack: null }]] },
        { name: 'out', base: { hook: 'output', prio: 0, policy: 'drop' } },
      ],
    },
  ]);
  const { engine } = engineFor(text);
  const ctx = ctxFor(u4(), { hook: NF_INET_FORWARD });
  assert.equal(engine.evalRaw(ctx, 0), A);
  assert.equal(ctx.notrack, 1);
  assert.equal(engine.evalFilter(ctxFor(u4(), { hook: NF_INET_LOCAL_OUT }), 0), D);
});

test('log and a verdict in one rule; limit, log, accept through a chain of its own', () => {
  const { engine, logs } = engineFor(fwd([[m(pl('tcp', 'dport'), 80), { log: { prefix: 'p80: ', level: 'info' } }, { drop: null }]]));
  assert.equal(engine.evalFilter(ctxFor(t4()), 0), D);
  assert.equal(logs.length, 1);
  assert.match(logs[0][0], /^p80: /);
  assert.equal(logs[0][1], 6);
  const lim = engineFor(fwd([[{ limit: { rate: 1, per: 'minute', burst: 2 } }, { log: { prefix: 'x ' } }, ACCEPT]]));
  // nft_limit's bucket holds burst packets (tokens = nsecs / rate * burst): 2 pass, then the rule does not match
  const verdicts = [0, 1, 2].map(() => lim.engine.evalFilter(ctxFor(t4()), 0));
  assert.deepEqual(verdicts, [A, A, D]);
  assert.equal(lim.logs.length, 2);
});

test('limit: packets (burst default 5), over, bytes (rate_unit, burst_unit), refill in nanoseconds', () => {
  const run = (limit: Record<string, unknown>, times: number[], pkt = t4()) => {
    const { engine } = engineFor(fwd([[{ limit }, ACCEPT]]));
    return times.map((t) => (engine.evalFilter(ctxFor(pkt), t) === A ? 'A' : 'D')).join('');
  };
  // kernel check (nft in a namespace, 10 pings 10 ms apart): rate 1/second burst 3 passes 3, limit over on a second bucket drops 4 of the 7 left
  assert.equal(run({ rate: 1, per: 'second', burst: 3 }, [0, 10, 20, 30, 40]), 'AAADD');
  assert.equal(run({ rate: 1, per: 'second', burst: 3, inv: true }, [0, 10, 20, 30, 40]), 'DDDAA');
  assert.equal(run({ rate: 1, per: 'second' }, [0, 1, 2, 3, 4, 5, 6]), 'AAAAADD', 'no burst: 5');
  assert.equal(run({ rate: 1, per: 'hour', burst: 1 }, [0, 1000]), 'AD', 'per hour: a packet costs 3.6e12 ns');
  // 2/second: one packet's worth of tokens every 500 ms, and no more than the burst
  assert.equal(run({ rate: 2, per: 'second', burst: 1 }, [0, 100, 499.999, 500, 501, 2000, 2000.1]), 'ADDADAD');
  // bytes: 10 kbytes/second with a burst of 2000 bytes: the bucket is 1 s * (10240 + 2000) / 10240 of credit
  const len = t4().length;
  const per = Math.floor((1e9 * len) / 10240); // ns of credit a packet costs
  const fit = Math.floor(Math.floor((1e9 * 12240) / 10240) / per);
  const burst = Array.from({ length: fit + 1 }, () => 0);
  assert.equal(run({ rate: 10, rate_unit: 'kbytes', burst: 2000, burst_unit: 'bytes', per: 'second' }, burst), 'A'.repeat(fit) + 'D');
  assert.equal(run({ rate: 10, rate_unit: 'kbytes', burst: 2000, per: 'second', inv: true }, burst), 'D'.repeat(fit) + 'A');
  assert.match(errorsOf(fwd([[{ limit: { rate: 1, rate_unit: 'kbytes', per: 'week' } }, ACCEPT]]))[0], /expr\[0\]\.limit\.per: byte rates per week/);
  assert.match(errorsOf(fwd([[{ limit: 'lim1' }, ACCEPT]]))[0], /expr\[0\]\.limit: named limits/);
});

test('iifname / oifname against an anonymous set of names: one engine rule per name, counted together', () => {
  assert.equal(v([m(meta('iifname'), { set: ['eth0', 'g0'] }, 'in')], t4()), A);
  assert.equal(v([m(meta('iifname'), { set: ['eth0', 'eth1'] })], t4()), D);
  assert.equal(v([m(meta('iifname'), { set: ['g0'] }), m(meta('oifname'), { set: ['g1'] })], t4()), A, 'firewalld writes one-name sets');
  assert.equal(v([m(meta('iifname'), { set: ['g0', 'eth0'] }), m(meta('oifname'), { set: ['eth1', 'g1'] })], t4()), A);
  assert.equal(v([m(meta('iifname'), { set: ['g0', 'eth0'] }), m(meta('oifname'), { set: ['eth1', 'eth0'] })], t4()), D);
  assert.match(errorsOf(fwd([[m(meta('iifname'), { set: ['g0', 'eth0'] }, '!='), ACCEPT]]))[0], /!= a set of several names is not supported/);
  assert.match(errorsOf(fwd([[m(meta('iifname'), { set: ['g*', 'eth0'] }), ACCEPT]]))[0], /right\.set\[0\]: a wildcard in a set/);
});

test('meta iif / oif: the interface index nft resolved at load; 0 without a device', () => {
  // IFNAMES: g0 = 2, g1 = 3 (ctxFor: in g0, out g1)
  assert.equal(v([m(meta('iif'), 'g0')], t4()), A);
  assert.equal(v([m(meta('iif'), 'g1')], t4()), D);
  assert.equal(v([m(meta('oif'), { set: ['eth0', 'g1'] })], t4()), A);
  assert.equal(v([m(meta('oif'), 'g1', '!=')], t4()), D);
  assert.equal(v([m(meta('iif'), 'g0')], t4(), { indev: 0 }), D);
  // same name, another index (the interface was created again after the load): no match, as in the kernel
  assert.equal(v([m(meta('iif'), 'g0')], t4(), { indev: 7 }), D);
  assert.match(errorsOf(fwd([[m(meta('iif'), 'nosuch0'), ACCEPT]]))[0], /expr\[0\]\.match\.right: Interface does not exist: "nosuch0"/);
});

test('ip6 nexthdr: the fixed header field (network header + 6), not the protocol after extension headers', () => {
  const hbh = (l4: Uint8Array) => ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1', extHeaders: [{ type: 0 }] }, l4);
  assert.equal(v([m(pl('ip6', 'nexthdr'), 'tcp')], t6()), A);
  assert.equal(v([m(pl('ip6', 'nexthdr'), 'tcp')], hbh(tcp({ dport: 80 }))), D);
  assert.equal(v([m(pl('ip6', 'nexthdr'), 0)], hbh(tcp({ dport: 80 }))), A);
  assert.equal(v([m(meta('l4proto'), 'tcp')], hbh(tcp({ dport: 80 }))), A, 'l4proto: after the extension headers');
  assert.equal(v([m(pl('ip6', 'nexthdr'), { set: ['udp', 'tcp'] })], t6()), A);
  // an inet table: the nfproto ipv6 dependency; the rule's protocol stays unset (the hop-by-hop packet below is TCP)
  assert.equal(v([m(pl('ip6', 'nexthdr'), 'tcp')], t4()), D);
  assert.equal(v([m(pl('ip6', 'nexthdr'), 0), m(pl('tcp', 'dport'), 80)], hbh(tcp({ dport: 80 }))), A);
});

test('reject: icmp, icmpv6, icmpx and tcp reset per family', () => {
  const rj = (r: unknown, pkt: Uint8Array) => {
    const e = engineFor(fwd([[r]]));
    assert.equal(e.engine.evalFilter(ctxFor(pkt), 0), D);
    return e.rejects;
  };
  assert.deepEqual(rj({ reject: { type: 'icmpx', expr: 'admin-prohibited' } }, t4()), [RJ_ICMP_ADMIN_PROHIBITED]);
  assert.deepEqual(rj({ reject: { type: 'icmpx', expr: 'admin-prohibited' } }, t6()), [RJ_ICMP6_ADM_PROHIBITED]);
  assert.deepEqual(rj({ reject: null }, t6()), [RJ_ICMP6_PORT_UNREACH]);
  assert.deepEqual(rj({ reject: { type: 'icmp', expr: 'port-unreachable' } }, t4()), [RJ_ICMP_PORT_UNREACHABLE]);
  // reject with icmp in an inet table applies to IPv4 only (nft's nfproto dependency)
  assert.deepEqual(rj({ reject: { type: 'icmp', expr: 'port-unreachable' } }, t6()), []);
  const tcpRst = engineFor(fwd([[m(meta('l4proto'), 'tcp'), { reject: { type: 'tcp reset' } }]]));
  tcpRst.engine.evalFilter(ctxFor(t6()), 0);
  assert.deepEqual(tcpRst.rejects, [RJ_TCP_RESET]);
});

test('base chains nfqwall has no place for load when they can change nothing (firewalld and fw4 write empty nat, mangle, route chains)', () => {
  const text = doc([
    {
      chains: [
        { name: 'nat_pre', base: { hook: 'prerouting', prio: -90, type: 'nat' }, rules: [[m(meta('iifname'), 'g0'), { goto: { target: 'zone' } }]] },
        { name: 'mangle_pre', base: { hook: 'prerouting', prio: -140 }, rules: [[{ jump: { target: 'zone' } }], [ACCEPT]] },
        { name: 'srcnat', base: { hook: 'postrouting', prio: 100, type: 'nat' } },
        { name: 'route_out', base: { hook: 'output', prio: -150, type: 'route' } },
        { name: 'zone', rules: [[m(pl('tcp', 'dport'), 22), { return: null }]] },
        { name: 'fwd', base: { hook: 'forward', prio: 0, policy: 'drop' }, rules: [[m(pl('tcp', 'dport'), 22), ACCEPT]] },
      ],
    },
  ]);
  const { engine } = engineFor(text);
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 22 })), 0), A);
  assert.equal(engine.evalFilter(ctxFor(t4({ dport: 23 })), 0), D);
  // a regular chain they reach may not act either
  const acts = doc([
    {
      chains: [
        { name: 'post', base: { hook: 'postrouting', prio: 0 }, rules: [[{ jump: { target: 'z' } }]] },
        { name: 'z', rules: [[{ log: null }]] },
      ],
    },
  ]);
  assert.match(
    errorsOf(acts, 'gw.json')[0],
    /nftables\[2\]\.chain\.hook: postrouting chains are not supported .*a rule reached from it has a statement \(LOG\)/,
  );
});

test('what is not supported is refused with its JSON path', () => {
  const err = (text: string) => errorsOf(text, 'gw.json');
  assert.deepEqual(err(fwd([[m(pl('tcp', 'dport'), 22), { osf: { key: 'name' } }, ACCEPT]])), [
    'gw.json: nftables[3].rule.expr[1]: unsupported expression "osf"',
  ]);
  assert.match(
    err(fwd([[m(meta('pkttype'), 'broadcast'), ACCEPT]]))[0],
    /^gw\.json: nftables\[3\]\.rule\.expr\[0\]\.match\.left: meta pkttype is not supported: the queue does not deliver/,
  );
  assert.match(
    err(doc([{ chains: [{ name: 'n', base: { hook: 'output', prio: -150, type: 'route' }, rules: [[{ drop: null }]] }] }]))[0],
    /^gw\.json: nftables\[2\]\.chain\.type: chains of type "route" are not supported .*can change nothing: a rule reached from it has drop/,
  );
  // a prerouting chain after conntrack that acts goes on the pre-routing crossing, before nat prerouting: refused after one
  assert.deepEqual(err(doc([{ chains: [{ name: 'p', base: { hook: 'prerouting', prio: 0 }, rules: [[{ counter: { packets: 0, bytes: 0 } }]] }] }])), []);
  const late = doc([
    {
      chains: [
        { name: 'p', base: { hook: 'prerouting', prio: 0 }, rules: [[{ counter: { packets: 0, bytes: 0 } }]] },
        { name: 'n', base: { hook: 'prerouting', prio: -100, type: 'nat' }, rules: [[m(pl('tcp', 'dport'), 1), { dnat: { addr: '198.19.2.1' } }]] },
      ],
    },
  ]);
  assert.match(err(late)[0], /nftables\[2\]\.chain\.hook: a prerouting chain at priority 0 after the nat chain at -100 is not supported/);
  assert.match(err(doc([{ chains: [{ name: 'p', base: { hook: 'postrouting', prio: 0, policy: 'drop' } }] }]))[0], /postrouting chains .*its policy drops/);
  assert.match(err(doc([{ family: 'bridge', chains: [] }]))[0], /nftables\[1\]\.table\.family: tables of family "bridge"/);
  assert.match(err(fwd([[{ notrack: null }]]))[0], /nftables\[3\]\.rule: notrack after conntrack/);
  assert.match(
    err(
      fwd(
        [[{ jump: { target: 'a' } }]],
        [
          { name: 'a', rules: [[{ jump: { target: 'b' } }]] },
          { name: 'b', rules: [[{ jump: { target: 'a' } }]] },
        ],
      ),
    )[0],
    /loop/,
  );
  assert.match(err(fwd([[m(pl('ip', 'saddr'), '@nope'), ACCEPT]]))[0], /nftables\[3\]\.rule\.expr\[0\]\.match\.right: no set "nope"/);
  assert.match(err(fwd([[{ mangle: { key: pl('ip', 'ttl'), value: 1 } }]]))[0], /setting anything but meta mark and ct mark/);
  assert.match(err('{"nftables": [ {"metainfo": {"json_schema_version": 2}} ]}')[0], /schema version 2/);
});

test('run --nft FILE: the rules, which must be nft -j JSON', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { parseRunArgs } = await import('../../../../src/cli/run');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-nft-unit-'));
  try {
    const json = path.join(dir, 'gw.json');
    fs.writeFileSync(json, fwd([]));
    const ipt = path.join(dir, 'gw.rules');
    fs.writeFileSync(ipt, '*filter\nCOMMIT\n');
    assert.equal(parseRunArgs(['--nft', json]).rules, json);
    assert.throws(() => parseRunArgs(['--nft', ipt]), /not the JSON of nft -j list ruleset/);
    assert.throws(() => parseRunArgs(['--nft', json, '--rules', ipt]), /exclusive/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('rules -L: the JSON back, with each counter statement holding what its rule counted', async () => {
  const { formatRuleSet } = await import('../../../../src/rules/index');
  const vm = {
    vmap: {
      key: pl('tcp', 'dport'),
      data: {
        set: [
          [80, ACCEPT],
          [81, { drop: null }],
        ],
      },
    },
  };
  const text = fwd([
    [m(pl('tcp', 'dport'), 22), { counter: { packets: 0, bytes: 0 } }, { log: { prefix: 'ssh ' } }, { drop: null }],
    [{ counter: { packets: 0, bytes: 0 } }, vm],
    [{ limit: { rate: 1, per: 'minute', burst: 2 } }, { counter: { packets: 0, bytes: 0 } }, { log: null }, ACCEPT],
  ]);
  const { engine } = engineFor(text);
  const set = engine.compiled.set;
  assert.equal(formatRuleSet(set), JSON.stringify(JSON.parse(text)) + '\n', 'without counters: as read');
  for (const dport of [22, 22, 80, 81, 81, 99, 99, 99]) engine.evalFilter(ctxFor(t4({ dport })), 0);
  const out = JSON.parse(formatRuleSet(set, { counters: engine.counters })) as {
    nftables: { rule?: { expr: { counter?: { packets: number; bytes: number } }[] } }[];
  };
  const counted = out.nftables.filter((i) => i.rule).map((i) => i.rule!.expr.find((e) => e.counter)!.counter!);
  const len = t4().length;
  // log + drop are two engine rules over the same packets: counted once; the map's elements add up; the limit passes 2 of 3
  assert.deepEqual(counted, [
    { packets: 2, bytes: 2 * len },
    { packets: 3, bytes: 3 * len },
    { packets: 2, bytes: 2 * len },
  ]);
});
