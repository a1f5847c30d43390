import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule, type CtxOpts } from '../util';
import { icmpError, ipv4, ipv6, tcp, udp } from '../../../helpers/packets';
import { Firewall } from '../../../../src/pipeline/firewall';
import { loadRuleText } from '../../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../../src/conntrack/sysctl';
import { NF_ACCEPT as A, NF_DROP as D, NF_INET_FORWARD } from '../../../../src/queue/layout';
import { CTSTATE_ESTABLISHED, CTSTATE_INVALID, CTSTATE_RELATED, CTSTATE_UNTRACKED } from '../../../../src/conntrack/constants';

const pkt = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 80 }));
function v(rule: string, o: CtxOpts & { ctmark?: number } = {}): number {
  const { engine } = engineFor(forward(`${rule} -j ACCEPT`));
  const ctx = ctxFor(pkt, o);
  ctx.ctmark = o.ctmark ?? 0;
  return engine.evalFilter(ctx, 0);
}

test('-m mark: value, value/mask, negation against the queue mark', () => {
  assert.equal(v('-m mark --mark 1', { mark: 1 }), A);
  assert.equal(v('-m mark --mark 1', { mark: 3 }), D);
  assert.equal(v('-m mark --mark 0x1/0x1', { mark: 3 }), A);
  assert.equal(v('-m mark --mark 0x40000/0xff0000', { mark: 0xff04abcd }), A);
  assert.equal(v('-m mark --mark 0x40000/0xff0000', { mark: 0xff05abcd }), D);
  assert.equal(v('-m mark ! --mark 0x1/0x1', { mark: 2 }), A);
  assert.equal(v('-m mark ! --mark 0x1/0x1', { mark: 1 }), D);
  assert.equal(v('-m mark --mark 0xffffffff', { mark: 0xffffffff }), A);
  assert.equal(v('-m mark --mark 0', { mark: 0 }), A);
  // a value with bits outside its mask never matches (xt_mark does not mask the value)
  assert.equal(v('-m mark --mark 0x3/0x1', { mark: 3 }), D);
  assert.equal(v('-m mark --mark 010', { mark: 8 }), A, 'leading 0: octal, like strtoul base 0');
});

test('-m connmark: the entry mark; no entry (INVALID, UNTRACKED) never matches, even negated', () => {
  assert.equal(v('-m connmark --mark 5', { ctstate: CTSTATE_ESTABLISHED, ctmark: 5 }), A);
  assert.equal(v('-m connmark --mark 5', { ctstate: CTSTATE_ESTABLISHED, ctmark: 4 }), D);
  assert.equal(v('-m connmark --mark 0x4/0x4', { ctstate: CTSTATE_ESTABLISHED, ctmark: 6 }), A);
  assert.equal(v('-m connmark ! --mark 1', { ctstate: CTSTATE_ESTABLISHED, ctmark: 0 }), A);
  assert.equal(v('-m connmark ! --mark 1', { ctstate: CTSTATE_INVALID, ctmark: 0 }), D);
  assert.equal(v('-m connmark ! --mark 1', { ctstate: CTSTATE_UNTRACKED, ctmark: 0 }), D);
  assert.equal(v('-m connmark --mark 0', { ctstate: CTSTATE_INVALID, ctmark: 0 }), D);
  assert.equal(v('-m connmark --mark 0', { ctstate: CTSTATE_ESTABLISHED, ctmark: 0 }), A, 'and the packet mark is not looked at');
});

test('mark/connmark: iptables-save spelling', () => {
  assert.equal(savedRule('-m mark --mark 1 -j ACCEPT'), '-A FORWARD -m mark --mark 0x1 -j ACCEPT');
  assert.equal(savedRule('-m mark ! --mark 0x10/0xff -j ACCEPT'), '-A FORWARD -m mark ! --mark 0x10/0xff -j ACCEPT');
  assert.equal(savedRule('-m mark --mark 4/0xffffffff -j DROP'), '-A FORWARD -m mark --mark 0x4 -j DROP');
  assert.equal(savedRule('-m connmark --mark 0x40000/0xff0000 -j ACCEPT'), '-A FORWARD -m connmark --mark 0x40000/0xff0000 -j ACCEPT');
  assert.equal(savedRule('-m connmark ! --mark 0 -j ACCEPT'), '-A FORWARD -m connmark ! --mark 0x0 -j ACCEPT');
});

