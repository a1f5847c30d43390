import assert from 'node:assert/strict';
import { test } from 'node:test';
import { internetChecksum, ipv4HeaderChecksum, l4Checksum, verifyIpv4HeaderChecksum, verifyL4Checksum } from '../../../src/packet/checksum';
import { parsePacket } from '../../../src/packet/parse';
import { PacketView } from '../../../src/packet/view';
import { icmp, icmpError, icmpv6, ipv4, ipv6, tcp, udp, udplite } from '../../helpers/packets';
import { parse } from './util';

// Packets produced by scapy (independent checksum implementation).
const SCAPY: Record<string, string> = {
  tcp4: '45000031000100004006ee9ec6120001c612000204d20050000000050000000060022000a3000000020405b468656c6c6f',
  udp4: '4500001f000200004011eea4c6120001c6120002003514e9000b9a2f616263',
  icmp4: '4500001f000300004001eeb3c6120001c61200020800057e0007000178797a',
  tcp6: '6000000000150640200100020000000000000000000000012001000200000000000000000000000200010002000000000000000050102000dec7000071',
  udp6dst: '6000000000133c402001000200000000000000000000000120010002000000000000000000000002110001040000000000030004000bec636f6464',
  icmp6: '60000000000c3a402001000200000000000000000000000120010002000000000000000000000002800060d40009000270696e67',
  icmperr4: '45000038000400004001ee99c6120001c61200020303893e000000004500001c000100004011eea8c6120002c6120001003503e800086f99',
};
const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

