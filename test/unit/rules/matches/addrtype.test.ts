import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, ipv6, udp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';
import { parseIpRoutes, useFixedLocalRoutes } from '../../../../src/rules/local-routes';

// the local table of a gateway with 198.18.1.254/24 on g0 (ifindex 2) and 2001:2:0:1::fe/64 on g0, as `ip -j` prints it
const IFX: Record<string, number> = { lo: 1, g0: 2, g1: 3 };
const V4 = `[{"type":"local","dst":"127.0.0.0/8","dev":"lo"},{"type":"local","dst":"127.0.0.1","dev":"lo"},{"type":"broadcast","dst":"127.255.255.255","dev":"lo"},
{"type":"local","dst":"198.18.1.254","dev":"g0"},{"type":"broadcast","dst":"198.18.1.255","dev":"g0"}]`;
const V6 = `[{"type":"local","dst":"::1","dev":"lo"},{"type":"anycast","dst":"2001:2:0:1::","dev":"g0"},{"type":"local","dst":"2001:2:0:1::fe","dev":"g0"},
{"type":"multicast","dst":"ff00::/8","dev":"g0"}]`;
const table = useFixedLocalRoutes([...parseIpRoutes(V4, 4, (n) => IFX[n]), ...parseIpRoutes(V6, 6, (n) => IFX[n])]);

const p4 = (src: string, dst: string) => ipv4({ src, dst }, udp({ dport: 53 }));
const p6 = (src: string, dst: string) => ipv6({ src, dst }, udp({ dport: 53 }));
const v = (rule: string, pkt: Uint8Array, indev = 2) => engineFor(forward(`${rule} -j ACCEPT`)).engine.evalFilter(ctxFor(pkt, { indev }), 0);

test('-m addrtype IPv4: LOCAL, BROADCAST (routes and 0/8, 255.255.255.255), MULTICAST, UNICAST, lists, negation', () => {
  assert.equal(v('-m addrtype --dst-type LOCAL', p4('198.18.1.1', '198.18.1.254')), A);
  assert.equal(v('-m addrtype --dst-type LOCAL', p4('198.18.1.1', '127.3.4.5')), A, 'the whole 127.0.0.0/8 route');
  assert.equal(v('-m addrtype --dst-type LOCAL', p4('198.18.1.1', '198.18.1.253')), D);
  assert.equal(v('-m addrtype --dst-type BROADCAST', p4('198.18.1.1', '198.18.1.255')), A);
  assert.equal(v('-m addrtype --dst-type BROADCAST', p4('198.18.1.1', '255.255.255.255')), A);
  assert.equal(v('-m addrtype --src-type BROADCAST', p4('0.0.0.0', '255.255.255.255')), A);
  assert.equal(v('-m addrtype --dst-type MULTICAST', p4('198.18.1.1', '224.0.0.251')), A);
  assert.equal(v('-m addrtype --dst-type UNICAST', p4('198.18.1.1', '198.19.2.1')), A);
  assert.equal(v('-m addrtype --dst-type UNICAST', p4('198.18.1.1', '198.18.1.254')), D);
  assert.equal(v('-m addrtype --dst-type BROADCAST,MULTICAST', p4('198.18.1.1', '198.18.1.255')), A);
  assert.equal(v('-m addrtype ! --dst-type LOCAL', p4('198.18.1.1', '198.19.2.1')), A);
  assert.equal(v('-m addrtype --src-type LOCAL --dst-type LOCAL', p4('127.0.0.1', '127.0.0.1')), A);
  // --limit-iface-in: the route must be on the input device, else UNICAST
  assert.equal(v('-m addrtype --dst-type LOCAL --limit-iface-in', p4('198.18.1.1', '198.18.1.254'), 2), A);
  assert.equal(v('-m addrtype --dst-type LOCAL --limit-iface-in', p4('198.18.1.1', '198.18.1.254'), 3), D);
  assert.equal(v('-m addrtype --dst-type UNICAST --limit-iface-in', p4('198.18.1.1', '198.18.1.254'), 3), A);
});

