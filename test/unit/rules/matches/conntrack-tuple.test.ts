/**
 * -m conntrack --ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst and --ctorigsrcport/…/--ctrepldstport
 * (xt_conntrack.c conntrack_mt, ct_proto_port_check_v3): parse and iptables-save spelling as
 * iptables 1.8.9 prints them (checked by hand with iptables-save in a namespace), and the match
 * against the entry's stored tuples through the real connection table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Firewall } from '../../../../src/pipeline/firewall';
import { loadRuleText } from '../../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../../src/conntrack/sysctl';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD } from '../../../../src/queue/layout';
import { icmpError, ipv4, ipv6, tcp, udp } from '../../../helpers/packets';
import { errorsOf, forward, savedRule } from '../util';

test('conntrack tuple options: saved as iptables-save prints them', () => {
  assert.equal(
    savedRule('-m conntrack --ctstate SNAT,DNAT ! --ctreplsrcport 1000:2000 --ctorigdstport 21 ! --ctrepldst 198.19.0.1 --ctorigsrc 198.18.1.7/24 -j ACCEPT'),
    '-A FORWARD -m conntrack --ctstate SNAT,DNAT --ctorigsrc 198.18.1.7/24 ! --ctrepldst 198.19.0.1 --ctorigdstport 21 ! --ctreplsrcport 1000:2000 -j ACCEPT',
  );
  assert.equal(
    savedRule('-m conntrack --ctorigsrcport ftp:ssh --ctorigdst 10.1 -j ACCEPT'),
    '-A FORWARD -m conntrack --ctorigdst 10.0.0.1 --ctorigsrcport 21:22 -j ACCEPT',
  );
  assert.equal(
    savedRule('-m conntrack --ctorigsrc 2001:2::1/64 --ctreplsrc 2001:2:0:0::5 -j ACCEPT'),
    '-A FORWARD -m conntrack --ctorigsrc 2001:2::1/64 --ctreplsrc 2001:2::5 -j ACCEPT',
  );
});

test('conntrack tuple options: refusals', () => {
  const one = (r: string) => {
    const e = errorsOf(forward(r));
    assert.equal(e.length, 1, e.join('\n'));
    return e[0];
  };
  assert.match(one('-m conntrack --ctorigsrc 198.18.0.0/255.255.0.255 -j ACCEPT'), /not a prefix/);
  assert.match(one('-m conntrack --ctorigsrc 198.18.0.0/33 -j ACCEPT'), /prefix length/);
  assert.match(one('-m conntrack --ctorigsrc gateway.example -j ACCEPT'), /host names are not supported/);
  assert.match(one('-m conntrack --ctorigsrc 198.18.0.1 --ctrepldst 2001:2::1 -j ACCEPT'), /mixes IPv4 and IPv6/);
  assert.match(one('-m conntrack --ctorigdstport 70000 -j ACCEPT'), /bad port/);
});

function firewall(rule: string): Firewall {
  const r = loadRuleText(forward(rule), 'ct.rules', { log: () => {}, ifname: () => undefined, reject: () => {} });
  assert.deepEqual(r.errors, []);
  return new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
}

const send = (fw: Firewall, p: Uint8Array) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, p[0] >> 4 === 6 ? 6 : 4, 2, 3, 0, 0, 1000);
const CLI = '198.18.1.7';
const SRV = '198.19.2.1';
const syn = ipv4({ src: CLI, dst: SRV }, tcp({ sport: 40000, dport: 21, flags: 'S', seq: 1 }));
const synack = ipv4({ src: SRV, dst: CLI }, tcp({ sport: 21, dport: 40000, flags: 'SA', seq: 500, ack: 2 }));

test('conntrack tuple options match the entry tuples (both directions of the connection, masked, negated, port ranges)', () => {
  const cases: [string, number][] = [
    ['--ctorigsrc 198.18.1.0/24', NF_ACCEPT],
    ['--ctorigsrc 198.18.2.0/24', NF_DROP],
    ['! --ctorigsrc 198.18.2.0/24', NF_ACCEPT],
    ['--ctorigdst 198.19.2.1', NF_ACCEPT],
    ['--ctreplsrc 198.19.2.1 --ctrepldst 198.18.1.7', NF_ACCEPT],
    ['--ctrepldst 198.19.2.1', NF_DROP],
    ['--ctorigsrcport 40000 --ctorigdstport 21', NF_ACCEPT],
    ['--ctreplsrcport 21 --ctrepldstport 39000:41000', NF_ACCEPT],
    ['--ctreplsrcport 22:65535', NF_DROP],
    ['! --ctreplsrcport 22:65535', NF_ACCEPT],
  ];
  for (const [opts, want] of cases) {
    const fw = firewall(`-m conntrack ${opts} -j ACCEPT`);
    // the SYN creates the entry (the match sees its tuples), the SYN-ACK is the reply direction
    assert.equal(send(fw, syn), want, `${opts} (original)`);
    if (want === NF_ACCEPT) assert.equal(send(fw, synack), want, `${opts} (reply)`);
  }
});

test('conntrack tuple options: an ICMP error is matched by the tuples of its connection, another flow is not, IPv6 by its family', () => {
  const fw = firewall('-m conntrack --ctorigdstport 5353 --ctreplsrc 198.19.2.1 -j ACCEPT');
  const dgram = ipv4({ src: CLI, dst: SRV }, udp({ sport: 40001, dport: 5353, payload: 'q' }));
  assert.equal(send(fw, dgram), NF_ACCEPT);
  const err = ipv4({ src: SRV, dst: CLI }, icmpError(3, 3, dgram.subarray(0, 28)));
  assert.equal(send(fw, err), NF_ACCEPT);
  // another flow: its own tuples, other ports
  assert.equal(send(fw, ipv4({ src: CLI, dst: SRV }, udp({ sport: 40002, dport: 53, payload: 'q' }))), NF_DROP);
  const fw6 = firewall('-m conntrack --ctorigsrc 2001:2::/64 -j ACCEPT');
  assert.equal(send(fw6, ipv6({ src: '2001:2::7', dst: '2001:2:1::1' }, udp({ sport: 1, dport: 2, payload: 'x' }))), NF_ACCEPT);
  assert.equal(send(fw6, ipv4({ src: CLI, dst: SRV }, udp({ sport: 1, dport: 2, payload: 'x' }))), NF_DROP);
});
