import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { addrToString, parseAddr } from '../../../src/packet/format';

/** [text as glibc inet_ntop prints it, the eight 16-bit groups] */
const KNOWN_GROUPS: Array<[string, number[]]> = [
  ['::', [0, 0, 0, 0, 0, 0, 0, 0]],
  ['::1', [0, 0, 0, 0, 0, 0, 0, 1]],
  ['1::', [1, 0, 0, 0, 0, 0, 0, 0]],
  ['2001:db8::1', [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]],
  ['2001:db8:0:1:1:1:1:1', [0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]], // a single zero group is not compressed
  ['2001:0:0:1::1', [0x2001, 0, 0, 1, 0, 0, 0, 1]], // the longest run wins
  ['1::1:0:0:1:1', [1, 0, 0, 1, 0, 0, 1, 1]], // equal runs: the first one
  ['1:0:0:1:1::', [1, 0, 0, 1, 1, 0, 0, 0]],
  ['::ffff:1.2.3.4', [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]],
  ['::ffff:0.0.0.0', [0, 0, 0, 0, 0, 0xffff, 0, 0]],
  ['::1.2.3.4', [0, 0, 0, 0, 0, 0, 0x102, 0x304]],
  ['::0.1.0.0', [0, 0, 0, 0, 0, 0, 1, 0]],
  ['::ffff:0:102:304', [0, 0, 0, 0, 0xffff, 0, 0x102, 0x304]], // not IPv4-mapped
  ['::1:0:0:0:1', [0, 0, 0, 1, 0, 0, 0, 1]],
  ['fe80::abcd:ef01', [0xfe80, 0, 0, 0, 0, 0, 0xabcd, 0xef01]],
  ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', [0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff]],
];
const toWords = (g: number[]): number[] => [0, 1, 2, 3].map((i) => ((g[2 * i] << 16) | g[2 * i + 1]) >>> 0);
const KNOWN: Array<[string, number[]]> = KNOWN_GROUPS.map(([t, g]) => [t, toWords(g)]);

test('addrToString: IPv4 dotted quad', () => {
  assert.equal(addrToString(4, [0xc6120001]), '198.18.0.1');
  assert.equal(addrToString(2, new Uint32Array([0xffffffff, 1, 2, 3])), '255.255.255.255');
  assert.equal(addrToString(4, [0]), '0.0.0.0');
});

test('addrToString: IPv6 like glibc inet_ntop (known strings)', () => {
  for (const [text, w] of KNOWN) assert.equal(addrToString(6, w), text, text);
  assert.equal(addrToString(10, [0, 0, 0, 1]), '::1');
});

test('addrToString agrees with Node (libuv inet_ntop) on random addresses with many zero groups', () => {
  let seed = 12345;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 8;
  };
  for (let n = 0; n < 5000; n++) {
    const g: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = rnd() % 5;
      g.push(r < 2 ? 0 : r === 2 ? 0xffff : r === 3 ? rnd() & 0xf : rnd() & 0xffff);
    }
    const w = toWords(g);
    const full = g.map((x) => x.toString(16)).join(':');
    const nodeText = new net.SocketAddress({ address: full, family: 'ipv6' }).address;
    const ours = addrToString(6, w);
    assert.equal(ours, nodeText, full);
    const back = parseAddr(ours);
    assert.ok(back);
    assert.equal(back.family, 6);
    assert.deepEqual(Array.from(back.words), w);
  }
});

test('parseAddr: IPv4 and IPv6 text forms', () => {
  assert.deepEqual(parseAddr('198.18.0.1'), { family: 4, words: Uint32Array.from([0xc6120001, 0, 0, 0]) });
  assert.deepEqual(parseAddr('0.0.0.0')?.words[0], 0);
  assert.equal(parseAddr('255.255.255.255')?.words[0], 0xffffffff);
  for (const [text, w] of KNOWN) {
    const a = parseAddr(text);
    assert.ok(a, text);
    assert.equal(a.family, 6);
    assert.deepEqual(Array.from(a.words), w, text);
  }
  assert.deepEqual(Array.from(parseAddr('0:0:0:0:0:FFFF:1.2.3.4')!.words), [0, 0, 0xffff, 0x01020304]);
  assert.deepEqual(Array.from(parseAddr('1:2:3:4:5:6:7.8.9.10')!.words), [0x00010002, 0x00030004, 0x00050006, 0x0708090a]);
  assert.deepEqual(Array.from(parseAddr('2001:DB8:0000:0000:0000:0000:0000:0001')!.words), [0x20010db8, 0, 0, 1]);
  assert.deepEqual(Array.from(parseAddr('1:2:3:4:5:6:7::')!.words), [0x00010002, 0x00030004, 0x00050006, 0x00070000]);
  assert.deepEqual(Array.from(parseAddr('::2:3:4:5:6:7:8')!.words), [0x00000002, 0x00030004, 0x00050006, 0x00070008]);
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.-1',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1..2.3',
    'a.b.c.d',
    '1.2.3.1234',
    ':',
    ':::',
    '1:::2',
    '1::2::3',
    '12345::',
    'g::',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8::',
    '::1.2.3',
    '::1.2.3.256',
    '1.2.3.4::',
    ':1::2',
    '1::2:',
    '1:2:3:4:5:6:7:1.2.3.4',
    'fe80::1%eth0',
    '::/0',
  ]) {
    assert.equal(parseAddr(bad), null, JSON.stringify(bad));
  }
  // agrees with node:net on validity
  for (const t of ['::ffff:1.2.3.4', '1:2:3:4:5:6::', '::', '1::', '1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:8::', ':::']) {
    assert.equal(parseAddr(t) !== null, net.isIPv6(t), t);
  }
});