test('mark/connmark: errors with LINE:COL', () => {
  assert.deepEqual(errorsOf(forward('-m mark --mark x -j ACCEPT')), ['e.rules:5:27: bad mark "x" (VALUE[/MASK], each 0..0xffffffff)']);
  assert.deepEqual(errorsOf(forward('-m mark --mark 0x100000000 -j ACCEPT')), ['e.rules:5:27: bad mark "0x100000000" (VALUE[/MASK], each 0..0xffffffff)']);
  assert.deepEqual(errorsOf(forward('-m mark --mark 1/ -j ACCEPT')), ['e.rules:5:27: bad mark "1/" (VALUE[/MASK], each 0..0xffffffff)']);
  assert.deepEqual(errorsOf(forward('-m mark -j ACCEPT')), ['e.rules:5:15: mark match needs --mark']);
  assert.deepEqual(errorsOf(forward('-m connmark --mark 1 --mark 2 -j ACCEPT')), ['e.rules:5:33: --mark given twice']);
  assert.deepEqual(errorsOf(forward('-m connmark -j ACCEPT')), ['e.rules:5:15: connmark match needs --mark']);
});

test('-m connmark through the pipeline: the mark of the connection table entry, both directions', () => {
  const r = loadRuleText(forward('-m connmark --mark 0x7 -j ACCEPT', '-m conntrack --ctstate NEW -j ACCEPT'), 't.rules', {
    log: () => {},
    reject: () => {},
  } as never);
  assert.deepEqual(r.errors, []);
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 };
  const fw = new Firewall({ tun, rules: r.rules! });
  const q = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 53 }));
  const a = ipv4({ src: '198.19.2.1', dst: '198.18.1.1' }, udp({ sport: 53, dport: 5000 }));
  const send = (p: Uint8Array) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, 4, 0, 0, 0, 0, 1000);
  assert.equal(send(q), A, 'NEW');
  assert.equal(send(a), D, 'reply: entry mark 0');
  const e = fw.ctx.entry;
  assert.ok(e >= 0);
  fw.ct.setMark(e, 7);
  assert.equal(send(a), A, 'reply: entry mark 7');
  assert.equal(fw.ctx.ctmark, 7);
  assert.equal(send(q), A, 'original direction: same entry');
});

test("-m connmark on an ICMP / ICMPv6 error RELATED to an entry: the entry's mark, as the kernel attaches the error to it", () => {
  const r = loadRuleText(forward('-m conntrack --ctstate RELATED -m connmark --mark 0x9 -j ACCEPT', '-m conntrack --ctstate NEW -j ACCEPT'), 't.rules', {
    log: () => {},
    reject: () => {},
  } as never);
  assert.deepEqual(r.errors, []);
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 };
  const fw = new Firewall({ tun, rules: r.rules! });
  const send = (p: Uint8Array, family = 4) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, family, 0, 0, 0, 0, 1000);
  const q = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 53 }));
  const err = () => ipv4({ src: '198.19.2.1', dst: '198.18.1.1' }, icmpError(3, 3, q));
  assert.equal(send(q), A, 'NEW');
  const e = fw.ctx.entry;
  assert.equal(send(err()), D, 'RELATED, entry mark 0');
  assert.equal(fw.ctx.ctstate, CTSTATE_RELATED);
  assert.equal(fw.ctx.ctmark, 0);
  fw.ct.setMark(e, 9);
  assert.equal(send(err()), A, 'RELATED, entry mark 9');
  assert.equal(fw.ctx.ctmark, 9);
  const q6 = ipv6({ src: '2001:2::1', dst: '2001:2:0:1::1' }, udp({ sport: 5000, dport: 53 }));
  assert.equal(send(q6, 6), A, 'NEW v6');
  fw.ct.setMark(fw.ctx.entry, 9);
  assert.equal(send(ipv6({ src: '2001:2:0:1::1', dst: '2001:2::1' }, icmpError(1, 4, q6)), 6), A, 'ICMPv6 error RELATED, entry mark 9');
  assert.equal(fw.ctx.ctmark, 9);
});
