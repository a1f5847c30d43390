import { test } from 'node:test';
import assert from 'node:assert/strict';
import { icmp, icmpv6, ipv4, ipv6, tcp, udp } from '../../helpers/packets';
import { formatConntrack, formatProcConntrack, formatProcStats, formatStats, summary } from '../../../src/conntrack/format';
import { CTSTATE_INVALID, IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY, IP_CT_NEW, IPS_ASSURED } from '../../../src/conntrack/constants';
import { PER_SOURCE_MSG } from '../../../src/conntrack/core';
import { checkConntrack } from '../../../src/conntrack/check';
import { NF_DROP } from '../../../src/queue/layout';
import { makeCt, pass } from './util';

const C = '198.18.0.2';
const S = '198.19.0.2';

function handshake(ct: ReturnType<typeof makeCt>['ct'], sport: number, dport: number, t0: number) {
  const a = pass(ct, ipv4({ src: C, dst: S }, tcp({ sport, dport, flags: 'S', seq: 1000, window: 64240 })), t0);
  pass(ct, ipv4({ src: S, dst: C }, tcp({ sport: dport, dport: sport, flags: 'SA', seq: 5000, ack: 1001, window: 65160 })), t0 + 1);
  pass(ct, ipv4({ src: C, dst: S }, tcp({ sport, dport, flags: 'A', seq: 1001, ack: 5001, window: 502 })), t0 + 2);
  return a.entry;
}

test('conntrack -L lines match the §10 examples byte for byte', () => {
  const { ct } = makeCt();
  const est = handshake(ct, 40000, 80, 0);
  const syn = pass(ct, ipv4({ src: C, dst: S }, tcp({ sport: 40002, dport: 81, flags: 'S', seq: 7 })), 0).entry;
  const dns = pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 5353, dport: 53, payload: 'q' })), 0).entry;
  pass(ct, ipv4({ src: S, dst: C }, udp({ sport: 53, dport: 5353, payload: 'r' })), 0);
  const ping = pass(ct, ipv4({ src: C, dst: S }, icmp({ type: 8, id: 4242 })), 0).entry;
  pass(ct, ipv4({ src: S, dst: C }, icmp({ type: 0, id: 4242 })), 500);
  assert.ok(ct.status(est) & IPS_ASSURED);
  assert.equal(
    formatConntrack(ct, est, 1000),
    'tcp      6 431999 ESTABLISHED src=198.18.0.2 dst=198.19.0.2 sport=40000 dport=80 src=198.19.0.2 dst=198.18.0.2 sport=80 dport=40000 [ASSURED] mark=0 use=1',
  );
  assert.equal(
    formatConntrack(ct, syn, 2000),
    'tcp      6 118 SYN_SENT src=198.18.0.2 dst=198.19.0.2 sport=40002 dport=81 [UNREPLIED] src=198.19.0.2 dst=198.18.0.2 sport=81 dport=40002 mark=0 use=1',
  );
  assert.equal(
    formatConntrack(ct, dns, 2000),
    'udp      17 28 src=198.18.0.2 dst=198.19.0.2 sport=5353 dport=53 src=198.19.0.2 dst=198.18.0.2 sport=53 dport=5353 mark=0 use=1',
  );
  assert.equal(
    formatConntrack(ct, ping, 1000),
    'icmp     1 29 src=198.18.0.2 dst=198.19.0.2 type=8 code=0 id=4242 src=198.19.0.2 dst=198.18.0.2 type=0 code=0 id=4242 mark=0 use=1',
  );
  assert.equal(
    formatConntrack(ct, dns, 2000, true),
    'ipv4     2 udp      17 28 src=198.18.0.2 dst=198.19.0.2 sport=5353 dport=53 src=198.19.0.2 dst=198.18.0.2 sport=53 dport=5353 mark=0 use=1',
  );
  assert.equal(
    formatProcConntrack(ct, syn, 2000),
    'ipv4     2 tcp      6 118 SYN_SENT src=198.18.0.2 dst=198.19.0.2 sport=40002 dport=81 [UNREPLIED] src=198.19.0.2 dst=198.18.0.2 sport=81 dport=40002 mark=0 zone=0 use=2',
  );
  // timeouts never print negative
  assert.match(formatConntrack(ct, syn, 10_000_000), /^tcp      6 0 SYN_SENT /);
  assert.equal(summary.shown(4), 'conntrack v1.4.8 (conntrack-tools): 4 flow entries have been shown.');
  assert.equal(summary.deleted(2), 'conntrack v1.4.8 (conntrack-tools): 2 flow entries have been deleted.');
  assert.equal(summary.flushed(), 'conntrack v1.4.8 (conntrack-tools): connection tracking table has been emptied.');
  assert.equal(summary.expectShown(1), 'conntrack v1.4.8 (conntrack-tools): 1 expectations have been shown.');
});

