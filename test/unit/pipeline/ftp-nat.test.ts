/**
 * FTP through a MASQUERADE gateway in the whole per-packet path (both crossings): the PORT
 * command leaves naming the gateway, and the server's data connection to the gateway is NATed
 * as its master (nf_nat_follow_master: destination mapped back to the client at the announced
 * port, RELATED, no nat chain walked); in passive mode the client's data connection is SNATed
 * to the gateway like its master. Every packet's checksums are checked by a full recompute.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { CTSTATE_RELATED, IPS_DST_NAT, IPS_EXPECTED } from '../../../src/conntrack/constants';
import { NF_ACCEPT, NF_INET_FORWARD, NF_INET_PRE_ROUTING, VERDICT_MASK, VERDICT_SET_MARK } from '../../../src/queue/layout';
import { parsePacket } from '../../../src/packet/parse';
import { PacketView } from '../../../src/packet/view';
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from '../../../src/packet/checksum';
import { formatAddr } from '../../../src/rules/addr';
import { ipv4, tcp } from '../../helpers/packets';

const CLI = '198.18.1.1';
const SRV = '198.19.2.1';
const GW = '198.19.0.1';
const IN = 2;
const OUT = 3;

function firewall(): Firewall {
  const text = [
    '*raw',
    ':PREROUTING ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    '-A PREROUTING -p tcp --dport 21 -j CT --helper ftp',
    'COMMIT',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    '-A POSTROUTING -o out0 -j MASQUERADE',
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A FORWARD -i in0 -p tcp --dport 21 -j ACCEPT',
    'COMMIT',
    '',
  ].join('\n');
  const r = loadRuleText(text, 'ftp-nat.rules', {
    log: () => {},
    reject: () => {},
    ifname: (i) => ({ 1: 'lo', 2: 'in0', 3: 'out0' })[i],
    natAddress: (ifindex, family, _dst, out) => {
      if (family !== 4 || ifindex !== OUT) return false;
      out.set([0xc6130001, 0, 0, 0]);
      return true;
    },
  });
  assert.deepEqual(r.errors, []);
  return new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
}

interface Out {
  verdict: number;
  mark: number;
  v: PacketView;
  text: string;
}

/** One crossing of a packet held in a 2 KiB slot (room to grow, as the queue's). */
function cross(fw: Firewall, pkt: Uint8Array, hook: number, indev: number, outdev: number, mark = 0): Out {
  const buf = new Uint8Array(2048);
  buf.set(pkt);
  const verdict = fw.decide(buf, 0, pkt.length, pkt.length, hook, 4, indev, outdev, mark, 0, 1000, buf.length);
  const v = new PacketView();
  parsePacket(buf, 0, fw.ctx.view.len, v, 4);
  assert.ok(verifyIpv4HeaderChecksum(buf, 0));
  assert.ok(verifyL4Checksum(v));
  pkt.set(buf.subarray(0, Math.min(pkt.length, v.len)));
  return {
    verdict,
    mark: verdict & VERDICT_SET_MARK ? fw.ctx.mark : mark,
    v,
    text: Buffer.from(buf.subarray(v.payloadOff, v.payloadOff + v.payloadLen)).toString(),
  };
}

/** A packet to the gateway's address: pre-routing crossing (un-NAT / follow-master DNAT), then FORWARD. */
function inbound(fw: Firewall, pkt: Uint8Array): Out {
  const a = cross(fw, pkt, NF_INET_PRE_ROUTING, OUT, 0);
  assert.equal(a.verdict & VERDICT_MASK, NF_ACCEPT);
  return cross(fw, pkt, NF_INET_FORWARD, OUT, IN, a.mark);
}

const ep = (o: Out, side: 'src' | 'dst') => `${formatAddr(4, side === 'src' ? o.v.src : o.v.dst)}:${side === 'src' ? o.v.sport : o.v.dport}`;

/** The control connection, up to the client's USER line; returns the sequence numbers in use. */
function control(fw: Firewall) {
  let c = 1000;
  let s = 5000;
  const cli = (flags: string, payload = '') => {
    const o = cross(
      fw,
      ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40000, dport: 21, seq: c, ack: s, flags, window: 64000, payload })),
      NF_INET_FORWARD,
      IN,
      OUT,
    );
    c += payload.length + (flags.includes('S') ? 1 : 0);
    return o;
  };
  const srv = (flags: string, payload = '') => {
    const o = inbound(fw, ipv4({ src: SRV, dst: GW }, tcp({ sport: 21, dport: 40000, seq: s, ack: c, flags, window: 64000, payload })));
    s += payload.length + (flags.includes('S') ? 1 : 0);
    return o;
  };
  assert.equal(ep(cli('S'), 'src'), `${GW}:40000`);
  assert.equal(ep(srv('SA'), 'dst'), `${CLI}:40000`);
  cli('A');
  srv('PA', '220 hi\r\n');
  cli('PA', 'USER a\r\n');
  return { cli, srv };
}

test('active FTP through MASQUERADE: PORT names the gateway, the server data connection to it reaches the client (follow master)', () => {
  const fw = firewall();
  const { cli } = control(fw);
  const port = cli('PA', 'PORT 198,18,1,1,195,80\r\n');
  assert.equal(port.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(port.text, 'PORT 198,19,0,1,195,80\r\n');
  // the server connects from port 20 to the gateway's 50000
  const syn = inbound(fw, ipv4({ src: SRV, dst: GW }, tcp({ sport: 20, dport: 50000, seq: 9000, flags: 'S', window: 64000 })));
  assert.equal(syn.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_RELATED);
  assert.equal(ep(syn, 'src'), `${SRV}:20`);
  assert.equal(ep(syn, 'dst'), `${CLI}:50000`);
  const e = fw.ctx.entry;
  assert.ok(fw.ct.table.status(e) & IPS_EXPECTED && fw.ct.table.status(e) & IPS_DST_NAT);
  // the client's answer leaves from the gateway's address and port
  const synack = cross(
    fw,
    ipv4({ src: CLI, dst: SRV }, tcp({ sport: 50000, dport: 20, seq: 7000, ack: 9001, flags: 'SA', window: 64000 })),
    NF_INET_FORWARD,
    IN,
    OUT,
  );
  assert.equal(synack.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(fw.ctx.entry, e);
  assert.equal(ep(synack, 'src'), `${GW}:50000`);
});

test('passive FTP through MASQUERADE: 227 is left as the server said it, the client data connection is SNATed to the gateway as its master', () => {
  const fw = firewall();
  const { srv } = control(fw);
  const pasv = srv('PA', '227 Entering Passive Mode (198,19,2,1,117,48).\r\n');
  assert.equal(pasv.text, '227 Entering Passive Mode (198,19,2,1,117,48).\r\n');
  const syn = cross(fw, ipv4({ src: CLI, dst: SRV }, tcp({ sport: 45000, dport: 30000, seq: 3000, flags: 'S', window: 64000 })), NF_INET_FORWARD, IN, OUT);
  assert.equal(syn.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_RELATED);
  assert.equal(ep(syn, 'src'), `${GW}:45000`);
  assert.equal(ep(syn, 'dst'), `${SRV}:30000`);
  const synack = inbound(fw, ipv4({ src: SRV, dst: GW }, tcp({ sport: 30000, dport: 45000, seq: 8000, ack: 3001, flags: 'SA', window: 64000 })));
  assert.equal(synack.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(ep(synack, 'dst'), `${CLI}:45000`);
});
