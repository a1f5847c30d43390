import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor } from './util';
import { icmp, icmpError, icmpv6, ipv4, ipv6, tcp, udp } from '../../helpers/packets';
import { PacketView } from '../../../src/packet/view';
import { parsePacket } from '../../../src/packet/parse';
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from '../../../src/packet/checksum';
import { NF_INET_FORWARD, NF_INET_LOCAL_IN, PKTF_CSUM_NOT_READY, PKTF_CSUM_VERIFIED } from '../../../src/queue/layout';
import {
  buildReject,
  RJ_ICMP6_ADM_PROHIBITED,
  RJ_ICMP6_PORT_UNREACH,
  RJ_ICMP_HOST_PROHIBITED,
  RJ_ICMP_PORT_UNREACHABLE,
  RJ_TCP_RESET,
} from '../../../src/rules/targets/REJECT';
import { formatLogLine, XT_LOG_IPOPT, XT_LOG_TCPOPT, XT_LOG_TCPSEQ } from '../../../src/rules/targets/LOG';

function parsed(pkt: Uint8Array): PacketView {
  const v = new PacketView();
  assert.equal(parsePacket(pkt, 0, pkt.length, v), true, 'reply parses');
  assert.equal(verifyL4Checksum(v), true, 'L4 checksum correct');
  if (v.ipVersion === 4) assert.equal(verifyIpv4HeaderChecksum(pkt, 0), true, 'IP header checksum correct');
  return v;
}

const names: Record<number, string> = { 2: 'g0', 3: 'g1' };
const ifname = (i: number) => names[i];

test('REJECT tcp-reset (IPv4): SYN gets RST+ACK with ack = seq + 1, ACK segment gets RST with seq = its ack', () => {
  const syn = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 23, seq: 1000, flags: 'S' }));
  const rst = buildReject(RJ_TCP_RESET, ctxFor(syn))!;
  const v = parsed(rst);
  assert.equal(rst.length, 40);
  assert.equal(v.proto, 6);
  assert.deepEqual([v.src[0], v.dst[0]], [0xc6130201, 0xc6120101], 'addresses swapped');
  assert.deepEqual([v.sport, v.dport], [23, 40000]);
  assert.equal(v.tcpFlags, 0x14, 'RST|ACK');
  assert.equal(v.seq, 0);
  assert.equal(v.ack, 1001);
  assert.equal(v.window, 0);
  assert.equal(v.ttl, 64);
  assert.equal(v.dontFragment, 1);
  // with payload and FIN: ack = seq + payload + FIN
  const data = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 23, seq: 0xfffffff0, flags: 'F', payload: 'hello world!!!!!!!!!' }));
  assert.equal(parsed(buildReject(RJ_TCP_RESET, ctxFor(data))!).ack, (0xfffffff0 + 20 + 1) >>> 0);
  const ack = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 23, seq: 5, ack: 777777, flags: 'PA', payload: 'x' }));
  const r2 = parsed(buildReject(RJ_TCP_RESET, ctxFor(ack))!);
  assert.equal(r2.tcpFlags, 0x04, 'RST only');
  assert.equal(r2.seq, 777777);
  assert.equal(r2.ack, 0);
});

test('REJECT: never answers a RST, a bad checksum, an ICMP error, a non-first fragment, broadcast or multicast', () => {
  const rstIn = ipv4({}, tcp({ flags: 'R' }));
  assert.equal(buildReject(RJ_TCP_RESET, ctxFor(rstIn)), null);
  const bad = ipv4({}, tcp({ flags: 'S', checksum: 0x1234 }));
  assert.equal(buildReject(RJ_TCP_RESET, ctxFor(bad)), null);
  assert.notEqual(buildReject(RJ_TCP_RESET, ctxFor(bad, { pktFlags: PKTF_CSUM_NOT_READY })), null, 'checksum not computed yet: not verified');
  assert.notEqual(buildReject(RJ_TCP_RESET, ctxFor(bad, { pktFlags: PKTF_CSUM_VERIFIED })), null, 'verified by the kernel or the NIC: not verified again');
  const err = ipv4({}, icmpError(3, 3, ipv4({}, udp())));
  assert.equal(buildReject(RJ_ICMP_PORT_UNREACHABLE, ctxFor(err)), null);
  assert.notEqual(buildReject(RJ_ICMP_PORT_UNREACHABLE, ctxFor(ipv4({}, icmp({ type: 8 })))), null, 'an echo request is answered');
  const frag = ipv4({ proto: 17, fragOffset: 64 }, new Uint8Array(16));
  assert.equal(buildReject(RJ_ICMP_PORT_UNREACHABLE, ctxFor(frag)), null);
  assert.equal(buildReject(RJ_ICMP_PORT_UNREACHABLE, ctxFor(ipv4({ dst: '255.255.255.255' }, udp()))), null);
  assert.equal(buildReject(RJ_ICMP_PORT_UNREACHABLE, ctxFor(ipv4({ dst: '224.0.0.251' }, udp()))), null);
  assert.equal(buildReject(RJ_TCP_RESET, ctxFor(ipv4({ dst: '239.1.1.1' }, tcp()))), null);
  assert.equal(buildReject(RJ_TCP_RESET, ctxFor(ipv4({}, udp()))), null, 'tcp-reset for a non-TCP packet');
  const e6 = ipv6({}, icmpError(1, 4, ipv6({}, udp())));
  assert.equal(buildReject(RJ_ICMP6_PORT_UNREACH, ctxFor(e6)), null);
  assert.equal(buildReject(RJ_ICMP6_PORT_UNREACH, ctxFor(ipv6({ dst: 'ff02::1' }, udp()))), null);
  assert.equal(buildReject(RJ_ICMP6_PORT_UNREACH, ctxFor(ipv6({ extHeaders: [{ type: 44, fragOffset: 8, next: 17 }] }, new Uint8Array(16)))), null);
  assert.equal(buildReject(RJ_TCP_RESET, ctxFor(ipv6({}, tcp({ flags: 'RA' })))), null);
});

