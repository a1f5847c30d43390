/**
 * NAT through the whole per-packet path (crossings.ts): bindings made by the nat chains on a
 * connection's first packet, every later packet of both directions rewritten from the entry's
 * two tuples, checksums valid (checked by a full recompute), the pre-routing crossing's mark
 * carried to the filter crossing, exhaustion dropped and counted.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { CROSS_MASK, CROSS_ORIG, CROSS_REPLY, CROSS_SHIFT } from '../../../src/pipeline/crossings';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { formatConntrack } from '../../../src/conntrack/format';
import { CTSTATE_ESTABLISHED, CTSTATE_NEW, IPS_DST_NAT, IPS_SRC_NAT } from '../../../src/conntrack/constants';
import {
  NF_ACCEPT,
  NF_DROP,
  NF_INET_FORWARD,
  NF_INET_LOCAL_OUT,
  NF_INET_PRE_ROUTING,
  PKTF_CSUM_NOT_READY,
  VERDICT_MASK,
  VERDICT_SET_MARK,
  VERDICT_SET_PAYLOAD,
} from '../../../src/queue/layout';
import { parsePacket } from '../../../src/packet/parse';
import { PacketView } from '../../../src/packet/view';
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from '../../../src/packet/checksum';
import { formatAddr } from '../../../src/rules/addr';
import { ipv4, ipv6, tcp, udp, icmp } from '../../helpers/packets';

const CLI = '198.18.1.1';
const CLI2 = '198.18.1.2';
const SRV = '198.19.2.1';
const GW_OUT = '198.19.0.1';
const IN = 2; // inside interface
const OUT = 3; // outside interface
const ADDRS: Record<number, number[][]> = {
  [IN]: [[0xc61200fe, 0, 0, 0]], // 198.18.0.254
  [OUT]: [[0xc6130001, 0, 0, 0]], // 198.19.0.1
};

function firewall(nat: string, filter = ':FORWARD ACCEPT [0:0]'): Firewall {
  const text = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    nat,
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    filter,
    ':OUTPUT ACCEPT [0:0]',
    'COMMIT',
    '',
  ].join('\n');
  const r = loadRuleText(text.replace(/\n\n/g, '\n'), 'nat.rules', {
    log: () => {},
    reject: () => {},
    ifname: (i) => ({ 1: 'lo', 2: 'in0', 3: 'out0' })[i],
    natAddress: (ifindex, family, _dst, out) => {
      const a = family === 4 ? ADDRS[ifindex]?.[0] : ifindex === OUT ? [0x20010002, 0, 0, 0x99] : undefined;
      if (!a) return false;
      out.set(a);
      return true;
    },
  });
  assert.deepEqual(r.errors, []);
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 };
  return new Firewall({ tun, rules: r.rules! });
}

interface Out {
  verdict: number;
  mark: number;
  v: PacketView;
}

/** One crossing: the packet bytes may be rewritten in place (as the queue hands them back). */
function cross(fw: Firewall, pkt: Uint8Array, hook: number, o: { indev?: number; outdev?: number; mark?: number; flags?: number; now?: number } = {}): Out {
  const verdict = fw.decide(pkt, 0, pkt.length, pkt.length, hook, pkt[0] >> 4, o.indev ?? 0, o.outdev ?? 0, o.mark ?? 0, o.flags ?? 0, o.now ?? 1000);
  const v = new PacketView();
  parsePacket(pkt, 0, pkt.length, v, pkt[0] >> 4);
  if (v.ipVersion === 4) assert.ok(verifyIpv4HeaderChecksum(pkt, 0), 'IPv4 header checksum');
  assert.ok(verifyL4Checksum(v), 'L4 checksum (full recompute)');
  return { verdict, mark: (verdict & VERDICT_SET_MARK) !== 0 ? fw.ctx.mark : (o.mark ?? 0), v };
}

/** Forwarded, both crossings: pre-routing then FORWARD with the mark the first one set. */
function forward(fw: Firewall, pkt: Uint8Array, indev: number, outdev: number, now = 1000): Out {
  const a = cross(fw, pkt, NF_INET_PRE_ROUTING, { indev, now });
  if ((a.verdict & VERDICT_MASK) !== NF_ACCEPT) return a;
  const b = cross(fw, pkt, NF_INET_FORWARD, { indev, outdev, mark: a.mark, now });
  if ((b.verdict & VERDICT_MASK) === NF_ACCEPT) assert.equal(b.mark & CROSS_MASK, 0, 'the crossing mark is cleared when the packet leaves');
  return b;
}