test('scapy packets verify; every single-bit flip in the L4 part or addresses is detected', () => {
  const v = new PacketView();
  let checked = 0;
  for (const [name, h] of Object.entries(SCAPY)) {
    const p = hex(h);
    assert.equal(parsePacket(p, 0, p.length, v), true, name);
    assert.equal(verifyL4Checksum(v), true, name);
    if (v.ipVersion === 4) assert.equal(verifyIpv4HeaderChecksum(p, 0), true, name);
    const addrStart = v.ipVersion === 4 ? 12 : 8;
    const addrEnd = v.ipVersion === 4 ? 20 : 40;
    const usesPseudo = v.proto !== 1;
    for (let i = addrStart; i < p.length; i++) {
      if (i >= addrEnd && i < v.l4off) continue;
      if (i < addrEnd && !usesPseudo) continue;
      for (let bit = 0; bit < 8; bit++) {
        const q = Uint8Array.from(p);
        q[i] ^= 1 << bit;
        const w = new PacketView();
        if (!parsePacket(q, 0, q.length, w)) continue; // e.g. a flipped length: malformed, not a checksum case
        if (w.proto === 17 && q[w.l4off + 6] === 0 && q[w.l4off + 7] === 0) continue; // became "no checksum"
        assert.equal(verifyL4Checksum(w), false, `${name} byte ${i} bit ${bit}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 1500, `only ${checked} flips checked`);
});

test('ICMPv4 has no pseudo-header: changing the addresses keeps it valid', () => {
  const p = hex(SCAPY.icmp4);
  p[15] ^= 1;
  p[10] = 0;
  p[11] = 0;
  const c = ipv4HeaderChecksum(p, 0);
  p[10] = c >>> 8;
  p[11] = c & 0xff;
  const v = parse(p);
  assert.equal(verifyL4Checksum(v), true);
  assert.equal(verifyIpv4HeaderChecksum(p, 0), true);
});

test('the builder reproduces scapy bytes (checksums included)', () => {
  const t = ipv4({ id: 1 }, tcp({ sport: 1234, dport: 80, seq: 5, flags: 'S', window: 8192, options: { mss: 1460 }, payload: 'hello' }));
  assert.equal(Buffer.from(t).toString('hex'), SCAPY.tcp4);
  const u = ipv4({ id: 2 }, udp({ sport: 53, dport: 5353, payload: 'abc' }));
  assert.equal(Buffer.from(u).toString('hex'), SCAPY.udp4);
  const i = ipv4({ id: 3 }, icmp({ type: 8, id: 7, seq: 1, payload: 'xyz' }));
  assert.equal(Buffer.from(i).toString('hex'), SCAPY.icmp4);
  const t6 = ipv6({}, tcp({ sport: 1, dport: 2, seq: 0, flags: 'A', window: 8192, payload: 'q' }));
  assert.equal(Buffer.from(t6).toString('hex'), SCAPY.tcp6);
  const u6 = ipv6({ extHeaders: [{ type: 60 }] }, udp({ sport: 3, dport: 4, payload: 'odd' }));
  // scapy's empty destination-options header carries a PadN option; ours carries Pad1s
  const ours = Buffer.from(u6).toString('hex');
  assert.equal(ours.slice(0, 80), SCAPY.udp6dst.slice(0, 80)); // the 40-byte IPv6 header
  assert.equal(verifyL4Checksum(parse(u6)), true);
  const e6 = ipv6({}, icmpv6({ type: 128, id: 9, seq: 2, payload: 'ping' }));
  assert.equal(Buffer.from(e6).toString('hex'), SCAPY.icmp6);
  const err = ipv4({ id: 4 }, icmpError(3, 3, ipv4({ id: 1, src: '198.18.0.2', dst: '198.18.0.1' }, udp({ sport: 53, dport: 1000 }))));
  assert.equal(Buffer.from(err).toString('hex'), SCAPY.icmperr4);
});

test('UDP checksum 0 means none on IPv4 and IPv6 (as udp_error); UDP-Lite requires one', () => {
  assert.equal(verifyL4Checksum(parse(ipv4({}, udp({ checksum: 0, payload: 'x' })))), true);
  assert.equal(verifyL4Checksum(parse(ipv6({}, udp({ checksum: 0, payload: 'x' })))), true);
  assert.equal(verifyL4Checksum(parse(ipv4({}, udp({ checksum: 1, payload: 'x' })))), false);
  assert.equal(verifyL4Checksum(parse(ipv6({}, udp({ checksum: 0x1234, payload: 'x' })))), false);
  assert.equal(verifyL4Checksum(parse(ipv4({}, udplite({ payload: 'abc' })))), true);
  assert.equal(verifyL4Checksum(parse(ipv6({}, udplite({ payload: 'abc' })))), true);
  assert.equal(verifyL4Checksum(parse(ipv4({}, udplite({ payload: 'abc', checksum: 0 })))), false);
  // partial coverage: bytes after the coverage are not summed
  const p = ipv4({}, udplite({ coverage: 8, payload: 'abcdef' }));
  assert.equal(verifyL4Checksum(parse(p)), true);
  p[p.length - 1] ^= 0xff;
  assert.equal(verifyL4Checksum(parse(p)), true);
  p[20 + 7] ^= 1;
  assert.equal(verifyL4Checksum(parse(p)), false);
});

test('checksum over an odd length, over padding-clipped packets, and at an offset', () => {
  const p = ipv4({}, tcp({ payload: 'odd' }));
  const big = new Uint8Array(p.length + 20).fill(0x77);
  big.set(p, 7);
  const v = new PacketView();
  assert.equal(parsePacket(big, 7, big.length - 7, v), true);
  assert.equal(verifyL4Checksum(v), true);
  big[7 + p.length - 1] ^= 0x10;
  assert.equal(parsePacket(big, 7, big.length - 7, v), true);
  assert.equal(verifyL4Checksum(v), false);
});

test('malformed packets fail verification; fragments and generic protocols have nothing to verify', () => {
  assert.equal(verifyL4Checksum(parse(ipv4({}, tcp({ doff: 3 })))), false);
  const first = ipv4({ mf: true }, tcp());
  first[first.length - 1] ^= 1;
  assert.equal(verifyL4Checksum(parse(first)), true);
  assert.equal(verifyL4Checksum(parse(ipv4({ proto: 6, fragOffset: 8 }, new Uint8Array(20)))), true);
  assert.equal(verifyL4Checksum(parse(ipv4({ proto: 47 }, new Uint8Array(20).fill(3)))), true);
});

test('compute helpers', () => {
  // RFC 1071 example bytes: 00 01 f2 03 f4 f5 f6 f7 → sum ddf2, checksum 220d
  assert.equal(internetChecksum(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0, 8), 0x220d);
  const p = hex(SCAPY.tcp4);
  assert.equal(ipv4HeaderChecksum(p, 0), (p[10] << 8) | p[11]);
  const stored = (p[36] << 8) | p[37];
  p[36] = 0;
  p[37] = 0;
  assert.equal(l4Checksum(4, [0xc6120001], [0xc6120002], 6, p, 20, p.length - 20), stored);
  assert.equal(l4Checksum(2, [0xc6120001], [0xc6120002], 6, p, 20, p.length - 20), stored);
  const q = hex(SCAPY.icmp6);
  const s6 = (q[42] << 8) | q[43];
  q[42] = 0;
  q[43] = 0;
  assert.equal(l4Checksum(6, [0x20010002, 0, 0, 1], [0x20010002, 0, 0, 2], 58, q, 40, q.length - 40), s6);
  assert.equal(l4Checksum(10, new Uint32Array([0x20010002, 0, 0, 1]), new Uint32Array([0x20010002, 0, 0, 2]), 58, q, 40, q.length - 40), s6);
});