test('REJECT icmp-*: the ICMP error quotes the original IP header and payload (at most 576 bytes in all)', () => {
  const orig = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', tos: 0x10 }, udp({ sport: 5000, dport: 53, payload: 'q' }));
  const fwd = buildReject(RJ_ICMP_HOST_PROHIBITED, ctxFor(orig))!;
  const v = parsed(fwd);
  assert.equal(v.proto, 1);
  assert.deepEqual([v.icmpType, v.icmpCode], [3, 10]);
  assert.equal(v.src[0], 0, 'forwarded: the kernel picks the source address');
  assert.equal(v.dst[0], 0xc6120101);
  assert.equal(fwd[1], 0xd0, 'TOS: RT_TOS(original) | PREC_INTERNETCONTROL');
  assert.equal(v.dontFragment, 0);
  assert.deepEqual(Array.from(fwd.subarray(28)), Array.from(orig), 'whole original quoted');
  assert.equal(v.hasInner, 1);
  assert.deepEqual([v.innerSport, v.innerDport], [5000, 53]);
  const local = parsed(buildReject(RJ_ICMP_PORT_UNREACHABLE, ctxFor(orig, { hook: NF_INET_LOCAL_IN }))!);
  assert.equal(local.src[0], 0xc6130201, 'INPUT: from the address the packet was sent to');
  assert.equal(local.icmpCode, 3);
  const big = ipv4({}, udp({ payload: new Uint8Array(1400) }));
  const r = buildReject(RJ_ICMP_PORT_UNREACHABLE, ctxFor(big))!;
  assert.equal(r.length, 576);
  assert.deepEqual(Array.from(r.subarray(28)), Array.from(big.subarray(0, 548)));
});

test('REJECT IPv6: tcp-reset and icmp6 errors (quote up to 1280 bytes in all)', () => {
  const syn = ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, tcp({ sport: 40000, dport: 23, seq: 41, flags: 'S' }));
  const r = parsed(buildReject(RJ_TCP_RESET, ctxFor(syn))!);
  assert.equal(r.ipVersion, 6);
  assert.deepEqual(Array.from(r.src), [0x20010002, 2, 0, 1]);
  assert.deepEqual(Array.from(r.dst), [0x20010002, 1, 0, 1]);
  assert.deepEqual([r.sport, r.dport, r.tcpFlags, r.seq, r.ack, r.ttl], [23, 40000, 0x14, 0, 42, 64]);
  const orig = ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, udp({ payload: new Uint8Array(2000) }));
  const e = buildReject(RJ_ICMP6_ADM_PROHIBITED, ctxFor(orig, { hook: NF_INET_LOCAL_IN }))!;
  const ev = parsed(e);
  assert.equal(e.length, 1280);
  assert.deepEqual([ev.proto, ev.icmpType, ev.icmpCode], [58, 1, 1]);
  assert.deepEqual(Array.from(ev.src), [0x20010002, 2, 0, 1]);
  assert.deepEqual(Array.from(e.subarray(48)), Array.from(orig.subarray(0, 1232)));
  const echo = ipv6({}, icmpv6({ type: 128 }));
  assert.notEqual(buildReject(RJ_ICMP6_PORT_UNREACH, ctxFor(echo, { hook: NF_INET_FORWARD })), null);
});