const src = (o: Out) => `${formatAddr(o.v.ipVersion === 6 ? 6 : 4, o.v.src)}:${o.v.sport}`;
const dst = (o: Out) => `${formatAddr(o.v.ipVersion === 6 ? 6 : 4, o.v.dst)}:${o.v.dport}`;

test('MASQUERADE: the far side sees the gateway; the reply reaches the client; conntrack -L shows the reply tuple', () => {
  const fw = firewall(`-A POSTROUTING -o out0 -j MASQUERADE`);
  const syn = ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40000, dport: 80, seq: 1, flags: 'S', window: 1000 }));
  const o = forward(fw, syn, IN, OUT);
  assert.equal(o.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.ok(o.verdict & VERDICT_SET_PAYLOAD);
  assert.equal(src(o), `${GW_OUT}:40000`);
  assert.equal(dst(o), `${SRV}:80`);
  const e = fw.ctx.entry;
  assert.ok(fw.ct.table.status(e) & IPS_SRC_NAT);
  assert.match(
    formatConntrack(fw.ct, e, 1000),
    new RegExp(`src=${CLI} dst=${SRV} sport=40000 dport=80 \\[UNREPLIED\\] src=${SRV} dst=${GW_OUT} sport=80 dport=40000`),
  );

  const synack = ipv4({ src: SRV, dst: GW_OUT }, tcp({ sport: 80, dport: 40000, seq: 100, ack: 2, flags: 'SA', window: 1000 }));
  const pre = cross(fw, synack, NF_INET_PRE_ROUTING, { indev: OUT });
  assert.equal((pre.mark & CROSS_MASK) >>> CROSS_SHIFT, CROSS_REPLY);
  assert.equal(dst(pre), `${CLI}:40000`, 'un-SNAT before routing');
  const fwd = cross(fw, synack, NF_INET_FORWARD, { indev: OUT, outdev: IN, mark: pre.mark });
  assert.equal(fwd.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(fw.ctx.ctstate, CTSTATE_ESTABLISHED);
  assert.equal(fw.ctx.entry, e);
  assert.equal(src(fwd), `${SRV}:80`);
  assert.equal(fw.ct.count, 1);

  // the next client packet, forwarded without a pre-routing crossing (MASQUERADE only: iptables.ts queues only packets to local addresses there)
  const ack = ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40000, dport: 80, seq: 2, ack: 101, flags: 'A', window: 1000 }));
  const a = cross(fw, ack, NF_INET_FORWARD, { indev: IN, outdev: OUT });
  assert.equal(src(a), `${GW_OUT}:40000`);
  assert.equal(fw.ct.tracker(6).stateName(e), 'ESTABLISHED');
});

