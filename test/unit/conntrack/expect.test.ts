import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4, udp } from '../../helpers/packets';
import type { ConntrackHelper, HelperHost } from '../../../src/conntrack/helpers/helper';
import type { PacketView } from '../../../src/packet/view';
import { IP_CT_ESTABLISHED_REPLY, IP_CT_NEW, IP_CT_RELATED, IPS_EXPECTED, PKT_ACCEPT, PKT_DROP } from '../../../src/conntrack/constants';
import { EXPECT_FULL_MSG } from '../../../src/conntrack/host';
import { EXP_OK } from '../../../src/conntrack/expect';
import { formatExpect, formatProcExpect } from '../../../src/conntrack/format';
import { NF_DROP } from '../../../src/queue/layout';
import { makeCt, pass } from './util';

const C = '198.18.0.2';
const S = '198.19.0.2';
const X = '198.18.0.77';

/**
 * A toy UDP helper: a reply payload "OPEN <port>" from the server asks for a
 * connection from the client (any port) to the server's <port>; "ANY <port>"
 * asks for one from anybody. A failed expectation drops the packet.
 */
class ToyHelper implements ConntrackHelper {
  readonly name = 'toy';
  readonly protonum = 17;
  inits: number[] = [];
  policy = { maxExpected: 2, timeoutSec: 300 };
  resize(_c: number): void {}
  init(e: number): void {
    this.inits.push(e);
  }
  help(host: HelperHost, e: number, dir: number, _ctinfo: number, pkt: PacketView, now: number): number {
    const text = Buffer.from(pkt.buf.subarray(pkt.payloadOff, pkt.payloadOff + pkt.payloadLen)).toString();
    const m = /^(OPEN|ANY) (\d+)$/.exec(text);
    if (!m) return PKT_ACCEPT;
    const src = new Uint32Array(4);
    const dst = new Uint32Array(4);
    host.tupleAddr(e, dir, 1, src); // the other party
    host.tupleAddr(e, dir, 0, dst); // the sender
    const ok = host.expect(e, 17, m[1] === 'ANY' ? null : src, -1, dst, Number(m[2]), this.policy, now) === EXP_OK;
    return ok ? PKT_ACCEPT : PKT_DROP;
  }
  expectTimeout(): number {
    return this.policy.timeoutSec;
  }
}

function setup(over = {}) {
  const toy = new ToyHelper();
  const { ct, logs } = makeCt(over, { helpers: [undefined, toy] });
  const ctl = pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 4000, dport: 7, payload: 'hi' })), 0, { helper: 1 });
  const say = (text: string, now = 10, from = S, to = C) => pass(ct, ipv4({ src: from, dst: to }, udp({ sport: 7, dport: 4000, payload: text })), now);
  return { ct, logs, toy, ctl, say };
}

const data = (sport: number, dport: number, src = C, dst = S) => ipv4({ src, dst }, udp({ sport, dport, payload: 'd' }));

test('helper attached by the raw-table template; an expectation makes the next matching connection RELATED', () => {
  const { ct, toy, ctl, say } = setup();
  assert.equal(ct.helperName(ctl.entry), 'toy');
  assert.deepEqual(toy.inits, [ctl.entry]);
  const r = say('OPEN 5000');
  assert.equal(r.ctinfo, IP_CT_ESTABLISHED_REPLY);
  assert.equal(ct.expectations.count, 1);
  assert.equal(ct.stats.expect_create, 1);
  const d = pass(ct, data(33333, 5000), 20);
  assert.equal(d.ctinfo, IP_CT_RELATED);
  assert.ok(ct.status(d.entry) & IPS_EXPECTED);
  assert.equal(d.masterHelper, 1);
  assert.equal(ct.master(d.entry), ctl.entry);
  assert.equal(ct.stats.expect_new, 1);
  assert.equal(ct.expectations.count, 0, 'consumed');
  assert.equal(ct.stats.expect_delete, 1);
  // the reply makes it ESTABLISHED
  const dr = pass(ct, data(5000, 33333, S, C), 21);
  assert.equal(dr.ctinfo, IP_CT_ESTABLISHED_REPLY);
  // a second connection to the same port is NEW (expectation used up)
  assert.equal(pass(ct, data(33334, 5000), 22).ctinfo, IP_CT_NEW);
  // the wrong source does not match
  say('OPEN 5001', 30);
  assert.equal(pass(ct, data(1, 5001, X, S), 31).ctinfo, IP_CT_NEW);
  // …but ANY does
  say('ANY 5002', 32);
  assert.equal(pass(ct, data(1, 5002, X, S), 33).ctinfo, IP_CT_RELATED);
});

test('helpers only see ESTABLISHED packets: nothing is parsed before the reply', () => {
  const { ct } = setup();
  pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 4000, dport: 7, payload: 'OPEN 1' })), 5, { helper: 1 });
  assert.equal(ct.expectations.count, 0);
});

