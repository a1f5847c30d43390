/** The NAT targets' options as iptables 1.8.9 reads and prints them (saved forms checked against iptables-save). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorsOf } from '../util';
import { formatRuleSet, loadRules } from '../../../../src/rules/index';

const HEAD = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];

function nat(lines: string[], user: string[] = []): string {
  return [...HEAD, ...user.map((u) => `:${u} - [0:0]`), ...lines, 'COMMIT', ''].join('\n');
}

function saved(text: string): string[] {
  const r = loadRules(text, 't.rules', { helperId: () => 0 });
  assert.deepEqual(r.errors, []);
  return formatRuleSet(r.set!, {})
    .split('\n')
    .filter((l) => l.startsWith('-A'));
}

test('saved forms equal iptables-save 1.8.9 (IPv4)', () => {
  // each pair: as written, as iptables-save printed it
  const cases: [string, string][] = [
    [
      '-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 198.18.1.2:8080',
      '-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.1.2:8080',
    ],
    [
      '-A PREROUTING -p tcp --dport 81 -j DNAT --to-destination 198.18.1.2-198.18.1.5:8080-8090 --random --persistent',
      '-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 198.18.1.2-198.18.1.5:8080-8090 --random --persistent',
    ],
    ['-A PREROUTING -p udp -j DNAT --to-destination :53', '-A PREROUTING -p udp -j DNAT --to-destination :53'],
    ['-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.1:80-80', '-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.1:80'],
    ['-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.1:0', '-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.1:0'],
    ['-A PREROUTING -p icmp -j DNAT --to-destination 198.18.0.1:80', '-A PREROUTING -p icmp -j DNAT --to-destination 198.18.0.1:80'],
    ['-A PREROUTING -p tcp --dport 82 -j REDIRECT --to-ports 3128', '-A PREROUTING -p tcp -m tcp --dport 82 -j REDIRECT --to-ports 3128'],
    ['-A PREROUTING -p tcp --dport 83 -j REDIRECT', '-A PREROUTING -p tcp -m tcp --dport 83 -j REDIRECT'],
    [
      '-A PREROUTING -p tcp --dport 84 -j REDIRECT --to-ports 1000-2000 --random',
      '-A PREROUTING -p tcp -m tcp --dport 84 -j REDIRECT --to-ports 1000-2000 --random',
    ],
    ['-A PREROUTING -d 198.18.5.0/24 -j NETMAP --to 198.18.6.0/24', '-A PREROUTING -d 198.18.5.0/24 -j NETMAP --to 198.18.6.0/24'],
    ['-A PREROUTING -j NETMAP --to 198.18.0.5/24', '-A PREROUTING -j NETMAP --to 198.18.0.0/24'],
    ['-A INPUT -j SNAT --to-source 198.18.0.9', '-A INPUT -j SNAT --to-source 198.18.0.9'],
    ['-A POSTROUTING -o eth0 -j MASQUERADE', '-A POSTROUTING -o eth0 -j MASQUERADE'],
    [
      '-A POSTROUTING -p tcp -o eth1 -j MASQUERADE --to-ports 1024-2000 --random-fully',
      '-A POSTROUTING -o eth1 -p tcp -j MASQUERADE --to-ports 1024-2000 --random-fully',
    ],
    [
      '-A POSTROUTING -p udp -o eth2 -j SNAT --to-source 198.18.0.1-198.18.0.4:1000-2000 --random --random-fully --persistent',
      '-A POSTROUTING -o eth2 -p udp -j SNAT --to-source 198.18.0.1-198.18.0.4:1000-2000 --random --random-fully --persistent',
    ],
  ];
  assert.deepEqual(
    saved(nat(cases.map((c) => c[0]))),
    cases.map((c) => c[1]),
  );
});

test('saved forms equal ip6tables-save 1.8.9 (IPv6)', () => {
  const cases: [string, string][] = [
    [
      '-A PREROUTING -6 -p tcp --dport 80 -j DNAT --to-destination [2001:2::1]:8080',
      '-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination [2001:2::1]:8080',
    ],
    ['-A PREROUTING -6 -p tcp -j DNAT --to-destination [2001:2::1]', '-A PREROUTING -p tcp -j DNAT --to-destination 2001:2::1'],
    ['-A PREROUTING -6 -j DNAT --to-destination 2001:2::1-2001:2::3', '-A PREROUTING -j DNAT --to-destination 2001:2::1-2001:2::3'],
    ['-A PREROUTING -6 -d 2001:2:0:1::/64 -j NETMAP --to 2001:2:0:2::/64', '-A PREROUTING -d 2001:2:0:1::/64 -j NETMAP --to 2001:2:0:2::/64'],
    ['-A POSTROUTING -6 -o eth0 -p tcp -j SNAT --to-source [2001:2::9]:1000-2000', '-A POSTROUTING -o eth0 -p tcp -j SNAT --to-source [2001:2::9]:1000-2000'],
  ];
  const out = saved(nat(cases.map((c) => c[0])));
  // nfqwall's file holds both families: its -6 is printed as such
  assert.deepEqual(
    out.map((l) => l.replace(' -6', '')),
    cases.map((c) => c[1]),
  );
});

test("iptables' refusals, at LINE:COL", () => {
  const one = (rule: string, user: string[] = []) => errorsOf(nat([rule], user));
  assert.match(one('-A PREROUTING -j DNAT --to-destination 198.18.0.1:80')[0], /e\.rules:6:\d+: .*Need TCP, UDP, SCTP or DCCP with port specification/);
  assert.match(one('-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.1:2000-1000')[0], /Port range `1000' funky/);
  assert.match(one('-A PREROUTING -p tcp -j DNAT')[0], /DNAT: option "--to-destination" must be specified/);
  assert.match(one('-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.1 --to-destination 198.18.0.2')[0], /can only be used once/);
  assert.match(one('-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.1:80 --random-fully')[0], /random-fully/);
  assert.match(one('-A PREROUTING -p tcp -j REDIRECT --to-ports 80:90')[0], /Invalid port:port syntax - use dash/);
  assert.match(one('-A PREROUTING -j REDIRECT --to-ports 80')[0], /Need TCP/);
  assert.match(one('-A PREROUTING -6 -p tcp -j DNAT --to-destination [2001:2::1]-[2001:2::5]:8080-8090')[0], /Invalid port:port syntax/);
  assert.match(one('-A PREROUTING -p tcp -j DNAT --to-destination 198.18.0.300')[0], /Bad IP address "198\.18\.0\.300"/);
  assert.match(
    one('-A POSTROUTING -j DNAT --to-destination 198.18.0.1')[0],
    /e\.rules:6:\d+: target DNAT is only valid in the nat table's PREROUTING and OUTPUT chains/,
  );
  assert.match(one('-A PREROUTING -j MASQUERADE')[0], /MASQUERADE is only valid in the nat table's POSTROUTING chains/);
  assert.match(one('-A PREROUTING -j NETMAP')[0], /NETMAP: option "--to" must be specified/);
  // through a user chain: refused where a wrong built-in chain reaches it
  const viaUser = errorsOf(nat(['-A PREROUTING -j U', '-A U -j SNAT --to-source 198.18.0.1'], ['U']));
  assert.match(viaUser[0], /e\.rules:8:\d+: target SNAT is only valid .* \(chain U is reached from PREROUTING\)/);
  assert.deepEqual(errorsOf(nat(['-A POSTROUTING -j U', '-A U -j SNAT --to-source 198.18.0.1', '-A U -j RETURN'], ['U'])), []);
  assert.match(
    errorsOf(
      ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', '-A INPUT -j SNAT --to-source 198.18.0.1', 'COMMIT', ''].join('\n'),
    )[0],
    /not allowed in table filter/,
  );
});

test('with a *nat table, rules that test or set the crossing mark bits 0x30000000 are refused at LINE:COL', () => {
  const filter = (rule: string) => ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', rule, 'COMMIT', ''].join('\n');
  const withNat = (rule: string) => nat(['-A POSTROUTING -o eth0 -j MASQUERADE']) + filter(rule);
  assert.match(
    errorsOf(withNat('-A FORWARD -m mark --mark 0x10000000/0x10000000 -j ACCEPT'))[0],
    /e\.rules:12:\d+: -m mark tests for the packet-mark bits 0x30000000/,
  );
  assert.match(errorsOf(withNat('-A FORWARD -j MARK --set-mark 0x20000001'))[0], /e\.rules:12:\d+: -j MARK sets the packet-mark bits 0x30000000/);
  assert.deepEqual(errorsOf(withNat('-A FORWARD -m mark --mark 0x1/0xff -j MARK --set-mark 0x2')), []);
  // a full mask tests the bits for 0, which the rules always see: the common `--mark 0x7` loads
  assert.deepEqual(errorsOf(withNat('-A FORWARD -m mark --mark 0x7 -j ACCEPT')), []);
  assert.deepEqual(errorsOf(withNat('-A FORWARD -m mark ! --mark 0x0 -j ACCEPT')), []);
  assert.deepEqual(errorsOf(filter('-A FORWARD -m mark --mark 0x10000000 -j ACCEPT')), [], "without a nat table the bits are the rules' own");
});
