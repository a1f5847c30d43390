import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, forward, type CtxOpts } from './util';
import { icmp, icmpError, icmpv6, ipv4, ipv6, tcp, udp } from '../../helpers/packets';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING } from '../../../src/queue/layout';
import {
  CTSTATE_ESTABLISHED,
  CTSTATE_INVALID,
  CTSTATE_NEW,
  CTSTATE_RELATED,
  CTSTATE_UNTRACKED,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NONE,
  IP_CT_RELATED,
  IP_CT_UNTRACKED,
} from '../../../src/conntrack/constants';
import { CREDITS_PER_JIFFY } from '../../../src/rules/matches/limit';

const A = NF_ACCEPT;
const D = NF_DROP;

/** Verdict of `rule -j ACCEPT` in FORWARD (policy DROP) for pkt. */
function v(rule: string, pkt: Uint8Array, o: CtxOpts = {}): number {
  const { engine } = engineFor(forward(`${rule} -j ACCEPT`));
  return engine.evalFilter(ctxFor(pkt, o), 0);
}

const t4 = (s: Parameters<typeof tcp>[0] = {}, ip: Parameters<typeof ipv4>[0] = {}) =>
  ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ...ip }, tcp({ sport: 40000, dport: 80, ...s }));
const u4 = (s: Parameters<typeof udp>[0] = {}, ip: Parameters<typeof ipv4>[0] = {}) =>
  ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ...ip }, udp({ sport: 5353, dport: 53, ...s }));
const t6 = (s: Parameters<typeof tcp>[0] = {}, ip: Parameters<typeof ipv6>[0] = {}) =>
  ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1', ...ip }, tcp({ sport: 40000, dport: 80, ...s }));

test('-p: names, numbers, negation, all', () => {
  assert.equal(v('-p tcp', t4()), A);
  assert.equal(v('-p udp', t4()), D);
  assert.equal(v('! -p udp', t4()), A);
  assert.equal(v('! -p tcp', t4()), D);
  assert.equal(v('-p 6', t4()), A);
  assert.equal(v('-p all', u4()), A);
  assert.equal(v('-p 47', ipv4({ proto: 47 }, new Uint8Array(8))), A);
  assert.equal(v('-p 47', t4()), D);
  assert.equal(v('! -p 47', ipv4({ proto: 50 }, new Uint8Array(8))), A);
  assert.equal(v('-p ipv6-icmp', ipv6({}, icmpv6())), A);
});

test('-s/-d: IPv4 and IPv6 CIDR, masks, negation', () => {
  assert.equal(v('-s 198.18.1.0/24', t4()), A);
  assert.equal(v('-s 198.18.2.0/24', t4()), D);
  assert.equal(v('! -s 198.18.2.0/24', t4()), A);
  assert.equal(v('-d 198.19.2.1', t4()), A);
  assert.equal(v('-d 198.19.2.2/32', t4()), D);
  assert.equal(v('-d 198.0.2.0/255.0.255.0', t4()), A);
  assert.equal(v('-s 0.0.0.0/0', t4()), A);
  assert.equal(v('-s 2001:2:0:1::/64', t6()), A);
  assert.equal(v('-s 2001:2:0:1::/64', t6({}, { src: '2001:2:0:3::1' })), D);
  assert.equal(v('! -d 2001:2:0:2::1/128', t6()), D);
  assert.equal(v('-d 2001:2::/48', t6()), A);
  // a rule with IPv4 addresses never applies to IPv6 packets, even negated
  assert.equal(v('! -s 10.0.0.0/8', t6()), D);
});

test('-i/-o: exact names, + wildcard, negation, no device, per-ifindex cache and link changes', () => {
  assert.equal(v('-i g0', t4()), A);
  assert.equal(v('-i g1', t4()), D);
  assert.equal(v('-i g+', t4()), A);
  assert.equal(v('-o g+', t4()), A);
  assert.equal(v('! -o g1', t4()), D);
  assert.equal(v('-i eth+', t4(), { indev: 5 }), A);
  assert.equal(v('-i eth', t4(), { indev: 5 }), D);
  assert.equal(v('-i veth-big', t4(), { indev: 70000 }), A);
  assert.equal(v('-o g1', t4(), { outdev: 0 }), D);
  assert.equal(v('! -o g1', t4(), { outdev: 0 }), A);
  assert.equal(v('-i +', t4()), A);
  // renaming a link: results are cached per ifindex until the generation changes
  const names: Record<number, string> = { 2: 'g0', 3: 'g1' };
  const te = engineFor(forward('-i wan0 -j ACCEPT'), names);
  const ctx = ctxFor(t4());
  assert.equal(te.engine.evalFilter(ctx, 0), D);
  names[2] = 'wan0';
  assert.equal(te.engine.evalFilter(ctx, 0), D, 'cached until the link generation changes');
  te.gen.value++;
  assert.equal(te.engine.evalFilter(ctx, 0), A);
  // an unknown ifindex is asked again (not cached)
  ctx.indev = 9;
  assert.equal(te.engine.evalFilter(ctx, 0), D);
  names[9] = 'wan0';
  assert.equal(te.engine.evalFilter(ctx, 0), A);
});

