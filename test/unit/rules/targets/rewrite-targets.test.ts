/**
 * The targets that rewrite packet bytes (TTL, HL, DSCP, TCPMSS, CHECKSUM): options and save,
 * and each rewrite compared byte for byte with the same packet built from scratch (every
 * checksum computed in full), the verdict flags, and the truncated / partial-checksum cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf } from '../util';
import { formatRuleSet, loadRules } from '../../../../src/rules/index';
import { ipv4, ipv6, tcp, udp } from '../../../helpers/packets';
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from '../../../../src/packet/checksum';
import { NF_ACCEPT as A, NF_DROP as D, PKTF_CSUM_NOT_READY, PKTF_GSO, PKTF_TRUNCATED, VERDICT_SET_PAYLOAD } from '../../../../src/queue/layout';

function mangle(rule: string, family: 4 | 6 = 4): string {
  return ['*mangle', `-A FORWARD ${family === 6 ? '-6 ' : ''}${rule}`, 'COMMIT', ''].join('\n');
}

/** The packet after one FORWARD rule: [verdict, flags, bytes, logs]. */
function apply(rule: string, pkt: Uint8Array, pktFlags = 0): [number, number, Uint8Array, string[]] {
  const fam = pkt[0] >>> 4 === 6 ? 6 : 4;
  const { engine, logs } = engineFor(mangle(rule, fam));
  const buf = Uint8Array.from(pkt);
  const ctx = ctxFor(buf, { pktFlags });
  const verdict = engine.evalFilter(ctx, 0);
  return [verdict, ctx.verdictFlags, buf, logs.map((l) => l[0])];
}

/** The -A line iptables-save prints for one mangle FORWARD rule, after a parse → format → parse round trip. */
function saved(rule: string, family: 4 | 6 = 4): string {
  const first = loadRules(mangle(rule, family), 's.rules', { helperId: () => 0 });
  assert.deepEqual(first.errors, []);
  const text = formatRuleSet(first.set, { comments: false });
  const again = loadRules(text, 's2.rules', { helperId: () => 0 });
  assert.deepEqual(again.errors, []);
  assert.equal(formatRuleSet(again.set, { comments: false }), text);
  return text.split('\n').find((l) => l.startsWith('-A FORWARD'))!;
}

const src = '198.18.1.1';
const dst = '198.19.2.1';

test('TTL: set/inc/dec held to 0..255, IPv4 header checksum as a full computation gives', () => {
  const p = (ttl: number, tos = 0) => ipv4({ src, dst, ttl, tos }, udp({ sport: 1000, dport: 53, payload: 'abc' }));
  for (const [rule, from, to] of [
    ['-j TTL --ttl-set 200', 64, 200],
    ['-j TTL --ttl-set 0', 64, 0],
    ['-j TTL --ttl-inc 10', 250, 255],
    ['-j TTL --ttl-inc 1', 63, 64],
    ['-j TTL --ttl-dec 5', 3, 0],
    ['-j TTL --ttl-dec 1', 64, 63],
  ] as const) {
    const [v, flags, out] = apply(rule, p(from));
    assert.equal(v, A);
    assert.equal(flags, VERDICT_SET_PAYLOAD, rule);
    assert.deepEqual(out, p(to), `${rule} on ttl ${from}`);
  }
  for (let ttl = 0; ttl < 256; ttl += 7) {
    const [, , out] = apply('-j TTL --ttl-set 1', p(ttl, ttl ^ 0x5c));
    assert.deepEqual(out, p(1, ttl ^ 0x5c));
  }
  const [, flags] = apply('-j TTL --ttl-set 64', p(64));
  assert.equal(flags, 0, 'unchanged: the packet is not sent back');
});

test('HL: the IPv6 hop limit (no header checksum)', () => {
  const p = (hl: number) => ipv6({ src: '2001:2::1', dst: '2001:2:1::1', hopLimit: hl }, udp({ sport: 1, dport: 2 }));
  assert.deepEqual(apply('-j HL --hl-dec 2', p(64))[2], p(62));
  assert.deepEqual(apply('-j HL --hl-inc 200', p(64))[2], p(255));
  assert.deepEqual(apply('-j HL --hl-set 9', p(64))[2], p(9));
  assert.equal(apply('-j HL --hl-set 64', p(64))[1], 0);
});

