import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, sctpChecksum, sctpChunkLength, sctpNextChunk, verifySctpChecksum } from '../../../src/packet/sctp';
import { parsePacket } from '../../../src/packet/parse';
import { verifyL4Checksum } from '../../../src/packet/checksum';
import { Malformed, PacketView } from '../../../src/packet/view';
import { ipv4, ipv6, sctp, sctpInitValue } from '../../helpers/packets';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

test('CRC32c: the check value and the RFC 3720 B.4 vectors', () => {
  assert.equal(crc32c(Uint8Array.from(Buffer.from('123456789')), 0, 9), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32), 0, 32), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff), 0, 32), 0x62a8ab43);
  assert.equal(
    crc32c(
      Uint8Array.from({ length: 32 }, (_, i) => i),
      0,
      32,
    ),
    0x46dd794e,
  );
  assert.equal(
    crc32c(
      Uint8Array.from({ length: 32 }, (_, i) => 31 - i),
      0,
      32,
    ),
    0x113fdb5c,
  );
});

test('SCTP checksum: packets made by scapy verify, one flipped bit does not', () => {
  // IP()/SCTP(sport=40000, dport=5000, tag=0)/SCTPChunkInit(init_tag=0x11223344, ...) and a DATA chunk, from scapy 2.5
  for (const h of [
    '45000034000100004084ee1bc6120002c61300029c40138800000000ecc2fbe4010000141122334400010000000a000a00000001',
    '45000038000100004084ee17c6120002c61300029c40138855667788dccc68670003001500000001000000000000000068656c6c6f000000',
  ]) {
    const b = hex(h);
    assert.ok(verifySctpChecksum(b, 20, b.length - 20));
    const v = new PacketView();
    assert.ok(parsePacket(b, 0, b.length, v));
    assert.ok(verifyL4Checksum(v));
    b[b.length - 1] ^= 0x01;
    assert.ok(!verifySctpChecksum(b, 20, b.length - 20));
    parsePacket(b, 0, b.length, v);
    assert.ok(!verifyL4Checksum(v));
  }
  // the value is stored least significant byte first
  const b = hex('9c40138800000000ecc2fbe4010000141122334400010000000a000a00000001');
  assert.equal(sctpChecksum(b, 0, b.length), 0xe4fbc2ec);
});

test('SCTP parse: ports, 12-byte common header, chunks as payload; IPv6 too', () => {
  const v = new PacketView();
  const p = ipv4({ src: '198.18.0.2', dst: '198.19.0.2' }, sctp({ sport: 1234, dport: 5678, vtag: 7, chunks: [{ type: 1, data: sctpInitValue(9) }] }));
  assert.ok(parsePacket(p, 0, p.length, v));
  assert.equal(v.proto, 132);
  assert.equal(v.sport, 1234);
  assert.equal(v.dport, 5678);
  assert.equal(v.payloadOff, 20 + 12);
  assert.equal(v.payloadLen, 20);
  assert.equal(sctpChunkLength(p, v.payloadOff), 20);
  assert.equal(sctpNextChunk(p, v.payloadOff), p.length);
  const p6 = ipv6({}, sctp({ sport: 1, dport: 2, chunks: [{ type: 4, data: [1, 2, 3] }] }));
  assert.ok(parsePacket(p6, 0, p6.length, v));
  assert.equal(v.sport, 1);
  assert.equal(v.dport, 2);
  assert.ok(verifyL4Checksum(v));
  // a chunk length of 7 is walked as 8 (rounded up to 4)
  assert.equal(sctpNextChunk(p6, v.payloadOff), v.payloadOff + 8);
});

test('SCTP parse: shorter than the common header is TRUNCATED_L4, ports read from 4 bytes', () => {
  const v = new PacketView();
  const full = sctp({ sport: 1000, dport: 2000 });
  const p = ipv4({ proto: 132 }, full.slice(0, 8));
  assert.ok(!parsePacket(p, 0, p.length, v));
  assert.equal(v.malformed, Malformed.TRUNCATED_L4);
  assert.equal(v.sport, 1000);
  assert.equal(v.dport, 2000);
  const q = ipv4({ proto: 132 }, full.slice(0, 3));
  assert.ok(!parsePacket(q, 0, q.length, v));
  assert.equal(v.sport, 0);
});

test('CRC32c: every length 0..64 and every offset agree with the bitwise definition (slicing by 8 and the tail)', () => {
  const bitwise = (b: Uint8Array, off: number, len: number) => {
    let c = 0xffffffff;
    for (let i = off; i < off + len; i++) {
      c ^= b[i];
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    }
    return ~c >>> 0;
  };
  const b = Uint8Array.from({ length: 80 }, (_, i) => (i * 167 + 13) & 0xff);
  for (let off = 0; off < 8; off++) for (let len = 0; len <= 64; len++) assert.equal(crc32c(b, off, len), bitwise(b, off, len), `off ${off} len ${len}`);
});