test('tcp: ports, ranges, flags, --syn, --tcp-option, negation, fragments, hotdrop', () => {
  assert.equal(v('-p tcp --dport 80', t4()), A);
  assert.equal(v('-p tcp --dport 81', t4()), D);
  assert.equal(v('-p tcp -m tcp ! --dport 81', t4()), A);
  assert.equal(v('-p tcp -m tcp --sport 40000:40010', t4()), A);
  assert.equal(v('-p tcp -m tcp --sport 1:1023', t4()), D);
  assert.equal(v('-p tcp -m tcp ! --sport 1:1023', t4()), A);
  assert.equal(v('-p tcp -m tcp --syn', t4({ flags: 'S' })), A);
  assert.equal(v('-p tcp -m tcp --syn', t4({ flags: 'SA' })), D);
  assert.equal(v('-p tcp -m tcp ! --syn', t4({ flags: 'A' })), A);
  assert.equal(v('-p tcp -m tcp --tcp-flags ALL NONE', t4({ flags: 0 })), A);
  assert.equal(v('-p tcp -m tcp --tcp-flags SYN,FIN SYN,FIN', t4({ flags: 'SF' })), A);
  assert.equal(v('-p tcp -m tcp --tcp-flags SYN,FIN SYN,FIN', t4({ flags: 'S' })), D);
  assert.equal(v('-p tcp -m tcp --tcp-option 2', t4({ options: { mss: 1460 } })), A);
  assert.equal(v('-p tcp -m tcp --tcp-option 3', t4({ options: { mss: 1460 } })), D);
  assert.equal(v('-p tcp -m tcp ! --tcp-option 3', t4({ options: { mss: 1460, sackPerm: true } })), A);
  assert.equal(v('-p tcp -m tcp --tcp-option 4', t4({ options: { mss: 1460, sackPerm: true } })), A);
  // a non-first fragment has no ports: port rules do not match it
  const frag = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', proto: 6, fragOffset: 16 }, new Uint8Array(24));
  assert.equal(v('-p tcp -m tcp ! --dport 80', frag), D);
  // fragment offset 8 (one unit) is "a cracker trying to overwrite flags": dropped outright
  const te = engineFor(forward('-p tcp -m tcp ! --dport 80 -j ACCEPT', '-j ACCEPT'));
  assert.equal(te.engine.evalFilter(ctxFor(ipv4({ proto: 6, fragOffset: 8 }, new Uint8Array(24))), 0), D);
  assert.equal(te.engine.evalFilter(ctxFor(ipv4({ proto: 6, fragOffset: 16 }, new Uint8Array(24))), 0), A);
  // a TCP header that cannot be read: hotdrop, even though a later rule would accept
  const short = ipv4({ proto: 6 }, new Uint8Array(10));
  assert.equal(te.engine.evalFilter(ctxFor(short), 0), D);
  assert.equal(te.engine.counters.chainPkts[1], 0, 'hotdrop is not the policy');
});

test('udp and multiport (sports, dports, ports, ranges, negation)', () => {
  assert.equal(v('-p udp --dport 53', u4()), A);
  assert.equal(v('-p udp -m udp --sport 53', u4()), D);
  assert.equal(v('-p udp -m udp ! --sport 53', u4()), A);
  assert.equal(v('-p tcp -m multiport --dports 22,80,443', t4()), A);
  assert.equal(v('-p tcp -m multiport --dports 22,443', t4()), D);
  assert.equal(v('-p tcp -m multiport --dports 22,79:81', t4()), A);
  assert.equal(v('-p tcp -m multiport ! --dports 22,443', t4()), A);
  assert.equal(v('-p tcp -m multiport ! --dports 80', t4()), D);
  assert.equal(v('-p tcp -m multiport --sports 40000', t4()), A);
  assert.equal(v('-p tcp -m multiport --sports 80', t4()), D);
  assert.equal(v('-p udp -m multiport --ports 5353', u4()), A);
  assert.equal(v('-p udp -m multiport --ports 53', u4()), A);
  assert.equal(v('-p udp -m multiport --ports 54', u4()), D);
});