test('DSCP: the six DSCP bits change, ECN stays, checksums valid (IPv4 and IPv6)', () => {
  const p4 = (tos: number, ttl = 64) => ipv4({ src, dst, tos, ttl }, tcp({ sport: 1000, dport: 80, payload: 'x' }));
  assert.deepEqual(apply('-j DSCP --set-dscp 0x2e', p4(0x01))[2], p4((0x2e << 2) | 1));
  assert.deepEqual(apply('-j DSCP --set-dscp-class af41', p4(0xff))[2], p4((0x22 << 2) | 3));
  assert.equal(apply('-j DSCP --set-dscp 0', p4(0x03))[1], 0, 'DSCP already 0');
  // every TOS x a spread of TTLs: ipv4_change_dsfield's arithmetic gives a header that checks
  for (let tos = 0; tos < 256; tos++) {
    const [, , out] = apply('-j DSCP --set-dscp 0x0a', p4(tos, (tos * 37) & 0xff));
    assert.ok(verifyIpv4HeaderChecksum(out, 0), `tos ${tos}`);
    assert.equal(out[1], (0x0a << 2) | (tos & 3));
  }
  const p6 = (tc: number) => ipv6({ src: '2001:2::1', dst: '2001:2:1::1', trafficClass: tc }, udp({ sport: 1, dport: 2 }));
  assert.deepEqual(apply('-j DSCP --set-dscp 5', p6(0x02))[2], p6((5 << 2) | 2));
});

test('TCPMSS --set-mss: lowers the MSS option, never raises it, TCP checksum as computed in full', () => {
  const syn = (mss: number, extra = {}) =>
    ipv4({ src, dst }, tcp({ sport: 40000, dport: 80, flags: 'S', options: { mss, wscale: 7, sackPerm: true, timestamp: [1, 0], ...extra } }));
  const [v, flags, out] = apply('-p tcp -j TCPMSS --set-mss 1400', syn(1460));
  assert.equal(v, A);
  assert.equal(flags, VERDICT_SET_PAYLOAD);
  assert.deepEqual(out, syn(1400));
  assert.equal(apply('-p tcp -j TCPMSS --set-mss 1400', syn(1300))[1], 0, 'never raised');
  assert.equal(apply('-p tcp -j TCPMSS --set-mss 1400', syn(1400))[1], 0);
  const syn6 = (mss: number) => ipv6({ src: '2001:2::1', dst: '2001:2:1::1' }, tcp({ sport: 1, dport: 2, flags: 'S', options: { mss } }));
  assert.deepEqual(apply('-p tcp -j TCPMSS --set-mss 1220', syn6(1440))[2], syn6(1220));
  for (let m = 0; m < 65536; m += 997) {
    const [, , o] = apply('-p tcp -j TCPMSS --set-mss 536', syn(m));
    assert.deepEqual(o, syn(Math.min(m, 536)));
  }
});

test('TCPMSS: no MSS option passes unchanged (logged when the kernel would have added one); a bad TCP header is dropped', () => {
  const bare = ipv4({ src, dst }, tcp({ sport: 40000, dport: 80, flags: 'S' }));
  const [v, flags, out, logs] = apply('-p tcp -j TCPMSS --set-mss 1400', bare);
  assert.equal(v, A);
  assert.equal(flags, 0);
  assert.deepEqual(out, bare);
  assert.equal(logs.length, 1);
  assert.match(logs[0], /without an MSS option passed unchanged/);
  const withData = ipv4({ src, dst }, tcp({ sport: 40000, dport: 80, flags: 'S', payload: 'hello' }));
  assert.deepEqual(apply('-p tcp -j TCPMSS --set-mss 1400', withData)[3], [], 'data after the header: the kernel leaves it too');
  const badDoff = ipv4({ src, dst }, tcp({ sport: 40000, dport: 80, flags: 'S', doff: 15 }));
  assert.equal(apply('-p tcp -j TCPMSS --set-mss 1400', badDoff)[0], D, 'doff beyond the packet');
});

test('CHECKSUM --checksum-fill: completes a partial checksum, leaves complete and GSO packets', () => {
  const full = ipv4({ src, dst }, udp({ sport: 67, dport: 68, payload: 'dhcp' }));
  const partial = Uint8Array.from(full);
  partial[26] = 0x12; // what a CHECKSUM_PARTIAL packet holds: not the checksum
  partial[27] = 0x34;
  const [v, flags, out] = apply('-p udp -j CHECKSUM --checksum-fill', partial, PKTF_CSUM_NOT_READY);
  assert.equal(v, A);
  assert.equal(flags, VERDICT_SET_PAYLOAD);
  assert.deepEqual(out, full);
  assert.equal(apply('-p udp -j CHECKSUM --checksum-fill', partial, PKTF_CSUM_NOT_READY | PKTF_GSO)[1], 0, 'GSO: skb_checksum_help is not called');
  assert.equal(apply('-p udp -j CHECKSUM --checksum-fill', full)[1], 0, 'complete already');
});

test('a rewrite of a partial-checksum packet completes its L4 checksum; a truncated packet is dropped instead', () => {
  const pkt = ipv4({ src, dst, ttl: 64 }, tcp({ sport: 40000, dport: 80, flags: 'A', payload: 'data' }));
  const partial = Uint8Array.from(pkt);
  partial[36] ^= 0xff;
  const [, flags, out] = apply('-j TTL --ttl-set 9', partial, PKTF_CSUM_NOT_READY);
  assert.equal(flags, VERDICT_SET_PAYLOAD);
  assert.deepEqual(out, ipv4({ src, dst, ttl: 9 }, tcp({ sport: 40000, dport: 80, flags: 'A', payload: 'data' })));
  const [v] = apply('-j TTL --ttl-set 9', pkt, PKTF_TRUNCATED);
  assert.equal(v, D);
  assert.equal(apply('-j TTL --ttl-set 64', pkt, PKTF_TRUNCATED)[0], A, 'nothing to change: not dropped');
});

