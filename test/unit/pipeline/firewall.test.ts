/**
 * The whole per-packet path (parse → raw → conntrack → filter → confirm/abort)
 * through Firewall.decide with real rule files, as `run` and `replay` use it.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText, acceptAll } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD, NF_INET_LOCAL_IN } from '../../../src/queue/layout';
import { CTSTATE_ESTABLISHED, CTSTATE_INVALID, CTSTATE_NEW, CTSTATE_RELATED, CTSTATE_UNTRACKED } from '../../../src/conntrack/constants';
import { ipv4, ipv6, tcp, udp, icmp, icmpError } from '../../helpers/packets';

const C = '198.18.1.1';
const S = '198.19.2.1';

function firewall(rulesText: string | null, tunes: Record<string, number> = {}): Firewall {
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024, ...tunes };
  const logs: string[] = [];
  let rules = acceptAll;
  if (rulesText !== null) {
    const r = loadRuleText(rulesText, 'test.rules', { log: (l: string) => logs.push(l), reject: () => {} });
    assert.deepEqual(r.errors, []);
    rules = r.rules!;
  }
  return new Firewall({ tun, rules });
}

function send(fw: Firewall, pkt: Uint8Array, now: number, hook = NF_INET_FORWARD): number {
  return fw.decide(pkt, 0, pkt.length, pkt.length, hook, pkt[0] >> 4, 0, 0, 0, 0, now);
}

const STATEFUL = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp --syn --dport 80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp --dport 53 -j ACCEPT
-A FORWARD -p icmp --icmp-type echo-request -j ACCEPT
COMMIT
`;

test('accepted NEW is confirmed: the reply is ESTABLISHED and the table lists it', () => {
  const fw = firewall(STATEFUL);
  assert.equal(send(fw, ipv4({ src: C, dst: S }, tcp({ sport: 40000, dport: 80, seq: 1, flags: 'S', window: 1000 })), 1000), NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_NEW);
  assert.equal(fw.ct.count, 1);
  assert.equal(send(fw, ipv4({ src: S, dst: C }, tcp({ sport: 80, dport: 40000, seq: 100, ack: 2, flags: 'SA', window: 1000 })), 1001), NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_ESTABLISHED);
  assert.equal(send(fw, ipv4({ src: C, dst: S }, tcp({ sport: 40000, dport: 80, seq: 2, ack: 101, flags: 'A', window: 1000 })), 1002), NF_ACCEPT);
  assert.equal(fw.ct.tracker(6).stateName(fw.ctx.entry), 'ESTABLISHED');
  const listed: number[] = [];
  fw.ct.forEach((e) => listed.push(e));
  assert.equal(listed.length, 1);
});

test('a dropped first packet leaves nothing behind; the next packet is NEW again', () => {
  const fw = firewall(STATEFUL);
  const syn81 = ipv4({ src: C, dst: S }, tcp({ sport: 40001, dport: 81, seq: 1, flags: 'S', window: 1000 }));
  assert.equal(send(fw, syn81, 1000), NF_DROP);
  assert.equal(fw.ct.count, 0);
  assert.equal(send(fw, syn81, 2000), NF_DROP);
  assert.equal(fw.ctx.ctstate, CTSTATE_NEW);
  assert.equal(fw.ct.count, 0);
  // a reply-looking packet of a flow that was never accepted is not ESTABLISHED
  const synack = ipv4({ src: S, dst: C }, tcp({ sport: 81, dport: 40001, seq: 5, ack: 2, flags: 'SA', window: 1000 }));
  assert.equal(send(fw, synack, 2001), NF_DROP);
  assert.equal(fw.ctx.ctstate, CTSTATE_INVALID);
});

test('unsolicited ICMP echo reply is INVALID and dropped; ICMP error about an accepted flow is RELATED', () => {
  const fw = firewall(STATEFUL);
  assert.equal(send(fw, ipv4({ src: S, dst: C }, icmp({ type: 0, id: 7, seq: 1 })), 1000), NF_DROP);
  assert.equal(fw.ctx.ctstate, CTSTATE_INVALID);
  const query = ipv4({ src: C, dst: S }, udp({ sport: 5353, dport: 53, payload: 'q' }));
  assert.equal(send(fw, query, 1000), NF_ACCEPT);
  const unreach = ipv4({ src: S, dst: C }, icmpError(3, 3, query));
  assert.equal(send(fw, unreach, 1001), NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_RELATED);
});

test('raw-table NOTRACK makes packets UNTRACKED and keeps them out of the table', () => {
  const fw = firewall(`*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp --dport 514 -j NOTRACK
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT
COMMIT
`);
  assert.equal(send(fw, ipv4({ src: C, dst: S }, udp({ sport: 1000, dport: 514, payload: 'log' })), 1000), NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_UNTRACKED);
  assert.equal(fw.ct.count, 0);
  assert.equal(send(fw, ipv4({ src: C, dst: S }, udp({ sport: 1000, dport: 515, payload: 'x' })), 1000), NF_DROP);
});

test('FTP: a helper assigned in the raw table turns a PASV reply into a RELATED data connection', () => {
  const fw = firewall(`*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED -m helper --helper ftp -j ACCEPT
-A FORWARD -p tcp --dport 21 --syn -j ACCEPT
COMMIT
`);
  let cs = 1000;
  let ss = 5000;
  const c2s = (flags: string, payload = '') => {
    const p = ipv4({ src: C, dst: S }, tcp({ sport: 40000, dport: 21, seq: cs, ack: ss, flags, window: 65000, payload }));
    cs += payload.length + (flags.includes('S') ? 1 : 0);
    return p;
  };
  const s2c = (flags: string, payload = '') => {
    const p = ipv4({ src: S, dst: C }, tcp({ sport: 21, dport: 40000, seq: ss, ack: cs, flags, window: 65000, payload }));
    ss += payload.length + (flags.includes('S') ? 1 : 0);
    return p;
  };
  let t = 1000;
  assert.equal(send(fw, c2s('S'), t++), NF_ACCEPT);
  assert.equal(send(fw, s2c('SA'), t++), NF_ACCEPT);
  assert.equal(send(fw, c2s('A'), t++), NF_ACCEPT);
  assert.equal(send(fw, s2c('PA', '220 hi\r\n'), t++), NF_ACCEPT);
  assert.equal(send(fw, c2s('PA', 'PASV\r\n'), t++), NF_ACCEPT);
  assert.equal(send(fw, s2c('PA', '227 Entering Passive Mode (198,19,2,1,39,16).\r\n'), t++), NF_ACCEPT);
  assert.equal(fw.ct.expectations.count, 1);
  // the data connection to port 39*256+16 = 10000 from the client
  assert.equal(send(fw, ipv4({ src: C, dst: S }, tcp({ sport: 40001, dport: 10000, seq: 1, flags: 'S', window: 1000 })), t++), NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_RELATED);
  assert.equal(fw.ct.expectations.count, 0);
  // a connection to another port is not related and is dropped
  assert.equal(send(fw, ipv4({ src: C, dst: S }, tcp({ sport: 40002, dport: 10001, seq: 1, flags: 'S', window: 1000 })), t++), NF_DROP);
});

test('counters by hook and verdict; IPv6 goes through the same path', () => {
  const fw = firewall(STATEFUL);
  const p6 = ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, tcp({ sport: 1, dport: 80, flags: 'S', window: 10 }));
  assert.equal(send(fw, p6, 1000), NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_NEW);
  assert.equal(send(fw, ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, tcp({ sport: 1, dport: 81, flags: 'S', window: 10 })), 1000), NF_DROP);
  assert.equal(send(fw, ipv4({ src: C, dst: S }, udp({ sport: 1, dport: 9 })), 1000, NF_INET_LOCAL_IN), NF_ACCEPT);
  assert.equal(fw.packets[NF_INET_FORWARD * 2 + 1], 1);
  assert.equal(fw.packets[NF_INET_FORWARD * 2 + 0], 1);
  assert.equal(fw.packets[NF_INET_LOCAL_IN * 2 + 1], 1);
  assert.equal(fw.bytes[NF_INET_FORWARD * 2 + 1], p6.length);
});

test('a malformed packet is INVALID, counted, and decided by the rules', () => {
  const fw = firewall(STATEFUL);
  const bad = ipv4({ src: C, dst: S }, tcp({ sport: 1, dport: 80, flags: 'S' })).slice(0, 30);
  assert.equal(send(fw, bad, 1000), NF_DROP);
  assert.equal(fw.ctx.ctstate, CTSTATE_INVALID);
  assert.ok(fw.malformed.reduce((a, b) => a + b, 0) >= 1);
});

test('table full: conntrack drops the NEW packet itself, established flows go on', () => {
  const fw = firewall(null, { nf_conntrack_max: 4, nf_conntrack_buckets: 16 });
  const flows: Uint8Array[] = [];
  for (let i = 0; i < 4; i++) {
    const q = ipv4({ src: C, dst: S }, udp({ sport: 1000 + i, dport: 53 }));
    assert.equal(send(fw, q, 1000), NF_ACCEPT);
    // a reply after 2 s makes the flow ASSURED (UDP stream), so early drop cannot evict it
    assert.equal(send(fw, ipv4({ src: S, dst: C }, udp({ sport: 53, dport: 1000 + i })), 1100), NF_ACCEPT);
    flows.push(q);
  }
  for (const q of flows) assert.equal(send(fw, q, 3500), NF_ACCEPT);
  assert.equal(fw.ct.count, 4);
  assert.equal(send(fw, ipv4({ src: C, dst: S }, udp({ sport: 2000, dport: 53 })), 3600), NF_DROP);
  assert.equal(fw.ct.stats.drop, 1);
  assert.equal(send(fw, flows[0], 3700), NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_ESTABLISHED);
});