test('-m addrtype IPv6: LOCAL from the local routes (not anycast), MULTICAST/UNICAST/UNSPEC classes, all of them required', () => {
  assert.equal(v('-m addrtype --dst-type LOCAL', p6('2001:2:0:1::1', '2001:2:0:1::fe')), A);
  assert.equal(v('-m addrtype --dst-type LOCAL', p6('2001:2:0:1::1', '2001:2:0:1::')), D, 'the subnet-router anycast address');
  assert.equal(v('-m addrtype --dst-type LOCAL', p6('2001:2:0:1::1', '2001:2:0:2::1')), D);
  assert.equal(v('-m addrtype --dst-type LOCAL --limit-iface-in', p6('2001:2:0:1::1', '2001:2:0:1::fe'), 3), D);
  assert.equal(v('-m addrtype --dst-type MULTICAST', p6('2001:2:0:1::1', 'ff02::1')), A);
  assert.equal(v('-m addrtype --dst-type UNICAST', p6('2001:2:0:1::1', 'fe80::1')), A);
  assert.equal(v('-m addrtype --src-type UNSPEC', p6('::', 'ff02::1')), A);
  assert.equal(v('-m addrtype --dst-type UNICAST,MULTICAST', p6('2001:2:0:1::1', 'ff02::1')), D, 'match_type6 requires each class named');
  assert.equal(v('-m addrtype --dst-type UNICAST,LOCAL', p6('2001:2:0:1::1', '2001:2:0:1::fe')), A);
  assert.equal(v('-m addrtype --dst-type BROADCAST', p6('2001:2:0:1::1', 'ff02::1')), D, 'a BROADCAST rule is IPv4 only');
});

test('-m addrtype: a changed table takes effect at the next packet', () => {
  const { engine } = engineFor(forward('-m addrtype --dst-type LOCAL -j ACCEPT'));
  const pkt = p4('198.18.1.1', '198.18.1.253');
  assert.equal(engine.evalFilter(ctxFor(pkt), 0), D);
  table.set([...parseIpRoutes(V4.replace('198.18.1.254', '198.18.1.253'), 4, (n) => IFX[n])]);
  assert.equal(engine.evalFilter(ctxFor(pkt), 0), A);
});

test('-m addrtype: iptables-save spelling and errors', () => {
  assert.equal(savedRule('-m addrtype --dst-type local'), '-A FORWARD -m addrtype --dst-type LOCAL');
  assert.equal(
    savedRule('-m addrtype ! --src-type MULTICAST,LOCAL,BROADCAST --limit-iface-in'),
    '-A FORWARD -m addrtype ! --src-type LOCAL,BROADCAST,MULTICAST --limit-iface-in',
  );
  const e = (r: string) => errorsOf(forward(r));
  assert.deepEqual(e('-m addrtype --dst-type BLACKHOLE'), [
    'e.rules:5:35: addrtype: type BLACKHOLE is not supported: the kernel answers it from its full route lookup, which nfqwall does not mirror',
  ]);
  assert.deepEqual(e('-m addrtype --dst-type LOCAL,FOO'), [
    'e.rules:5:35: addrtype: bad type "FOO" (one of UNSPEC, UNICAST, LOCAL, BROADCAST, ANYCAST, MULTICAST, BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT, XRESOLVE)',
  ]);
  assert.deepEqual(e('-m addrtype --limit-iface-in'), ['e.rules:5:15: addrtype match needs --src-type or --dst-type']);
  assert.deepEqual(e('-m addrtype --dst-type LOCAL --limit-iface-in --limit-iface-out'), [
    'e.rules:5:58: addrtype: you can\'t specify both "--limit-iface-in" and "--limit-iface-out"',
  ]);
  assert.deepEqual(e('-6 -m addrtype --dst-type BROADCAST'), ['e.rules:5:18: addrtype: ipv6 does not support BROADCAST matching']);
  assert.deepEqual(e('-4 -m addrtype --src-type UNSPEC'), [
    'e.rules:5:18: addrtype: type UNSPEC is not supported for IPv4: the kernel answers it from its full route lookup, which nfqwall does not mirror',
  ]);
});