test('IPv6, generic and helper fields', () => {
  const { ct } = makeCt();
  const p6 = pass(ct, ipv6({ src: '2001:2::2', dst: '2001:2:0:1::2' }, icmpv6({ type: 128, id: 9 })), 0).entry;
  assert.equal(
    formatConntrack(ct, p6, 0, true),
    'ipv6     10 icmpv6   58 30 src=2001:2::2 dst=2001:2:0:1::2 type=128 code=0 id=9 [UNREPLIED] src=2001:2:0:1::2 dst=2001:2::2 type=129 code=0 id=9 mark=0 use=1',
  );
  const esp = pass(ct, ipv4({ src: C, dst: S, proto: 50 }, new Uint8Array(8)), 0).entry;
  assert.equal(formatConntrack(ct, esp, 0), 'unknown  50 600 src=198.18.0.2 dst=198.19.0.2 [UNREPLIED] src=198.19.0.2 dst=198.18.0.2 mark=0 use=1');
  // GRE is tracked generically (no keys): conntrack-tools names it, /proc shows the generic tracker
  const gre = pass(ct, ipv4({ src: C, dst: S, proto: 47 }, new Uint8Array(8)), 0).entry;
  assert.equal(formatConntrack(ct, gre, 0), 'gre      47 600 src=198.18.0.2 dst=198.19.0.2 [UNREPLIED] src=198.19.0.2 dst=198.18.0.2 mark=0 use=1');
  assert.equal(
    formatProcConntrack(ct, gre, 0),
    'ipv4     2 unknown  47 600 src=198.18.0.2 dst=198.19.0.2 [UNREPLIED] src=198.19.0.2 dst=198.18.0.2 mark=0 zone=0 use=2',
  );
});

test('conntrack -S and /proc/net/stat/nf_conntrack', () => {
  const { ct } = makeCt();
  Object.assign(ct.stats, { invalid: 12, drop: 3, early_drop: 5, error: 1 });
  assert.equal(
    formatStats(ct.stats),
    'cpu=0   \tfound=0 invalid=12 insert=0 insert_failed=0 drop=3 early_drop=5 error=1 search_restart=0 clash_resolve=0 chaintoolong=0 ',
  );
  assert.equal(
    formatProcStats(ct.stats, 7),
    'entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n' +
      '00000007  00000000 00000000 00000000 0000000c 00000000 00000000 00000000 00000000 00000000 00000003 00000005 00000001  00000000 00000000 00000000 00000000\n',
  );
});

test('per-source limit: a NEW flow from a source at its limit is dropped and counted; IPv6 counts per /64', () => {
  const { ct, logs } = makeCt({ per_source_max: 3 });
  for (let p = 1; p <= 3; p++) assert.equal(pass(ct, ipv4({ src: C, dst: S }, udp({ sport: p, dport: 53, payload: 'q' })), 0).ctinfo, IP_CT_NEW);
  const x = pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 4, dport: 53, payload: 'q' })), 0);
  assert.equal(x.queue, NF_DROP);
  assert.equal(x.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.per_source_drop, 1);
  assert.equal(ct.stats.drop, 1);
  assert.deepEqual(
    logs.map((l) => l.msg),
    [PER_SOURCE_MSG],
  );
  // existing flows and other sources go on
  assert.equal(pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 1, dport: 53, payload: 'q' })), 1).ctinfo, IP_CT_NEW);
  assert.equal(pass(ct, ipv4({ src: S, dst: C }, udp({ sport: 53, dport: 1, payload: 'r' })), 1).ctinfo, IP_CT_ESTABLISHED_REPLY);
  assert.equal(pass(ct, ipv4({ src: '198.18.0.3', dst: S }, udp({ sport: 9, dport: 53, payload: 'q' })), 1).ctinfo, IP_CT_NEW);
  // an entry going away frees a slot
  ct.deleteMatching((e) => ct.tuplePort(e, 0, 0) === 2 && ct.family(e) === 4);
  assert.equal(pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 4, dport: 53, payload: 'q' })), 2).ctinfo, IP_CT_NEW);
  // IPv6: 2001:2::1 and 2001:2::ffff share a /64
  for (let p = 1; p <= 3; p++) pass(ct, ipv6({ src: `2001:2::${p}`, dst: '2001:2:1::1' }, udp({ sport: 100, dport: 53, payload: 'q' })), 3);
  const y = pass(ct, ipv6({ src: '2001:2::ffff', dst: '2001:2:1::1' }, udp({ sport: 100, dport: 53, payload: 'q' })), 3);
  assert.equal(y.queue, NF_DROP);
  const z = pass(ct, ipv6({ src: '2001:2:0:1::1', dst: '2001:2:1::1' }, udp({ sport: 100, dport: 53, payload: 'q' })), 3);
  assert.equal(z.ctinfo, IP_CT_NEW);
  const w = new Uint32Array([0x20010002, 0, 0, 0]);
  assert.equal(ct.sourceCount(6, w), 3);
});