test('LOG line: the kernel nf_log format for TCP, UDP, ICMP (with the quoted packet), IPv6, flags and mark', () => {
  const syn = ipv4(
    { src: '198.18.1.1', dst: '198.19.2.1', id: 54321, ttl: 63, df: true },
    tcp({ sport: 40000, dport: 80, seq: 7, ack: 0, flags: 'S', window: 64240, options: { mss: 1460 } }),
  );
  assert.equal(
    formatLogLine(ctxFor(syn), 'fw: ', 0, ifname),
    `fw: IN=g0 OUT=g1 SRC=198.18.1.1 DST=198.19.2.1 LEN=${syn.length} TOS=0x00 PREC=0x00 TTL=63 ID=54321 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 `,
  );
  assert.equal(
    formatLogLine(ctxFor(syn, { indev: 0, mark: 0x2a }), '', XT_LOG_TCPSEQ | XT_LOG_TCPOPT, ifname),
    `IN= OUT=g1 SRC=198.18.1.1 DST=198.19.2.1 LEN=${syn.length} TOS=0x00 PREC=0x00 TTL=63 ID=54321 DF PROTO=TCP SPT=40000 DPT=80 SEQ=7 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B4) MARK=0x2a `,
  );
  const u = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', id: 1, tos: 0xb8, options: [0x94, 0x04, 0, 0] }, udp({ sport: 53, dport: 5353, payload: 'abcd' }));
  assert.equal(
    formatLogLine(ctxFor(u), '', XT_LOG_IPOPT, ifname),
    'IN=g0 OUT=g1 SRC=198.18.1.1 DST=198.19.2.1 LEN=36 TOS=0x18 PREC=0xA0 TTL=64 ID=1 OPT (94040000) PROTO=UDP SPT=53 DPT=5353 LEN=12 ',
  );
  const ping = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', id: 2 }, icmp({ type: 8, id: 99, seq: 3 }));
  assert.equal(
    formatLogLine(ctxFor(ping), '', 0, ifname),
    'IN=g0 OUT=g1 SRC=198.18.1.1 DST=198.19.2.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=2 PROTO=ICMP TYPE=8 CODE=0 ID=99 SEQ=3 ',
  );
  const inner = ipv4({ src: '198.19.2.1', dst: '198.18.1.1', id: 3 }, udp({ sport: 5353, dport: 53 }));
  const err = ipv4({ src: '198.18.1.254', dst: '198.19.2.1', id: 4 }, icmpError(3, 3, inner));
  assert.equal(
    formatLogLine(ctxFor(err), '', 0, ifname),
    'IN=g0 OUT=g1 SRC=198.18.1.254 DST=198.19.2.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=4 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.19.2.1 DST=198.18.1.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=3 PROTO=UDP SPT=5353 DPT=53 LEN=8 ] ',
  );
  const frag = ipv4({ src: '198.18.1.1', dst: '198.19.2.1', id: 5, proto: 6, fragOffset: 16, mf: true }, new Uint8Array(8));
  assert.equal(
    formatLogLine(ctxFor(frag), '', 0, ifname),
    'IN=g0 OUT=g1 SRC=198.18.1.1 DST=198.19.2.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=5 MF FRAG:2 PROTO=TCP ',
  );
  const six = ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1', trafficClass: 0x20, flowLabel: 0x12345, hopLimit: 63 }, icmpv6({ type: 128, id: 7, seq: 8 }));
  assert.equal(
    formatLogLine(ctxFor(six), 'v6 ', 0, ifname),
    'v6 IN=g0 OUT=g1 SRC=2001:0002:0000:0001:0000:0000:0000:0001 DST=2001:0002:0000:0002:0000:0000:0000:0001 LEN=48 TC=32 HOPLIMIT=63 FLOWLBL=74565 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=8 ',
  );
  const f6 = ipv6(
    { src: '2001:2::1', dst: '2001:2::2', extHeaders: [{ type: 44, fragOffset: 0, more: true, id: 0xabc }] },
    tcp({ sport: 1, dport: 2, flags: 'A', window: 5 }),
  );
  assert.equal(
    formatLogLine(ctxFor(f6), '', 0, ifname),
    'IN=g0 OUT=g1 SRC=2001:0002:0000:0000:0000:0000:0000:0001 DST=2001:0002:0000:0000:0000:0000:0000:0002 LEN=68 TC=0 HOPLIMIT=64 FLOWLBL=0 FRAG:0 INCOMPLETE ID:00000abc PROTO=TCP SPT=1 DPT=2 WINDOW=5 RES=0x00 ACK URGP=0 ',
  );
});