test('SNAT to a port range: concurrent flows from two clients with the same port get distinct in-range ports; exhaustion is dropped and counted', () => {
  const fw = firewall(`-A POSTROUTING -o out0 -p udp -j SNAT --to-source ${GW_OUT}:1000-1001`);
  const ports = new Set<string>();
  for (const c of [CLI, CLI2]) {
    const o = forward(fw, ipv4({ src: c, dst: SRV }, udp({ sport: 5000, dport: 53, payload: [1, 2, 3] })), IN, OUT);
    assert.equal(o.verdict & VERDICT_MASK, NF_ACCEPT);
    assert.match(src(o), new RegExp(`^${GW_OUT}:100[01]$`));
    ports.add(src(o));
  }
  assert.equal(ports.size, 2);
  const third = forward(fw, ipv4({ src: '198.18.1.3', dst: SRV }, udp({ sport: 5000, dport: 53 })), IN, OUT);
  assert.equal(third.verdict & VERDICT_MASK, NF_DROP);
  assert.equal(fw.ct.stats.nat_drop, 1);
  assert.equal(fw.ct.count, 2, 'the dropped flow left no entry');
  // the existing flows are unharmed
  const again = forward(fw, ipv4({ src: CLI, dst: SRV }, udp({ sport: 5000, dport: 53 })), IN, OUT);
  assert.equal(again.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.ok(ports.has(src(again)));
});

test('DNAT port forward: the server sees the real client, the filter sees post-DNAT addresses, the reply comes from the gateway', () => {
  const fw = firewall(
    `-A PREROUTING -i out0 -p tcp --dport 8080 -j DNAT --to-destination 198.18.1.5:80`,
    [':FORWARD DROP [0:0]', '-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT', '-A FORWARD -d 198.18.1.5 -p tcp --dport 80 -j ACCEPT'].join('\n'),
  );
  const syn = ipv4({ src: SRV, dst: GW_OUT }, tcp({ sport: 5555, dport: 8080, seq: 1, flags: 'S', window: 1000 }));
  const pre = cross(fw, syn, NF_INET_PRE_ROUTING, { indev: OUT });
  assert.equal((pre.mark & CROSS_MASK) >>> CROSS_SHIFT, CROSS_ORIG);
  assert.equal(dst(pre), '198.18.1.5:80');
  const e = fw.ctx.entry;
  const fwd = cross(fw, syn, NF_INET_FORWARD, { indev: OUT, outdev: IN, mark: pre.mark });
  assert.equal(fwd.verdict & VERDICT_MASK, NF_ACCEPT, 'the filter matched -d 198.18.1.5 --dport 80');
  assert.equal(fw.ctx.ctstate, CTSTATE_NEW);
  assert.equal(src(fwd), `${SRV}:5555`, 'the server sees the real client');
  assert.ok(fw.ct.table.status(e) & IPS_DST_NAT);
  const synack = ipv4({ src: '198.18.1.5', dst: SRV }, tcp({ sport: 80, dport: 5555, seq: 100, ack: 2, flags: 'SA', window: 1000 }));
  const r = forward(fw, synack, IN, OUT);
  assert.equal(r.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(src(r), `${GW_OUT}:8080`);
  assert.equal(dst(r), `${SRV}:5555`);
});

test('a first packet the filter drops at the second crossing leaves no entry (the pending entry dies with it)', () => {
  const fw = firewall(`-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 198.18.1.5:80`, ':FORWARD DROP [0:0]');
  const syn = ipv4({ src: SRV, dst: GW_OUT }, tcp({ sport: 5555, dport: 8080, seq: 1, flags: 'S', window: 1000 }));
  const o = forward(fw, syn, OUT, IN);
  assert.equal(o.verdict & VERDICT_MASK, NF_DROP);
  assert.equal(fw.ct.count, 0);
});

test('REDIRECT from OUTPUT goes to 127.0.0.1; a UDP checksum of 0 stays 0; a CSUM_NOT_READY packet gets a full checksum', () => {
  const fw = firewall(`-A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 5353`);
  const pkt = ipv4({ src: '198.18.0.254', dst: SRV }, udp({ sport: 4000, dport: 53, payload: [9, 9], checksum: 0 }));
  const o = cross(fw, pkt, NF_INET_LOCAL_OUT, { outdev: OUT });
  assert.equal(dst(o), '127.0.0.1:5353');
  assert.equal(pkt[20 + 6] | pkt[20 + 7], 0, 'no checksum before, none after');
  const t = ipv4({ src: '198.18.0.254', dst: SRV }, tcp({ sport: 4001, dport: 53, seq: 1, flags: 'S', checksum: 0x1234 }));
  const fw2 = firewall(`-A OUTPUT -p tcp --dport 53 -j REDIRECT --to-ports 5353`);
  const o2 = cross(fw2, t, NF_INET_LOCAL_OUT, { outdev: OUT, flags: PKTF_CSUM_NOT_READY });
  assert.equal(dst(o2), '127.0.0.1:5353');
});

test('ICMP echo is NATed by its id; IPv6 MASQUERADE rewrites the pseudo-header checksum', () => {
  const fw = firewall(`-A POSTROUTING -o out0 -j MASQUERADE`);
  const ping = ipv4({ src: CLI, dst: SRV }, icmp({ type: 8, code: 0, id: 77, seq: 1 } as never));
  const o = forward(fw, ping, IN, OUT);
  assert.equal(formatAddr(4, o.v.src), GW_OUT);
  const pong = ipv4({ src: SRV, dst: GW_OUT }, icmp({ type: 0, code: 0, id: o.v.icmpId, seq: 1 } as never));
  const r = forward(fw, pong, OUT, IN);
  assert.equal(formatAddr(4, r.v.dst), CLI);
  assert.equal(r.v.icmpId, 77);

  const s6 = ipv6({ src: '2001:2:1::5', dst: '2001:2:2::7' }, tcp({ sport: 41000, dport: 443, seq: 1, flags: 'S' }));
  const o6 = forward(fw, s6, IN, OUT);
  assert.equal(src(o6), '2001:2::99:41000');
});

test('hairpin NAT (DNAT to an inside server, MASQUERADE back into the LAN): every packet of both directions finds its entry', () => {
  const fw = firewall(
    [
      `-A PREROUTING -d ${GW_OUT} -p tcp --dport 80 -j DNAT --to-destination 198.18.1.5:80`,
      '-A POSTROUTING -o in0 -s 198.18.1.0/24 -d 198.18.1.5 -j MASQUERADE',
    ].join('\n'),
  );
  const GW_IN = '198.18.0.254';
  const syn = forward(fw, ipv4({ src: CLI, dst: GW_OUT }, tcp({ sport: 40000, dport: 80, seq: 1, flags: 'S', window: 1000 })), IN, IN);
  assert.equal(syn.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(`${src(syn)} > ${dst(syn)}`, `${GW_IN}:40000 > 198.18.1.5:80`);
  const e = fw.ctx.entry;
  assert.equal(fw.ct.table.status(e) & (IPS_SRC_NAT | IPS_DST_NAT), IPS_SRC_NAT | IPS_DST_NAT);
  const synack = forward(fw, ipv4({ src: '198.18.1.5', dst: GW_IN }, tcp({ sport: 80, dport: 40000, seq: 100, ack: 2, flags: 'SA', window: 1000 })), IN, IN);
  assert.equal(synack.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(fw.ctx.entry, e);
  assert.equal(`${src(synack)} > ${dst(synack)}`, `${GW_OUT}:80 > ${CLI}:40000`);
  const ack = forward(fw, ipv4({ src: CLI, dst: GW_OUT }, tcp({ sport: 40000, dport: 80, seq: 2, ack: 101, flags: 'A', window: 1000 })), IN, IN);
  assert.equal(ack.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(fw.ctx.entry, e);
  assert.equal(fw.ctx.ctstate, CTSTATE_ESTABLISHED);
  assert.equal(`${src(ack)} > ${dst(ack)}`, `${GW_IN}:40000 > 198.18.1.5:80`);
  assert.equal(fw.ct.stats.nat_drop, 0);
});

test('MASQUERADE entries die when their address goes away or their interface goes down', () => {
  const fw = firewall('-A POSTROUTING -o out0 -j MASQUERADE');
  forward(fw, ipv4({ src: CLI, dst: SRV }, udp({ sport: 5000, dport: 53 })), IN, OUT);
  forward(fw, ipv4({ src: CLI2, dst: SRV }, udp({ sport: 5000, dport: 53 })), IN, OUT);
  assert.equal(fw.ct.count, 2);
  assert.equal(fw.ct.masqueradeGone(OUT, Uint32Array.from([0xc6130002, 0, 0, 0])), 0, 'another address: nothing');
  assert.equal(fw.ct.masqueradeGone(IN, null), 0, 'another interface: nothing');
  assert.equal(fw.ct.masqueradeGone(OUT, Uint32Array.from([0xc6130001, 0, 0, 0])), 2);
  assert.equal(fw.ct.count, 0);
  forward(fw, ipv4({ src: CLI, dst: SRV }, udp({ sport: 5001, dport: 53 })), IN, OUT);
  assert.equal(fw.ct.masqueradeGone(OUT, null), 1);
});

test("MARK in nat (kube-proxy's masquerade mark): set in nat PREROUTING, seen by the filter and nat POSTROUTING, cleared there; only the first packet walks the nat chains", () => {
  /** kube-proxy's KUBE-MARK-MASQ / KUBE-POSTROUTING / KUBE-FORWARD, behind these nat PREROUTING rules */
  const kube = (...prerouting: string[]) =>
    firewall(
      [
        ':KUBE-MARK-MASQ - [0:0]',
        ...prerouting,
        '-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
        '-A POSTROUTING -j MARK --xor-mark 0x4000',
        '-A POSTROUTING -j MASQUERADE',
        '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
      ].join('\n'),
      ':FORWARD DROP [0:0]\n-A FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    );
  const fw = kube(
    '-A PREROUTING -d 198.19.9.9/32 -p tcp --dport 80 -j KUBE-MARK-MASQ',
    '-A PREROUTING -d 198.19.9.9/32 -p tcp --dport 80 -j DNAT --to-destination 198.19.2.1:8080',
  );
  const syn = ipv4({ src: CLI, dst: '198.19.9.9' }, tcp({ sport: 40001, dport: 80, seq: 1, flags: 'S', window: 1000 }));
  const pre = cross(fw, syn, NF_INET_PRE_ROUTING, { indev: IN, mark: 0x10 });
  assert.equal(pre.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(pre.mark & ~CROSS_MASK, 0x4010, 'the mark is in the pre-routing verdict, before routing');
  const fwd = cross(fw, syn, NF_INET_FORWARD, { indev: IN, outdev: OUT, mark: pre.mark });
  assert.equal(fwd.verdict & VERDICT_MASK, NF_ACCEPT, 'filter FORWARD accepted it by the mark');
  assert.equal(fwd.mark, 0x10, 'nat POSTROUTING took the 0x4000 bit away again');
  assert.equal(src(fwd), `${GW_OUT}:40001`, 'masqueraded because it was marked');
  assert.equal(dst(fwd), '198.19.2.1:8080');

  // MASQUERADE by the mark alone (an entry both DNATed and SNATed is nat's open hairpin case): later packets walk no nat chain
  const fw3 = kube('-A PREROUTING -p tcp --dport 80 -j KUBE-MARK-MASQ');
  const syn3 = ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40003, dport: 80, seq: 1, flags: 'S', window: 1000 }));
  const first = forward(fw3, syn3, IN, OUT);
  assert.equal(first.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(first.mark, 0);
  assert.equal(src(first), `${GW_OUT}:40003`);
  const synack = ipv4({ src: SRV, dst: GW_OUT }, tcp({ sport: 80, dport: 40003, seq: 100, ack: 2, flags: 'SA', window: 1000 }));
  const back = forward(fw3, synack, OUT, IN);
  assert.equal(back.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(dst(back), `${CLI}:40003`);
  const ack = ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40003, dport: 80, seq: 2, ack: 101, flags: 'A', window: 1000 }));
  const pre2 = cross(fw3, ack, NF_INET_PRE_ROUTING, { indev: IN });
  assert.equal(pre2.mark & ~CROSS_MASK, 0, 'a later packet does not walk nat PREROUTING');
  const later = cross(fw3, ack, NF_INET_FORWARD, { indev: IN, outdev: OUT, mark: pre2.mark });
  assert.equal(later.verdict & VERDICT_MASK, NF_ACCEPT, 'ESTABLISHED');
  assert.equal(src(later), `${GW_OUT}:40003`);

  // an unmarked connection is not masqueraded
  const other = ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40002, dport: 80, seq: 1, flags: 'S', window: 1000 }));
  const fw2 = firewall('-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n-A POSTROUTING -j MASQUERADE');
  const o = forward(fw2, other, IN, OUT);
  assert.equal(src(o), `${CLI}:40002`);
});

