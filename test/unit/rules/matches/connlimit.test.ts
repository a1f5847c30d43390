import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorsOf, forward, savedRule } from '../util';
import { ipv4, ipv6, tcp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D, NF_INET_FORWARD } from '../../../../src/queue/layout';
import { Firewall } from '../../../../src/pipeline/firewall';
import { loadRuleText } from '../../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../../src/conntrack/sysctl';

function firewall(rules: string): Firewall {
  const r = loadRuleText(rules, 't.rules', { log: () => {}, reject: () => {} } as never);
  assert.deepEqual(r.errors, []);
  return new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
}
const syn = (src: string, sport: number) => ipv4({ src, dst: '198.19.2.1' }, tcp({ sport, dport: 22, flags: 'S', seq: 1000 }));
const send = (fw: Firewall, p: Uint8Array, now = 1000) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, p[0] >> 4, 0, 0, 0, 0, now);

const GUARD = forward(
  '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
  '-p tcp --syn --dport 22 -m connlimit --connlimit-above 2 --connlimit-mask 24 -j DROP',
  '-p tcp --dport 22 -j ACCEPT',
);

test('-m connlimit: at most 2 connections per /24 source, counted in the table; a gone or closed one frees its place', () => {
  const fw = firewall(GUARD);
  assert.equal(send(fw, syn('198.18.1.1', 1001)), A);
  const first = fw.ctx.entry;
  assert.equal(send(fw, syn('198.18.1.2', 1002)), A, 'same /24');
  assert.equal(send(fw, syn('198.18.1.3', 1003)), D, 'third of the /24');
  assert.equal(send(fw, syn('198.18.2.1', 1004)), A, 'another /24');
  assert.equal(send(fw, syn('198.18.1.1', 1001)), A, 'a retransmitted SYN of a counted connection is not counted again');
  fw.ct.kill(first);
  assert.equal(send(fw, syn('198.18.1.3', 1003)), A, 'the first connection is gone: room again');
  assert.equal(send(fw, syn('198.18.1.4', 1005)), D);
});

test('-m connlimit: --connlimit-upto, --connlimit-daddr, IPv6 mask', () => {
  const fw = firewall(forward('-p tcp -m connlimit --connlimit-upto 1 --connlimit-daddr -j ACCEPT'));
  assert.equal(send(fw, syn('198.18.1.1', 2001)), A);
  assert.equal(send(fw, syn('198.18.1.2', 2002)), D, 'second connection to the same destination');
  const f6 = firewall(forward('-p tcp -m connlimit --connlimit-above 1 --connlimit-mask 64 -j DROP', '-p tcp -j ACCEPT'));
  const s6 = (src: string, sport: number) => ipv6({ src, dst: '2001:2:0:2::1' }, tcp({ sport, dport: 22, flags: 'S' }));
  assert.equal(send(f6, s6('2001:2:0:1::1', 3001)), A);
  assert.equal(send(f6, s6('2001:2:0:1::2', 3002)), D, 'same /64');
  assert.equal(send(f6, s6('2001:2:0:9::2', 3003)), A);
});

test('-m connlimit: many sources (key table rebuilt, empty keys dropped)', () => {
  const fw = firewall(forward('-p tcp -m connlimit --connlimit-above 1 -j DROP', '-p tcp -j ACCEPT'));
  for (let i = 0; i < 500; i++) {
    assert.equal(send(fw, syn(`198.18.${i >> 8}.${i & 255}`, 4000 + i)), A);
    fw.ct.kill(fw.ctx.entry);
  }
  assert.equal(send(fw, syn('198.18.0.7', 1)), A);
  assert.equal(send(fw, syn('198.18.0.7', 2)), D);
});

test('-m connlimit: iptables-save spelling and errors', () => {
  assert.equal(
    savedRule('-4 -p tcp --syn -m connlimit --connlimit-above 2 --connlimit-mask 24'),
    '-A FORWARD -4 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 24 --connlimit-saddr',
  );
  assert.equal(
    savedRule('-4 -m connlimit ! --connlimit-above 5 --connlimit-daddr'),
    '-A FORWARD -4 -m connlimit --connlimit-upto 5 --connlimit-mask 32 --connlimit-daddr',
  );
  assert.equal(savedRule('-6 -m connlimit --connlimit-above 3'), '-A FORWARD -6 -m connlimit --connlimit-above 3 --connlimit-mask 128 --connlimit-saddr');
  const e = (r: string) => errorsOf(forward(r));
  assert.deepEqual(e('-m connlimit --connlimit-mask 24'), ['e.rules:5:15: connlimit match needs "--connlimit-upto" or "--connlimit-above"']);
  assert.deepEqual(e('-m connlimit --connlimit-above x'), ['e.rules:5:43: bad value for option "--connlimit-above", or out of range (0-4294967295)']);
  assert.deepEqual(e('-m connlimit --connlimit-above 1 --connlimit-mask 129'), [
    'e.rules:5:62: bad value for option "--connlimit-mask", or out of range (0-128)',
  ]);
});