test('identical expectation replaces, overlapping is refused (packet dropped)', () => {
  const { ct, say } = setup();
  say('OPEN 6000', 10);
  say('OPEN 6000', 20_000); // identical: replaced, timer restarts
  assert.equal(ct.expectations.count, 1);
  assert.equal(ct.stats.expect_delete, 1);
  assert.equal(ct.stats.expect_create, 2);
  let x = -1;
  ct.expectations.forEach((i) => (x = i));
  assert.equal(ct.expectations.timeout[x], 20_000 + 300_000);
  // ANY 6000 overlaps OPEN 6000 (equal under the common mask) → -EBUSY → helper drops
  const r = say('ANY 6000', 30_000);
  assert.equal(r.queue, NF_DROP);
  assert.equal(ct.expectations.count, 1);
});

test('per-master max_expected evicts the oldest; the global limit refuses with a rate-limited message', () => {
  const { ct, logs, say } = setup({ nf_conntrack_expect_max: 3 });
  say('OPEN 1', 10);
  say('OPEN 2', 11);
  say('OPEN 3', 12); // max 2: OPEN 1 goes
  assert.equal(ct.expectations.count, 2);
  assert.equal(pass(ct, data(9, 1), 13).ctinfo, IP_CT_NEW);
  assert.equal(pass(ct, data(9, 3), 14).ctinfo, IP_CT_RELATED);
  // a second master fills the table
  const ctl2 = pass(ct, ipv4({ src: C, dst: S }, udp({ sport: 4001, dport: 7, payload: 'hi' })), 15, { helper: 1 });
  const say2 = (t: string, now: number) => pass(ct, ipv4({ src: S, dst: C }, udp({ sport: 7, dport: 4001, payload: t })), now);
  assert.equal(ct.helperName(ctl2.entry), 'toy');
  say2('OPEN 10', 16);
  say2('OPEN 11', 17);
  assert.equal(ct.expectations.count, 3);
  const full = say('OPEN 4', 18);
  assert.equal(full.queue, NF_DROP);
  assert.equal(ct.expectations.count, 3);
  assert.deepEqual(
    logs.map((l) => l.msg),
    [EXPECT_FULL_MSG],
  );
});

test('expectations die with their master, and time out (never refreshed)', () => {
  const { ct, ctl, say } = setup();
  say('OPEN 7000', 10);
  say('OPEN 7001', 10);
  assert.equal(ct.expectations.count, 2);
  ct.deleteMatching((e) => e === ctl.entry);
  assert.equal(ct.expectations.count, 0);
  assert.equal(ct.stats.expect_delete, 2);
  assert.equal(pass(ct, data(1, 7000), 20).ctinfo, IP_CT_NEW);

  const s2 = setup({ nf_conntrack_udp_timeout: 100_000, nf_conntrack_udp_timeout_stream: 100_000 });
  s2.say('OPEN 8000', 10);
  assert.equal(pass(s2.ct, data(1, 8000), 10 + 300_000).ctinfo, IP_CT_NEW, 'expired at 300 s');
  s2.say('OPEN 8001', 400_000);
  assert.equal(s2.ct.expectations.count, 1);
  s2.ct.gc(400_000 + 300_001, 1000);
  assert.equal(s2.ct.expectations.count, 0, 'GC expires them too');
});

test('an expectation of an unconfirmed master is not matched; an aborted master takes it along', () => {
  const toy = new ToyHelper();
  const { ct } = makeCt({}, { helpers: [undefined, toy] });
  const { ctxOf } = require('./util');
  const c = ctxOf(ipv4({ src: C, dst: S }, udp({ sport: 4000, dport: 7, payload: 'x' })), { helper: 1 });
  ct.in(c, 0);
  const dst = new Uint32Array([0xc6130002, 0, 0, 0]);
  assert.equal(ct.expect(c.entry, 17, null, -1, dst, 9000, toy.policy, 0), EXP_OK);
  assert.equal(pass(ct, data(1, 9000), 1).ctinfo, IP_CT_NEW, 'master unconfirmed');
  ct.abort(c);
  assert.equal(ct.expectations.count, 0);
});

test('expect listing formats', () => {
  const { ct, say, ctl } = setup();
  say('OPEN 40123', 3000);
  const { formatConntrack } = require('../../../src/conntrack/format');
  assert.match(formatConntrack(ct, ctl.entry, 3000), / mark=0 helper=toy use=1$/);
  const lines: string[] = [];
  const proc: string[] = [];
  ct.expectations.forEach((x) => {
    lines.push(formatExpect(ct, x, 6000));
    proc.push(formatProcExpect(ct, x, 6000));
  });
  assert.deepEqual(lines, [
    '297 proto=17 src=198.18.0.2 dst=198.19.0.2 sport=0 dport=40123 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=198.18.0.2 master-dst=198.19.0.2 sport=4000 dport=7 class=0 helper=toy',
  ]);
  assert.deepEqual(proc, ['297 l3proto = 2 proto=17 src=198.18.0.2 dst=198.19.0.2 sport=0 dport=40123 toy']);
});
