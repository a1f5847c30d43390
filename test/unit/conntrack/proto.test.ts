import { test } from 'node:test';
import assert from 'node:assert/strict';
import { icmp, icmpError, icmpv6, ipv4, ipv6, udp, udplite } from '../../helpers/packets';
import {
  CTSTATE_INVALID,
  CTSTATE_RELATED,
  CTSTATE_UNTRACKED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NEW,
  IP_CT_NONE,
  IP_CT_RELATED,
  IP_CT_RELATED_REPLY,
  IP_CT_UNTRACKED,
  IPS_ASSURED,
} from '../../../src/conntrack/constants';
import { NF_INET_LOCAL_OUT, PKTF_CSUM_NOT_READY, PKTF_CSUM_VERIFIED } from '../../../src/queue/layout';
import { makeCt, pass } from './util';

const C = '198.18.0.2';
const S = '198.19.0.2';
const R = '198.18.0.1'; // a router on the path
const C6 = '2001:2::2';
const S6 = '2001:2:0:1::2';

const uq = (payload = 'q') => ipv4({ src: C, dst: S }, udp({ sport: 40000, dport: 53, payload }));
const ur = () => ipv4({ src: S, dst: C }, udp({ sport: 53, dport: 40000, payload: 'r' }));

test('UDP: unreplied 30 s; reply within 2 s keeps 30 s and no ASSURED; later traffic → 120 s + ASSURED', () => {
  const { ct } = makeCt();
  const a = pass(ct, uq(), 1000);
  const e = a.entry;
  assert.equal(ct.timeoutLeft(e, 1000), 30);
  pass(ct, uq(), 1500);
  assert.equal(ct.timeoutLeft(e, 1500), 30);
  const b = pass(ct, ur(), 1800);
  assert.equal(b.ctinfo, IP_CT_ESTABLISHED_REPLY);
  assert.equal(ct.timeoutLeft(e, 1800), 30);
  assert.equal(ct.status(e) & IPS_ASSURED, 0);
  pass(ct, uq(), 3000); // exactly 2 s after creation: not yet "after"
  assert.equal(ct.status(e) & IPS_ASSURED, 0);
  assert.equal(ct.timeoutLeft(e, 3000), 30);
  pass(ct, uq(), 3001);
  assert.ok(ct.status(e) & IPS_ASSURED);
  assert.equal(ct.timeoutLeft(e, 3001), 120);
  // a custom stream timeout is read live
  ct.setTunable('nf_conntrack_udp_timeout_stream', 77);
  pass(ct, ur(), 4000);
  assert.equal(ct.timeoutLeft(e, 4000), 77);
});

test('UDP without reply stays unreplied even after 2 s (30 s, not ASSURED)', () => {
  const { ct } = makeCt();
  const a = pass(ct, uq(), 0);
  pass(ct, uq(), 10_000);
  assert.equal(ct.timeoutLeft(a.entry, 10_000), 30);
  assert.equal(ct.status(a.entry) & IPS_ASSURED, 0);
});

test('UDP-Lite is tracked like UDP with its own tracker', () => {
  const { ct } = makeCt();
  const a = pass(ct, ipv4({ src: C, dst: S }, udplite({ sport: 1, dport: 2, payload: 'x' })), 0);
  assert.equal(a.ctinfo, IP_CT_NEW);
  assert.equal(ct.tracker(136).name, 'udplite');
  const b = pass(ct, ipv4({ src: S, dst: C }, udplite({ sport: 2, dport: 1, payload: 'y' })), 5);
  assert.equal(b.entry, a.entry);
});

test('ICMP echo request creates, echo reply is ESTABLISHED_REPLY; 30 s timeout', () => {
  const { ct } = makeCt();
  const a = pass(ct, ipv4({ src: C, dst: S }, icmp({ type: 8, id: 4242, seq: 1 })), 0);
  assert.equal(a.ctinfo, IP_CT_NEW);
  const b = pass(ct, ipv4({ src: S, dst: C }, icmp({ type: 0, id: 4242, seq: 1 })), 10);
  assert.equal(b.ctinfo, IP_CT_ESTABLISHED_REPLY);
  assert.equal(b.entry, a.entry);
  assert.equal(ct.timeoutLeft(a.entry, 10), 30);
  // different id → different entry
  const c = pass(ct, ipv4({ src: C, dst: S }, icmp({ type: 8, id: 4243 })), 20);
  assert.notEqual(c.entry, a.entry);
  // timestamp request creates too
  const d = pass(ct, ipv4({ src: C, dst: S }, icmp({ type: 13, id: 1 })), 20);
  assert.equal(d.ctinfo, IP_CT_NEW);
});

