/**
 * nf_confirm's sequence adjustment in the pipeline: once a helper resized a payload of a
 * connection (Conntrack.seqAdjustSet, IPS_SEQ_ADJUST), every accepted TCP packet of it leaves
 * with seq/ack moved and VERDICT_SET_PAYLOAD, and the tracker takes the peer's acks of the
 * grown stream as in window.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { CTSTATE_ESTABLISHED } from '../../../src/conntrack/constants';
import { IPS_SEQ_ADJUST } from '../../../src/conntrack/seqadj';
import { get32 } from '../../../src/packet/bytes';
import { verifyL4Checksum } from '../../../src/packet/checksum';
import { NF_ACCEPT, NF_INET_FORWARD, NF_INET_LOCAL_IN, VERDICT_SET_PAYLOAD } from '../../../src/queue/layout';
import { ipv4, tcp } from '../../helpers/packets';

const rules = [
  '*filter',
  ':INPUT ACCEPT [0:0]',
  ':FORWARD DROP [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  '-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT',
  '-A INPUT -m conntrack --ctstate INVALID -j DROP',
  'COMMIT',
  '',
];

function setup(): Firewall {
  const r = loadRuleText(rules.join('\n'), 'seqadj.rules', { log: () => {}, ifname: () => undefined, reject: () => {} });
  assert.deepEqual(r.errors, []);
  return new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
}

const CLI = { src: '198.18.1.1', dst: '198.19.2.1' };
const SRV = { src: '198.19.2.1', dst: '198.18.1.1' };
const seg = (fromCli: boolean, flags: string, seq: number, ack: number, len = 0) =>
  ipv4(
    fromCli ? CLI : SRV,
    tcp({ sport: fromCli ? 40000 : 21, dport: fromCli ? 21 : 40000, flags, seq, ack, window: 64000, payload: new Uint8Array(len).fill(0x41) }),
  );

function send(fw: Firewall, p: Uint8Array, hook = NF_INET_FORWARD, indev = 2): number {
  return fw.decide(p, 0, p.length, p.length, hook, 4, indev, 3, 0, 0, 1000);
}

test('an entry with IPS_SEQ_ADJUST: its packets go out adjusted (VERDICT_SET_PAYLOAD), the peer acks of the grown bytes are ESTABLISHED', () => {
  const fw = setup();
  assert.equal(send(fw, seg(true, 'S', 100, 0)), NF_ACCEPT);
  assert.equal(send(fw, seg(false, 'SA', 900, 101)), NF_ACCEPT);
  assert.equal(send(fw, seg(true, 'A', 101, 901)), NF_ACCEPT);
  const e = fw.ctx.entry;
  // a 20-byte command at 101 left 25 bytes long (what nf_nat_mangle_tcp_packet records)
  assert.equal(send(fw, seg(true, 'PA', 101, 901, 20)), NF_ACCEPT);
  fw.ct.seqAdjustSet(e, 0, 101, 5);
  assert.ok(fw.ct.status(e) & IPS_SEQ_ADJUST);
  // the server acks 126; it reaches the client as 121, what the client sent
  let p = seg(false, 'A', 901, 126);
  assert.equal(send(fw, p), NF_ACCEPT | VERDICT_SET_PAYLOAD);
  assert.equal(fw.ctx.ctstate, CTSTATE_ESTABLISHED);
  assert.equal(get32(p, 28), 121);
  assert.ok(verifyL4Checksum(fw.ctx.view));
  // the client's next bytes follow the grown command: 121 → 126
  p = seg(true, 'PA', 121, 901, 10);
  assert.equal(send(fw, p), NF_ACCEPT | VERDICT_SET_PAYLOAD);
  assert.equal(get32(p, 24), 126);
  // a retransmission of the command itself (seq at the position) keeps its sequence number: no rewrite
  p = seg(true, 'PA', 101, 901, 20);
  assert.equal(send(fw, p), NF_ACCEPT);
  assert.equal(get32(p, 24), 101);
  // over loopback (INPUT from lo) the kernel does not adjust
  p = seg(false, 'A', 901, 136);
  assert.equal(send(fw, p, NF_INET_LOCAL_IN, 1), NF_ACCEPT);
  assert.equal(get32(p, 28), 136);
});