test('LOG in a nat chain (xt_LOG has no table restriction): it sees only a connection first packet, as the nat chains do', () => {
  const lines: string[] = [];
  const text = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    '-A POSTROUTING -o out0 -j LOG --log-prefix "masq: "',
    '-A POSTROUTING -o out0 -j MASQUERADE',
    'COMMIT',
    '',
  ].join('\n');
  const r = loadRuleText(text, 'nat-log.rules', {
    log: (line) => lines.push(line),
    reject: () => {},
    ifname: (i) => ({ 1: 'lo', 2: 'in0', 3: 'out0' })[i],
    natAddress: (ifindex, _family, _dst, out) => {
      const a = ADDRS[ifindex]?.[0];
      if (!a) return false;
      out.set(a);
      return true;
    },
  });
  assert.deepEqual(r.errors, []);
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 };
  const fw = new Firewall({ tun, rules: r.rules! });
  for (let i = 0; i < 3; i++) {
    const o = forward(fw, ipv4({ src: CLI, dst: SRV }, udp({ sport: 5000, dport: 53, payload: new Uint8Array(4) })), IN, OUT);
    assert.equal(o.verdict & VERDICT_MASK, NF_ACCEPT);
    assert.equal(src(o), `${GW_OUT}:5000`);
  }
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0], /^masq: IN=in0 OUT=out0 .*SRC=198\.18\.1\.1 DST=198\.19\.2\.1 /);
});