test('conntrack --ctstate / --ctstatus / --ctdir / --ctproto and state, incl. packets without conntrack', () => {
  const est = { ctstate: CTSTATE_ESTABLISHED, ctinfo: IP_CT_ESTABLISHED, ctstatus: IPS_SEEN_REPLY | IPS_CONFIRMED };
  const reply = { ctstate: CTSTATE_ESTABLISHED, ctinfo: IP_CT_ESTABLISHED_REPLY, ctstatus: IPS_CONFIRMED };
  const inval = { ctstate: CTSTATE_INVALID, ctinfo: IP_CT_NONE, entry: -1 };
  const untr = { ctstate: CTSTATE_UNTRACKED, ctinfo: IP_CT_UNTRACKED, entry: -1 };
  assert.equal(v('-m conntrack --ctstate NEW', t4()), A);
  assert.equal(v('-m conntrack --ctstate RELATED,ESTABLISHED', t4()), D);
  assert.equal(v('-m conntrack --ctstate RELATED,ESTABLISHED', t4(), est), A);
  assert.equal(v('-m conntrack --ctstate ESTABLISHED', t4(), reply), A);
  assert.equal(v('-m conntrack --ctstate RELATED', t4(), { ctstate: CTSTATE_RELATED, ctinfo: IP_CT_RELATED }), A);
  assert.equal(v('-m conntrack --ctstate INVALID', t4(), inval), A);
  assert.equal(v('-m conntrack --ctstate UNTRACKED', t4(), untr), A);
  assert.equal(v('-m conntrack --ctstate INVALID', t4(), untr), D);
  assert.equal(v('-m conntrack ! --ctstate INVALID', t4()), A);
  assert.equal(v('-m conntrack ! --ctstate INVALID', t4(), inval), D);
  assert.equal(v('-m conntrack --ctstate SNAT', t4(), est), D);
  assert.equal(v('-m conntrack --ctstate SNAT', t4(), { ...est, ctstatus: 1 << 4 }), A);
  assert.equal(v('-m conntrack --ctstatus ASSURED', t4(), est), D);
  assert.equal(v('-m conntrack --ctstatus ASSURED,SEEN_REPLY', t4(), est), A);
  assert.equal(v('-m conntrack ! --ctstatus ASSURED', t4(), est), A);
  assert.equal(v('-m conntrack --ctstatus ASSURED', t4(), { ...est, ctstatus: IPS_ASSURED }), A);
  assert.equal(v('-m conntrack --ctstatus NONE', t4(), est), D);
  assert.equal(v('-m conntrack --ctdir ORIGINAL', t4(), est), A);
  assert.equal(v('-m conntrack --ctdir REPLY', t4(), est), D);
  assert.equal(v('-m conntrack --ctdir REPLY', t4(), reply), A);
  assert.equal(v('-m conntrack --ctproto tcp', t4(), est), A);
  assert.equal(v('-m conntrack --ctproto udp', t4(), est), D);
  assert.equal(v('-m conntrack ! --ctproto udp', t4(), est), A);
  // an ICMP error RELATED to a TCP connection: the entry's protocol is TCP
  const err = ipv4({ src: '198.19.2.254', dst: '198.18.1.1' }, icmpError(3, 3, t4()));
  assert.equal(v('-m conntrack --ctproto tcp', err, { ctstate: CTSTATE_RELATED, ctinfo: IP_CT_RELATED }), A);
  // without a conntrack only --ctstate can match (conntrack_mt returns match_flags & STATE)
  assert.equal(v('-m conntrack --ctstatus ASSURED', t4(), inval), D);
  assert.equal(v('-m conntrack ! --ctstatus ASSURED', t4(), inval), D);
  assert.equal(v('-m conntrack --ctdir ORIGINAL', t4(), untr), D);
  assert.equal(v('-m conntrack --ctstate INVALID --ctproto udp', t4(), inval), A);
  // -m state
  assert.equal(v('-m state --state NEW', t4()), A);
  assert.equal(v('-m state --state ESTABLISHED', t4(), reply), A);
  assert.equal(v('-m state ! --state ESTABLISHED', t4(), reply), D);
  assert.equal(v('-m state ! --state ESTABLISHED', t4()), A);
  assert.equal(v('-m state --state UNTRACKED', t4(), untr), A);
  assert.equal(v('-m state --state INVALID', t4(), inval), A);
});

