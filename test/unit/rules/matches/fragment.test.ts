import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, ipv6, udp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';

// ip_packet_match: -f is "the fragment offset is not 0" (a non-first fragment)
const first = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', mf: true }, udp({ dport: 53 }));
const later = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', fragOffset: 1480, proto: 17 }, new Uint8Array(16));
const whole = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ dport: 53 }));
const v6 = ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, udp({ dport: 53 }));
const v = (rule: string, pkt: Uint8Array) => engineFor(forward(`${rule} -j ACCEPT`)).engine.evalFilter(ctxFor(pkt), 0);

test('-f matches non-first fragments only, ! -f everything else; IPv4 only', () => {
  assert.equal(v('-f', later), A);
  assert.equal(v('-f', first), D, 'a first fragment has offset 0');
  assert.equal(v('-f', whole), D);
  assert.equal(v('! -f', whole), A);
  assert.equal(v('! -f', first), A);
  assert.equal(v('! -f', later), D);
  assert.equal(v('! -f', v6), D, 'the rule is IPv4');
  assert.equal(v('-p udp -f', later), A);
});

test('-f / ! -f: iptables-save spelling (after -p)', () => {
  assert.equal(savedRule('-f -s 1.2.3.4 -p udp -i eth0 -j DROP'), '-A FORWARD -s 1.2.3.4/32 -i eth0 -p udp -f -j DROP');
  assert.equal(savedRule('! -f -m comment --comment x'), '-A FORWARD ! -f -m comment --comment x');
});

test('-m pkttype and -m policy are refused with the reason', () => {
  assert.deepEqual(
    errorsOf(forward('-m pkttype --pkt-type broadcast -j DROP')).map((e) => e.replace(/: the kernel tests skb->pkt_type.*/, ': …')),
    ['e.rules:5:15: match "pkttype" is not supported: …'],
  );
  assert.match(errorsOf(forward('-m policy --dir in --pol ipsec -j ACCEPT'))[0], /not supported: IPsec policy matching needs the packet's xfrm state/);
});