test('per-source limit enabled at run time: the entries already tracked count at once', () => {
  const { ct } = makeCt({ per_source_max: 0 });
  for (let p = 1; p <= 5; p++) pass(ct, ipv4({ src: C, dst: S }, udp({ sport: p, dport: 53, payload: 'q' })), 0);
  assert.equal(ct.countsSources, false, 'no per-source bookkeeping while there is no limit');
  assert.deepEqual(checkConntrack(ct), []);
  ct.setTunable('per_source_max', 5);
  const x = pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 6, dport: 53, payload: 'q' })), 1);
  assert.equal(x.queue, NF_DROP, 'the 5 entries created before the limit count against it');
  assert.equal(ct.countsSources, true);
  assert.deepEqual(checkConntrack(ct), []);
  // from then on entries are counted as they come and go, also with the limit back at 0
  ct.setTunable('per_source_max', 0);
  ct.deleteMatching((e) => ct.tuplePort(e, 0, 0) === 1 && ct.family(e) === 4);
  assert.equal(ct.sourceCount(4, new Uint32Array([0xc6120002])), 4);
  assert.deepEqual(checkConntrack(ct), []);
});

test('state export/import round trip keeps tuples, status, timeouts, mark and TCP state', () => {
  const { ct } = makeCt();
  const est = handshake(ct, 40000, 80, 0);
  ct.setMark(est, 42);
  const dns = pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 5353, dport: 53, payload: 'q' })), 0).entry;
  const now = 10_000;
  const exported = [...ct.entries(now)].map((e) => JSON.parse(JSON.stringify(ct.exportEntry(e, now))));
  assert.equal(exported.length, 2);

  const { ct: ct2 } = makeCt();
  const later = 500_000; // a different clock after restart
  for (const d of exported) assert.ok(ct2.importEntry(d, later) >= 0);
  assert.equal(ct2.count, 2);
  assert.equal(ct2.importEntry(exported[0], later), -1, 'duplicates are refused');
  const lines1 = [est, dns].map((e) => formatConntrack(ct, e, now)).sort();
  const lines2 = [...ct2.entries()].map((e) => formatConntrack(ct2, e, later)).sort();
  assert.deepEqual(lines2, lines1);
  // the imported TCP connection goes on as ESTABLISHED
  const p = pass(ct2, ipv4({ src: S, dst: C }, tcp({ sport: 80, dport: 40000, flags: 'A', seq: 5001, ack: 1001, window: 509 })), later + 1);
  assert.equal(p.ctinfo, IP_CT_ESTABLISHED_REPLY);
  const q = pass(ct2, ipv4({ src: C, dst: S }, tcp({ sport: 40000, dport: 80, flags: 'A', seq: 1001, ack: 5001, window: 502 })), later + 2);
  assert.equal(q.ctinfo, IP_CT_ESTABLISHED);
  assert.equal(ct2.mark(q.entry), 42);
  // garbage is refused
  assert.equal(ct2.importEntry({ tuple: [1, 2], status: 0, timeoutMs: 1, ageMs: 0, mark: 0, helper: '', proto: [] }, later), -1);
});