test('icmp and icmp6 types: names, numbers, codes, any, negation', () => {
  const ping = ipv4({}, icmp({ type: 8 }));
  const unreach = ipv4({}, icmpError(3, 3, u4()));
  assert.equal(v('-p icmp -m icmp --icmp-type echo-request', ping), A);
  assert.equal(v('-p icmp -m icmp --icmp-type ping', ping), A);
  assert.equal(v('-p icmp -m icmp --icmp-type 8', ping), A);
  assert.equal(v('-p icmp -m icmp --icmp-type 0', ping), D);
  assert.equal(v('-p icmp -m icmp ! --icmp-type 0', ping), A);
  assert.equal(v('-p icmp -m icmp --icmp-type any', ping), A);
  assert.equal(v('-p icmp -m icmp ! --icmp-type any', ping), D);
  assert.equal(v('-p icmp -m icmp --icmp-type destination-unreachable', unreach), A);
  assert.equal(v('-p icmp -m icmp --icmp-type port-unreachable', unreach), A);
  assert.equal(v('-p icmp -m icmp --icmp-type host-unreachable', unreach), D);
  assert.equal(v('-p icmp -m icmp --icmp-type 3/3', unreach), A);
  assert.equal(v('-p icmp -m icmp --icmp-type 3/1', unreach), D);
  const ns = ipv6({ dst: 'ff02::1:ff00:1' }, icmpv6({ type: 135 }));
  assert.equal(v('-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation', ns), A);
  assert.equal(v('-p ipv6-icmp -m icmp6 --icmpv6-type neighbor-solicitation', ns), A);
  assert.equal(v('-p ipv6-icmp -m icmp6 --icmpv6-type 135', ns), A);
  assert.equal(v('-p ipv6-icmp -m icmp6 --icmpv6-type 136', ns), D);
  assert.equal(v('-p ipv6-icmp -m icmp6 ! --icmpv6-type 136', ns), A);
  const pu = ipv6({}, icmpError(1, 4, ipv6({}, udp({ dport: 9 }))));
  assert.equal(v('-p ipv6-icmp -m icmp6 --icmpv6-type port-unreachable', pu), A);
  assert.equal(v('-p ipv6-icmp -m icmp6 --icmpv6-type 1/3', pu), D);
  // -p icmp / -m icmp rules are IPv4 only: never an IPv6 packet
  assert.equal(v('-p icmp', ns), D);
});

test('iprange (IPv4 and IPv6, negation), helper, comment', () => {
  assert.equal(v('-m iprange --src-range 198.18.1.0-198.18.1.5', t4()), A);
  assert.equal(v('-m iprange --src-range 198.18.1.2-198.18.1.5', t4()), D);
  assert.equal(v('-m iprange ! --src-range 198.18.1.2-198.18.1.5', t4()), A);
  assert.equal(v('-m iprange --dst-range 198.19.0.0-198.19.255.255 --src-range 198.18.1.1', t4()), A);
  assert.equal(v('-m iprange ! --dst-range 198.19.0.0-198.19.255.255', t4()), D);
  assert.equal(v('-m iprange --dst-range 2001:2:0:2::-2001:2:0:2::ffff', t6()), A);
  assert.equal(v('-m iprange --dst-range 2001:2:0:2::2-2001:2:0:2::ffff', t6()), D);
  assert.equal(v('-m iprange --dst-range 198.19.0.0-198.19.255.255', t6()), D, 'IPv4 range rule is IPv4 only');
  // a reversed range never matches (xt_iprange compares min <= addr <= max)
  assert.equal(v('-m iprange --src-range 198.18.1.5-198.18.1.0', t4()), D);
  assert.equal(v('-m iprange ! --src-range 198.18.1.5-198.18.1.0', t4()), A);
  assert.equal(v('-m helper --helper ftp', t4(), { masterHelper: 1 }), A);
  assert.equal(v('-m helper --helper ftp', t4(), { masterHelper: 2 }), D);
  assert.equal(v('-m helper --helper ftp', t4()), D);
  assert.equal(v('-m helper ! --helper ftp', t4()), A);
  assert.equal(v('-m helper ! --helper ftp', t4(), { masterHelper: 1 }), D);
  assert.equal(v('-m helper --helper ""', t4(), { masterHelper: 2 }), A);
  assert.equal(v('-m comment --comment "anything at all"', t4()), A);
});