test('rewrite targets: saved as iptables-save prints them', () => {
  assert.equal(saved('-j TTL --ttl-set 0x10'), '-A FORWARD -j TTL --ttl-set 16');
  assert.equal(saved('-j TTL --ttl-inc 1'), '-A FORWARD -j TTL --ttl-inc 1');
  assert.equal(saved('-j TTL --ttl-dec 1'), '-A FORWARD -j TTL --ttl-dec 1');
  assert.equal(saved('-j HL --hl-dec 2', 6), '-A FORWARD -6 -j HL --hl-dec 2');
  assert.equal(saved('-j DSCP --set-dscp 10'), '-A FORWARD -j DSCP --set-dscp 0x0a');
  assert.equal(saved('-j DSCP --set-dscp-class EF'), '-A FORWARD -j DSCP --set-dscp 0x2e');
  assert.equal(saved('-j DSCP --set-dscp-class cs0'), '-A FORWARD -j DSCP --set-dscp 0x00');
  assert.equal(saved('-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400'), '-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400');
  assert.equal(saved('-p udp -j CHECKSUM --checksum-fill'), '-A FORWARD -p udp -j CHECKSUM --checksum-fill');
});

test('rewrite targets: iptables refusals with LINE:COL', () => {
  const e = (rule: string, fam: 4 | 6 = 4) => errorsOf(mangle(rule, fam));
  assert.deepEqual(e('-j TTL --ttl-dec 0'), ['e.rules:2:29: TTL: bad value for option "--ttl-dec", or out of range (1-255)']);
  assert.deepEqual(e('-j TTL --ttl-set 256'), ['e.rules:2:29: TTL: bad value for option "--ttl-set", or out of range (0-255)']);
  assert.deepEqual(e('-j TTL --ttl-dec 1 --ttl-set 2'), ['e.rules:2:31: TTL: option "--ttl-set" cannot be used together with "--ttl-dec"']);
  assert.deepEqual(e('-j TTL'), ['e.rules:2:15: TTL: You must specify an action']);
  assert.deepEqual(e('-j TTL --ttl-set 3', 6), ['e.rules:2:18: target TTL with --ttl-set 3 is IPv4, but the rule is IPv6 (-6)']);
  assert.deepEqual(e('-j HL --hl-set 3 -4'), ['e.rules:2:15: target HL with --hl-set 3 is IPv6, but the rule is IPv4 (-4)']);
  assert.deepEqual(e('-j DSCP --set-dscp 64'), ['e.rules:2:31: DSCP: bad value for option "--set-dscp", or out of range (0-63)']);
  assert.deepEqual(e('-j DSCP --set-dscp-class BOGUS'), ["e.rules:2:37: Invalid DSCP value `BOGUS'"]);
  assert.deepEqual(e('-j DSCP --set-dscp 1 --set-dscp-class EF'), ['e.rules:2:33: DSCP: option "--set-dscp" cannot be used together with "--set-dscp-class"']);
  assert.deepEqual(e('-j DSCP'), ['e.rules:2:15: DSCP target: Parameter --set-dscp is required']);
  assert.deepEqual(e('-j TCPMSS --set-mss 1000'), ['e.rules:2:15: TCPMSS target needs "-p tcp" (the kernel registers it for TCP only)']);
  assert.deepEqual(e('! -p tcp -j TCPMSS --set-mss 1000'), ['e.rules:2:24: TCPMSS target needs "-p tcp" (the kernel registers it for TCP only)']);
  assert.deepEqual(e('-p tcp -j TCPMSS'), ['e.rules:2:22: TCPMSS target: At least one parameter is required']);
  assert.deepEqual(e('-4 -p tcp -j TCPMSS --set-mss 65515'), []);
  assert.deepEqual(e('-p tcp -j TCPMSS --set-mss 65496'), ['e.rules:2:22: TCPMSS: bad value for option "--set-mss", or out of range (0-65495) for IPv6']);
  assert.deepEqual(e('-p tcp -j TCPMSS --set-mss 65516'), ['e.rules:2:39: TCPMSS: bad value for option "--set-mss", or out of range (0-65515)']);
  assert.match(e('-p tcp -j TCPMSS --clamp-mss-to-pmtu')[0], /^e\.rules:2:29: TCPMSS --clamp-mss-to-pmtu is not supported: the kernel takes the path MTU/);
  assert.deepEqual(e('-p udp -j CHECKSUM'), ['e.rules:2:22: CHECKSUM: option "--checksum-fill" must be specified']);
  assert.deepEqual(e('-j CHECKSUM --checksum-fill'), [], 'the kernel only warns without -p udp');
});