test('ICMP: unsolicited echo reply INVALID; types 9/10 INVALID (no inverse); type > 18 is an error', () => {
  const { ct } = makeCt();
  for (const type of [0, 14, 9, 10]) {
    const before = ct.stats.invalid;
    const x = pass(ct, ipv4({ src: S, dst: C }, icmp({ type, id: 7 })), 0);
    assert.equal(x.ctinfo, IP_CT_NONE, `type ${type}`);
    assert.equal(x.ctstate, CTSTATE_INVALID);
    assert.equal(ct.stats.invalid, before + 1);
  }
  assert.equal(ct.count, 0, 'nothing stays allocated');
  const y = pass(ct, ipv4({ src: S, dst: C }, icmp({ type: 40 })), 0);
  assert.equal(y.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.error, 1);
});

test('ICMP errors: RELATED_REPLY from the server, RELATED in the ORIG direction, entry untouched', () => {
  const { ct } = makeCt();
  const a = pass(ct, uq(), 0);
  const e = a.entry;
  const t0 = ct.timeoutLeft(e, 5000);
  // port unreachable from S to C about C's packet
  const err = pass(ct, ipv4({ src: S, dst: C }, icmpError(3, 3, uq())), 5000);
  assert.equal(err.ctinfo, IP_CT_RELATED_REPLY);
  assert.equal(err.ctstate, CTSTATE_RELATED);
  assert.equal(err.entry, e);
  // time exceeded from a router: the source is not checked
  const te = pass(ct, ipv4({ src: R, dst: C }, icmpError(11, 0, uq())), 5000);
  assert.equal(te.ctinfo, IP_CT_RELATED_REPLY);
  // an error about S's reply, sent to S: RELATED (ORIG direction)
  const o = pass(ct, ipv4({ src: C, dst: S }, icmpError(3, 3, ur())), 5000);
  assert.equal(o.ctinfo, IP_CT_RELATED);
  assert.equal(o.ctstate, CTSTATE_RELATED);
  assert.equal(ct.timeoutLeft(e, 5000), t0, 'errors do not refresh');
  assert.equal(ct.status(e) & 2, 0, 'errors do not set SEEN_REPLY');
  assert.equal(ct.stats.error, 0);
  assert.equal(ct.count, 1);
});

test('ICMP error about an unknown flow is INVALID with stat error; outer daddr mismatch too', () => {
  const { ct } = makeCt();
  const x = pass(ct, ipv4({ src: S, dst: C }, icmpError(3, 3, uq())), 0);
  assert.equal(x.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.error, 1);
  assert.equal(ct.stats.invalid, 0);
  assert.equal(ct.count, 0, 'an error never creates an entry');
  pass(ct, uq(), 0);
  const y = pass(ct, ipv4({ src: S, dst: '198.18.9.9' }, icmpError(3, 3, uq())), 0);
  assert.equal(y.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.error, 2);
});

test('ICMP error about an ICMP echo is RELATED (inner echo inverted through the table)', () => {
  const { ct } = makeCt();
  const ping = ipv4({ src: C, dst: S }, icmp({ type: 8, id: 99 }));
  const a = pass(ct, ping, 0);
  const err = pass(ct, ipv4({ src: R, dst: C }, icmpError(11, 0, ping)), 1);
  assert.equal(err.ctinfo, IP_CT_RELATED_REPLY);
  assert.equal(err.entry, a.entry);
});

test('ICMPv6: echo tracked, ND/MLD UNTRACKED, errors RELATED, unknown informational INVALID', () => {
  const { ct } = makeCt();
  const a = pass(ct, ipv6({ src: C6, dst: S6 }, icmpv6({ type: 128, id: 5 })), 0);
  assert.equal(a.ctinfo, IP_CT_NEW);
  const b = pass(ct, ipv6({ src: S6, dst: C6 }, icmpv6({ type: 129, id: 5 })), 1);
  assert.equal(b.ctinfo, IP_CT_ESTABLISHED_REPLY);
  assert.equal(ct.timeoutLeft(a.entry, 1), 30);
  for (const type of [133, 134, 135, 136, 130, 143]) {
    const nd = pass(ct, ipv6({ src: C6, dst: S6 }, icmpv6({ type })), 2);
    assert.equal(nd.ctinfo, IP_CT_UNTRACKED, `type ${type}`);
    assert.equal(nd.ctstate, CTSTATE_UNTRACKED);
  }
  const u6 = ipv6({ src: C6, dst: S6 }, udp({ sport: 1000, dport: 2000, payload: 'a' }));
  pass(ct, u6, 3);
  const err = pass(ct, ipv6({ src: S6, dst: C6 }, icmpError(1, 4, u6)), 4);
  assert.equal(err.ctinfo, IP_CT_RELATED_REPLY);
  const unsolicited = pass(ct, ipv6({ src: S6, dst: C6 }, icmpv6({ type: 129, id: 77 })), 5);
  assert.equal(unsolicited.ctstate, CTSTATE_INVALID);
  const redirect = pass(ct, ipv6({ src: S6, dst: C6 }, icmpv6({ type: 137 })), 5);
  assert.equal(redirect.ctstate, CTSTATE_INVALID);
  assert.equal(ct.count, 2);
});

