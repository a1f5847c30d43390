/**
 * NAT bindings in the state file (ops.ts exportEntry / importEntry, restore-check.ts): a
 * MASQUERADEd connection exported from one table and imported into a fresh one keeps its REPLY
 * tuple, so the server's next packet to the gateway is still un-NATed to the client; the sequence
 * offsets of a resized FTP command come along; a forged binding of another family, or a reply
 * tuple without a NAT status, is refused.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { IPS_SRC_NAT } from '../../../src/conntrack/constants';
import { IPS_SEQ_ADJUST } from '../../../src/conntrack/seqadj';
import { checkRestoredEntry } from '../../../src/conntrack/restore-check';
import { formatConntrack } from '../../../src/conntrack/format';
import { NF_ACCEPT, NF_INET_FORWARD, NF_INET_PRE_ROUTING, VERDICT_MASK } from '../../../src/queue/layout';
import { get32 } from '../../../src/packet/bytes';
import { ipv4, tcp } from '../../helpers/packets';

const CLI = '198.18.1.1';
const SRV = '198.19.2.1';
const GW = '198.19.0.1';

function firewall(): Firewall {
  const text = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    '-A POSTROUTING -o out0 -j MASQUERADE',
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    'COMMIT',
    '',
  ].join('\n');
  const r = loadRuleText(text, 'nat-state.rules', {
    log: () => {},
    reject: () => {},
    ifname: (i) => ({ 1: 'lo', 2: 'in0', 3: 'out0' })[i],
    natAddress: (ifindex, family, _dst, out) => {
      if (family !== 4 || ifindex !== 3) return false;
      out.set([0xc6130001, 0, 0, 0]);
      return true;
    },
  });
  assert.deepEqual(r.errors, []);
  return new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
}

const send = (fw: Firewall, p: Uint8Array, hook: number, indev: number, outdev: number, mark = 0) =>
  fw.decide(p, 0, p.length, p.length, hook, 4, indev, outdev, mark, 0, 1000);

test('a MASQUERADE binding survives export and import: the reply is still un-NATed, conntrack -L the same, seqadj kept', () => {
  const a = firewall();
  assert.equal(
    send(a, ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40000, dport: 80, seq: 1, flags: 'S', window: 1000 })), NF_INET_FORWARD, 2, 3) & VERDICT_MASK,
    NF_ACCEPT,
  );
  const e = a.ctx.entry;
  assert.ok(a.ct.table.status(e) & IPS_SRC_NAT);
  a.ct.seqAdjustSet(e, 0, 1, 3);
  const saved = JSON.parse(JSON.stringify(a.ct.exportEntry(e, 1000)));
  assert.deepEqual(saved.seqadj, [1, 0, 3, 0, 0, 0]);
  const checked = checkRestoredEntry(a.ct, saved, 0);
  assert.ok(typeof checked !== 'string', String(checked));

  const b = firewall();
  const e2 = b.ct.importEntry(checked, 1000);
  assert.ok(e2 >= 0);
  assert.equal(formatConntrack(b.ct, e2, 1000), formatConntrack(a.ct, e, 1000));
  // the server's SYN-ACK to the gateway, at the pre-routing crossing: back to the client
  const synack = ipv4({ src: SRV, dst: GW }, tcp({ sport: 80, dport: 40000, seq: 100, ack: 5, flags: 'SA', window: 1000 }));
  const v = send(b, synack, NF_INET_PRE_ROUTING, 3, 0);
  assert.equal(v & VERDICT_MASK, NF_ACCEPT);
  assert.equal(b.ctx.entry, e2);
  assert.equal(get32(synack, 16), 0xc6120101, 'destination rewritten to the client');
  // the filter crossing (mark from the first): confirm's seqadj with the restored offsets
  assert.equal(send(b, synack, NF_INET_FORWARD, 3, 2, b.ctx.mark) & VERDICT_MASK, NF_ACCEPT);
  assert.equal(get32(synack, 28), 2, 'ack moved back by the restored offset');
  assert.ok(b.ct.table.status(e2) & IPS_SEQ_ADJUST);
});

test('restore-check: a binding of another family, a reply without NAT status, bad offsets are refused', () => {
  const a = firewall();
  send(a, ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40001, dport: 80, seq: 1, flags: 'S', window: 1000 })), NF_INET_FORWARD, 2, 3);
  const d = JSON.parse(JSON.stringify(a.ct.exportEntry(a.ctx.entry, 1000)));
  const other = { ...d, reply: [(6 << 8) | 6, ...d.reply.slice(1)] };
  assert.match(String(checkRestoredEntry(a.ct, other, 0)), /another family or protocol/);
  assert.match(String(checkRestoredEntry(a.ct, { ...d, status: d.status & ~0x30 }, 0)), /reply tuple without a NAT status/);
  assert.match(String(checkRestoredEntry(a.ct, { ...d, status: d.status | IPS_SEQ_ADJUST, seqadj: [1, 2] }, 0)), /sequence adjustment/);
  assert.match(String(checkRestoredEntry(a.ct, { ...d, reply: undefined }, 0)), /NAT reply/);
});
