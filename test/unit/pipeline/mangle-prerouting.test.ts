/**
 * mangle PREROUTING on the pre-routing crossing (crossings.ts), with and without a *nat table:
 * its marks go back with the first crossing's verdict (before the kernel routes the packet), the
 * TTL it sees is the one before ip_forward's decrement, the filter crossing walks mangle FORWARD
 * / OUTPUT before nat's destination hook and without mangle PREROUTING again, and every packet
 * is queued before routing (prerouting.ts).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { CROSS_MASK } from '../../../src/pipeline/crossings';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD, NF_INET_PRE_ROUTING, VERDICT_MASK, VERDICT_SET_MARK, VERDICT_SET_PAYLOAD } from '../../../src/queue/layout';
import { ipv4, udp } from '../../helpers/packets';
import { natQueuesError } from '../../../src/daemon/ruleset';

function load(text: string) {
  const r = loadRuleText(text, 'm.rules', { log: () => {}, reject: () => {}, ifname: (i) => ({ 1: 'lo', 2: 'in0', 3: 'out0' })[i] });
  assert.deepEqual(r.errors, []);
  return r.rules!;
}

function firewall(text: string): Firewall {
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 };
  return new Firewall({ tun, rules: load(text) });
}

const MANGLE = [
  '*mangle',
  ':PREROUTING ACCEPT [0:0]',
  '-A PREROUTING -p udp -m udp --dport 53 -m ttl --ttl-eq 64 -j MARK --set-mark 0x7',
  '-A PREROUTING -p udp -m udp --dport 54 -j DROP',
  '-A PREROUTING -p udp -m udp --dport 55 -j TTL --ttl-set 9',
  '-A FORWARD -m mark --mark 0x7 -j MARK --or-mark 0x100',
  'COMMIT',
  '',
].join('\n');

test('without *nat: mangle PREROUTING runs at the pre-routing crossing, its mark in that verdict; FORWARD sees it after routing', () => {
  const rules = load(MANGLE);
  assert.equal(rules.twoCrossings, true);
  assert.equal(rules.natTable, false);
  assert.deepEqual(rules.prerouting, { 4: [[]], 6: [[]] }, 'every packet is queued before routing');
  const fw = firewall(MANGLE);
  const p = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ttl: 64 }, udp({ sport: 4000, dport: 53 }));
  const v1 = fw.decide(p, 0, p.length, p.length, NF_INET_PRE_ROUTING, 4, 2, 0, 0, 0, 1000);
  assert.equal(v1 & VERDICT_MASK, NF_ACCEPT);
  assert.equal(v1 & VERDICT_SET_MARK, VERDICT_SET_MARK);
  const m1 = fw.ctx.mark;
  assert.equal(m1 & ~CROSS_MASK, 0x7, 'the mark routing will see');
  assert.notEqual(m1 & CROSS_MASK, 0, 'and the crossing bits');
  // the kernel routed it (fwmark 0x7) and decremented the TTL; the filter crossing gets the same packet with that mark
  const fwd = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ttl: 63 }, udp({ sport: 4000, dport: 53 }));
  const v2 = fw.decide(fwd, 0, fwd.length, fwd.length, NF_INET_FORWARD, 4, 2, 3, m1, 0, 1000);
  assert.equal(v2 & VERDICT_MASK, NF_ACCEPT);
  assert.equal(fw.ctx.mark, 0x107, 'crossing bits cleared, mangle FORWARD added its bit');
  assert.equal(fw.ct.count, 1);
  // mangle PREROUTING saw TTL 64 (before the decrement): a packet arriving with 65 is not marked
  const p65 = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ttl: 65 }, udp({ sport: 4001, dport: 53 }));
  fw.decide(p65, 0, p65.length, p65.length, NF_INET_PRE_ROUTING, 4, 2, 0, 0, 0, 1000);
  assert.equal(fw.ctx.mark & ~CROSS_MASK, 0);
});

test('without *nat: a DROP in mangle PREROUTING drops at the first crossing and leaves no entry; TTL set there is sent back', () => {
  const fw = firewall(MANGLE);
  const p = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 4000, dport: 54 }));
  assert.equal(fw.decide(p, 0, p.length, p.length, NF_INET_PRE_ROUTING, 4, 2, 0, 0, 0, 1000), NF_DROP);
  assert.equal(fw.ct.count, 0);
  const q = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ttl: 64 }, udp({ sport: 4000, dport: 55 }));
  const buf = Uint8Array.from(q);
  const v = fw.decide(buf, 0, buf.length, buf.length, NF_INET_PRE_ROUTING, 4, 2, 0, 0, 0, 1000);
  assert.equal(v & VERDICT_SET_PAYLOAD, VERDICT_SET_PAYLOAD);
  assert.deepEqual(buf, ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ttl: 9 }, udp({ sport: 4000, dport: 55 })));
});

test('with *nat: mangle PREROUTING before nat PREROUTING (a DNAT rule matching the mark), mangle OUTPUT before nat OUTPUT', () => {
  const text = [
    '*mangle',
    '-A PREROUTING -p udp -m udp --dport 53 -j MARK --set-mark 0x7',
    '-A OUTPUT -p udp -m udp --dport 53 -j MARK --set-mark 0x9',
    'COMMIT',
    '*nat',
    '-A PREROUTING -m mark --mark 0x7 -p udp -j DNAT --to-destination 198.19.2.9',
    '-A OUTPUT -m mark --mark 0x9 -p udp -j DNAT --to-destination 198.19.2.8',
    'COMMIT',
    '',
  ].join('\n');
  const fw = firewall(text);
  const p = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 4000, dport: 53 }));
  const buf = Uint8Array.from(p);
  fw.decide(buf, 0, buf.length, buf.length, NF_INET_PRE_ROUTING, 4, 2, 0, 0, 0, 1000);
  assert.deepEqual([...buf.subarray(16, 20)], [198, 19, 2, 9], 'DNAT by the mangle mark');
  const o = ipv4({ src: '198.19.2.254', dst: '198.19.2.1' }, udp({ sport: 4002, dport: 53 }));
  const ob = Uint8Array.from(o);
  fw.decide(ob, 0, ob.length, ob.length, 3 /* LOCAL_OUT */, 4, 0, 3, 0, 0, 1000);
  assert.deepEqual([...ob.subarray(16, 20)], [198, 19, 2, 8], "nat OUTPUT saw mangle OUTPUT's mark");
});

test('mangle PREROUTING rules with --queues are refused (the crossing needs one table)', () => {
  const e = natQueuesError('m.rules', load(MANGLE));
  assert.match(e ?? '', /^m\.rules:0:0: mangle PREROUTING rules need a single queue/);
  assert.equal(natQueuesError('m.rules', load('*mangle\n-A FORWARD -j MARK --set-mark 1\nCOMMIT\n')), null);
});