test('non-first fragment is INVALID (stat invalid); a first fragment is tracked', () => {
  const { ct } = makeCt();
  const frag = ipv4({ src: C, dst: S, fragOffset: 8, proto: 17 }, new Uint8Array(16));
  const x = pass(ct, frag, 0);
  assert.equal(x.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.invalid, 1);
  const first = ipv4({ src: C, dst: S, mf: true }, udp({ sport: 1, dport: 2, payload: 'abcdefgh' }));
  const y = pass(ct, first, 0);
  assert.equal(y.ctinfo, IP_CT_NEW);
});

test('bad checksum: INVALID; skipped with CSUM_NOT_READY, CSUM_VERIFIED, at LOCAL_OUT, or with nf_conntrack_checksum=0', () => {
  const { ct } = makeCt();
  const bad = () => ipv4({ src: C, dst: S }, udp({ sport: 1, dport: 2, payload: 'x', checksum: 0x1234 }));
  const x = pass(ct, bad(), 0);
  assert.equal(x.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.invalid, 1);
  assert.equal(pass(ct, bad(), 0, { pktFlags: PKTF_CSUM_NOT_READY }).ctinfo, IP_CT_NEW);
  // the queue said the kernel (or the NIC) verified it: nf_ip_checksum does not look again
  const { ct: ctv } = makeCt();
  assert.equal(pass(ctv, bad(), 0, { pktFlags: PKTF_CSUM_VERIFIED }).ctinfo, IP_CT_NEW);
  assert.equal(ctv.stats.invalid, 0);
  const { ct: ct2 } = makeCt();
  assert.equal(pass(ct2, bad(), 0, { hook: NF_INET_LOCAL_OUT }).ctinfo, IP_CT_NEW);
  const { ct: ct3 } = makeCt({ nf_conntrack_checksum: 0 });
  assert.equal(pass(ct3, bad(), 0).ctinfo, IP_CT_NEW);
  // a bad ICMP checksum counts as an error
  const { ct: ct4 } = makeCt();
  pass(ct4, ipv4({ src: C, dst: S }, icmp({ type: 8, checksum: 0xdead })), 0);
  assert.equal(ct4.stats.error, 1);
  // UDP checksum 0 = none
  const { ct: ct5 } = makeCt();
  assert.equal(pass(ct5, ipv4({ src: C, dst: S }, udp({ sport: 1, dport: 2, payload: 'x', checksum: 0 })), 0).ctinfo, IP_CT_NEW);
});

test('log_invalid logs the reason with the kernel prefix', () => {
  const { ct, logs } = makeCt({ nf_conntrack_log_invalid: 255 });
  pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 1, dport: 2, payload: 'x', checksum: 0x1234 })), 0);
  assert.ok(
    logs.some((l) => l.msg.startsWith('nf_ct_proto_17: bad checksum SRC=198.18.0.2 DST=198.19.0.2')),
    JSON.stringify(logs),
  );
  const { ct: ct2, logs: logs2 } = makeCt({ nf_conntrack_log_invalid: 6 });
  pass(ct2, ipv4({ src: C, dst: S }, udp({ sport: 1, dport: 2, payload: 'x', checksum: 0x1234 })), 0);
  assert.equal(logs2.length, 0);
});

test('generic protocols: one entry per address pair, 600 s', () => {
  const { ct } = makeCt();
  const a = pass(ct, ipv4({ src: C, dst: S, proto: 50 }, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), 0);
  const b = pass(ct, ipv4({ src: C, dst: S, proto: 50 }, new Uint8Array([9, 9, 9, 9, 5, 6, 7, 8])), 1);
  assert.equal(a.entry, b.entry);
  const r = pass(ct, ipv4({ src: S, dst: C, proto: 50 }, new Uint8Array(8)), 2);
  assert.equal(r.ctinfo, IP_CT_ESTABLISHED_REPLY);
  assert.equal(ct.timeoutLeft(a.entry, 2), 600);
  assert.equal(ct.tracker(50).name, 'unknown');
});

test('IPv6 no next header (59): not tracked, INVALID, as ipv6_skip_exthdr fails on it', () => {
  const { ct } = makeCt();
  const before = ct.stats.invalid;
  const bare = pass(ct, ipv6({ src: C6, dst: S6, nextHeader: 59 }, new Uint8Array(8)), 0);
  assert.equal(bare.entry, -1);
  assert.equal(bare.ctstate, CTSTATE_INVALID);
  const afterDestOpts = pass(ct, ipv6({ src: C6, dst: S6, nextHeader: 59, extHeaders: [{ type: 60 }] }, new Uint8Array(8)), 1);
  assert.equal(afterDestOpts.entry, -1);
  assert.equal(afterDestOpts.ctstate, CTSTATE_INVALID);
  assert.equal(ct.stats.invalid - before, 2);
  assert.equal(ct.count, 0);
  // IPv4 protocol 59 is just another generic protocol
  const v4 = pass(ct, ipv4({ src: C, dst: S, proto: 59 }, new Uint8Array(8)), 2);
  assert.notEqual(v4.entry, -1);
});