test('limit: xt_limit token bucket with credits, driven by now', () => {
  // 2/second, burst 3: three packets at once, then one every 500 ms
  const te = engineFor(forward('-m limit --limit 2/sec --limit-burst 3 -j ACCEPT'));
  const ctx = ctxFor(t4());
  const at = (now: number) => te.engine.evalFilter(ctx, now);
  assert.deepEqual([at(1000), at(1000), at(1000), at(1000)], [A, A, A, D]);
  assert.equal(at(1499), D);
  assert.equal(at(1500), A);
  assert.equal(at(1500), D);
  // credits are capped at the burst
  assert.deepEqual([at(100000), at(100000), at(100000), at(100000)], [A, A, A, D]);
  // the arithmetic: cost = user2credits(avg) with avg = 10000/2 → 5000 * 1000 * CPJ / 10000
  assert.equal(CREDITS_PER_JIFFY, 32);
  // each rule instance has its own bucket
  const two = engineFor(forward('-p tcp -m limit --limit 1/min --limit-burst 1 -j ACCEPT', '-p udp -m limit --limit 1/min --limit-burst 1 -j ACCEPT'));
  assert.equal(two.engine.evalFilter(ctxFor(t4()), 0), A);
  assert.equal(two.engine.evalFilter(ctxFor(u4()), 0), A);
  assert.equal(two.engine.evalFilter(ctxFor(t4()), 59999), D);
  assert.equal(two.engine.evalFilter(ctxFor(t4()), 60000), A);
});

const CHAINS = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:web - [0:0]
:deny - [0:0]
:final - [0:0]
-A FORWARD -p tcp -j web
-A FORWARD -p udp -g final
-A FORWARD -p icmp -j ACCEPT
-A web -p tcp -m tcp --dport 22 -j deny
-A web -p tcp -m tcp --dport 80 -j ACCEPT
-A web -p tcp -m tcp --dport 8080 -j RETURN
-A web -p tcp -m tcp --dport 443 -j ACCEPT
-A deny -s 198.18.1.1 -j RETURN
-A deny -j DROP
-A final -p udp -m udp --dport 53 -j ACCEPT
-A final -p udp -m udp --dport 54 -j RETURN
-A INPUT -j final
-A OUTPUT -j DROP
COMMIT
`;

test('jumps, RETURN, goto, policies and counters', () => {
  const te = engineFor(CHAINS);
  const e = te.engine;
  const ev = (pkt: Uint8Array, hook = NF_INET_FORWARD) => e.evalFilter(ctxFor(pkt, { hook }), 0);
  assert.equal(ev(t4({ dport: 80 })), A);
  assert.equal(ev(t4({ dport: 443 })), A);
  assert.equal(ev(t4({ dport: 8080 })), D, 'RETURN from web, then the FORWARD policy');
  assert.equal(ev(t4({ dport: 22 })), D, 'deny RETURNs for 198.18.1.1 to web, web ends, back in FORWARD, policy');
  assert.equal(ev(t4({ dport: 22 }, { src: '198.18.1.2' })), D);
  assert.equal(ev(u4({ dport: 53 })), A);
  assert.equal(ev(u4({ dport: 54 })), D, 'RETURN in a chain reached by -g: the policy of FORWARD');
  assert.equal(ev(u4({ dport: 55 })), D, 'end of a chain reached by -g: the policy');
  assert.equal(ev(u4({ dport: 54 }), NF_INET_LOCAL_IN), A, 'INPUT policy ACCEPT');
  assert.equal(ev(ipv4({}, icmp())), A);
  assert.equal(ev(t4(), NF_INET_LOCAL_OUT), D);
  assert.equal(ev(t4(), NF_INET_PRE_ROUTING), A, 'no filter chain for PREROUTING');
  const c = e.counters;
  // canonical rule numbers follow the chain order of the table: INPUT 0, FORWARD 1..3, OUTPUT 4,
  // web 5..8, deny 9..10, final 11..12
  const len80 = t4({ dport: 80 }).length;
  assert.deepEqual(Array.from(c.rulePkts), [1, 5, 3, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2]);
  assert.equal(c.ruleBytes[6], len80);
  // chain policies: INPUT 0, FORWARD 1, OUTPUT 2 (user chains never count)
  assert.equal(c.chainPkts[1], 4, 'FORWARD policy: 8080, 22 from .1 (deny RETURNs), 54 (RETURN after -g), 55');
  assert.equal(c.chainPkts[0], 1);
  assert.equal(c.chainPkts[2], 0);
  assert.equal(c.chainBytes[0], u4({ dport: 54 }).length);
});

test('family filtering: -4 / -6 / address family / untagged rules', () => {
  const te = engineFor(
    forward(
      '-4 -p tcp -m tcp --dport 1 -j ACCEPT',
      '-6 -p tcp -m tcp --dport 2 -j ACCEPT',
      '-p tcp -m tcp --dport 3 -j ACCEPT',
      '-s 2001:2::/32 -p tcp -m tcp --dport 4 -j ACCEPT',
      '! -d 10.0.0.0/8 -p tcp -m tcp --dport 5 -j ACCEPT',
    ),
  );
  const ev = (pkt: Uint8Array) => te.engine.evalFilter(ctxFor(pkt), 0);
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((p) => ev(t4({ dport: p }))),
    [A, D, A, D, A],
  );
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((p) => ev(t6({ dport: p }))),
    [D, A, A, A, D],
  );
});

test('raw table: CT --helper, CT --notrack, NOTRACK set the context and continue; hooks pick the chain', () => {
  const te = engineFor(`*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --notrack
-A PREROUTING -p udp -j CT --notrack
-A PREROUTING -p udp -m udp --dport 9 -j DROP
-A OUTPUT -p tcp -j NOTRACK
-A OUTPUT -p tcp -j ACCEPT
COMMIT
`);
  const e = te.engine;
  let ctx = ctxFor(t4({ dport: 21 }), { hook: NF_INET_PRE_ROUTING });
  assert.equal(e.evalRaw(ctx, 0), A);
  assert.equal(ctx.helper, 1);
  assert.equal(ctx.notrack, 0, 'the first CT wins (the packet already has a template)');
  ctx = ctxFor(u4(), { hook: NF_INET_FORWARD });
  assert.equal(e.evalRaw(ctx, 0), A);
  assert.equal(ctx.notrack, 1);
  assert.equal(e.evalRaw(ctxFor(u4({ dport: 9 }), { hook: NF_INET_LOCAL_IN }), 0), D);
  ctx = ctxFor(t4(), { hook: NF_INET_LOCAL_OUT });
  assert.equal(e.evalRaw(ctx, 0), A);
  assert.equal(ctx.notrack, 1);
  assert.equal(e.evalRaw(ctxFor(u4(), { hook: NF_INET_LOCAL_OUT }), 0), D, 'raw OUTPUT policy');
  // no raw table: ACCEPT
  assert.equal(engineFor(forward()).engine.evalRaw(ctxFor(u4()), 0), A);
});

test('LOG continues and logs; REJECT sends and drops; the 1000-rule chain uses the candidate lists', () => {
  const te = engineFor(
    forward('-p tcp -j LOG --log-prefix "fw: " --log-level 6', '-p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset', '-p udp -j REJECT', '-j ACCEPT'),
  );
  assert.equal(te.engine.evalFilter(ctxFor(t4({ dport: 23 })), 0), D);
  assert.equal(te.logs.length, 1);
  assert.equal(te.logs[0][1], 6);
  assert.ok(te.logs[0][0].startsWith('fw: IN=g0 OUT=g1 SRC=198.18.1.1 DST=198.19.2.1 '));
  assert.deepEqual(te.rejects, [0]);
  assert.equal(te.engine.evalFilter(ctxFor(u4()), 0), D);
  assert.equal(te.engine.evalFilter(ctxFor(ipv6({}, udp())), 0), D);
  assert.deepEqual(te.rejects, [0, 4, 11], 'default per family: icmp-port-unreachable / icmp6-port-unreachable');
  assert.equal(te.engine.evalFilter(ctxFor(t4({ dport: 80 })), 0), A);

  const rules: string[] = [];
  for (let i = 0; i < 1000; i++) rules.push(`-p udp -m udp --dport ${10000 + i} -j DROP`);
  rules.push('-p tcp -j ACCEPT');
  const big = engineFor(forward(...rules));
  const chain = big.engine.compiled.chains[big.engine.compiled.filterForward];
  assert.equal(chain.cand[0].length, 1, 'IPv4 TCP packets visit one rule');
  assert.equal(chain.cand[1].length, 1000);
  assert.equal(big.engine.evalFilter(ctxFor(t4()), 0), A);
  assert.equal(big.engine.evalFilter(ctxFor(u4({ dport: 10999 })), 0), D);
  assert.equal(big.engine.counters.rulePkts[999], 1);
});
