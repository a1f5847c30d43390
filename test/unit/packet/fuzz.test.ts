import assert from 'node:assert/strict';
import { test } from 'node:test';
import { verifyL4Checksum } from '../../../src/packet/checksum';
import { parsePacket } from '../../../src/packet/parse';
import { MALFORMED_NAMES, Malformed, PacketView } from '../../../src/packet/view';
import { icmp, icmpError, icmpv6, ipv4, ipv6, tcp, udp, udplite } from '../../helpers/packets';
import { relSnapshot } from './util';

// Deterministic PRNG (xorshift32) so a failure is reproducible from the iteration number.
let state = 0x9e3779b9;
function rnd(): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return state >>> 0;
}
const below = (n: number): number => rnd() % n;

const CORPUS: Uint8Array[] = [
  ipv4({ options: [1, 1, 1, 1] }, tcp({ flags: 'SA', options: { mss: 1460, wscale: 7, sackPerm: true, timestamp: [1, 2] }, payload: 'abc' })),
  ipv4(
    {},
    tcp({
      flags: 'A',
      options: {
        sack: [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
      },
      payload: 'xyz',
    }),
  ),
  ipv4({}, udp({ payload: 'hello world' })),
  ipv4({}, udplite({ coverage: 8, payload: 'lite' })),
  ipv4({}, icmp({ type: 8, payload: 'ping' })),
  ipv4({}, icmpError(3, 3, ipv4({ options: [1, 1, 1, 1] }, udp({ payload: 'inner' })))),
  ipv4({}, icmpError(11, 0, ipv4({}, icmp({ type: 8 })))),
  ipv4({ mf: true }, tcp()),
  ipv4({ proto: 17, fragOffset: 64 }, new Uint8Array(24)),
  ipv6({}, tcp({ flags: 'S', options: { mss: 1440, wscale: 14 } })),
  ipv6({ extHeaders: [{ type: 0 }, { type: 43, bytes: 24 }, { type: 44, more: true }, { type: 51 }, { type: 60 }] }, udp({ payload: 'ext' })),
  ipv6({ extHeaders: [{ type: 44, fragOffset: 8 }], nextHeader: 6 }, new Uint8Array(32)),
  ipv6({}, icmpv6({ type: 128, payload: 'ping6' })),
  ipv6({}, icmpError(1, 4, ipv6({ extHeaders: [{ type: 60 }] }, tcp({ payload: 'in' })))),
  ipv6({}, icmpError(2, 0, ipv6({}, icmpv6({ type: 128 })))),
  ipv6({ nextHeader: 59 }),
];

const KNOWN = new Set<number>(Object.values(Malformed));

function check(v: PacketView, ok: boolean, inLen: number, ctx: string): void {
  if (!KNOWN.has(v.malformed) || v.malformed >= MALFORMED_NAMES.length) assert.fail(`${ctx}: unknown malformed ${v.malformed}`);
  if (ok !== (v.malformed === 0)) assert.fail(`${ctx}: return ${ok} with malformed ${v.malformed}`);
  if (!KNOWN.has(v.innerMalformed)) assert.fail(`${ctx}: unknown innerMalformed ${v.innerMalformed}`);
  if (v.innerMalformed !== 0 && v.malformed !== Malformed.BAD_INNER) assert.fail(`${ctx}: inner ${v.innerMalformed} but outer ${v.malformed}`);
  if (v.len > inLen) assert.fail(`${ctx}: len grew`);
  if (ok) {
    const end = v.off + v.len;
    if (v.l4off < v.off || v.l4off + v.l4len !== end) assert.fail(`${ctx}: l4 span ${v.l4off}+${v.l4len} vs end ${end}`);
    if (v.payloadOff < v.l4off || v.payloadOff + v.payloadLen > end || v.payloadLen < 0) assert.fail(`${ctx}: payload span`);
    if (v.seq < 0 || v.ack < 0 || v.sackRight < 0 || v.seq > 0xffffffff) assert.fail(`${ctx}: signed seq/ack`);
    if (v.optWscale > 14 || v.optWscale < -1) assert.fail(`${ctx}: wscale ${v.optWscale}`);
  }
  verifyL4Checksum(v); // must not throw
}

test('fuzz: mutated valid packets and random bytes never throw and give known codes', () => {
  const v = new PacketView();
  const ref = new PacketView();
  const work = new Uint8Array(2048);
  const big = new Uint8Array(8192);
  const counts = new Map<number, number>();
  const N = 300_000;
  for (let it = 0; it < N; it++) {
    let len: number;
    const kind = it % 10;
    if (kind < 8) {
      const src = CORPUS[below(CORPUS.length)];
      work.set(src);
      len = src.length;
      const nmut = 1 + below(4);
      for (let m = 0; m < nmut; m++) {
        const r = below(10);
        if (r < 5)
          work[below(len)] ^= 1 << below(8); // bit flip
        else if (r < 7)
          work[below(len)] = below(256); // random byte
        else if (r < 8)
          len = below(len + 1); // truncation
        else if (r < 9) {
          // grow with garbage (trailing bytes beyond tot_len)
          const add = below(64);
          for (let i = 0; i < add; i++) work[len + i] = below(256);
          len += add;
        } else {
          // length fields: IPv4 tot_len / IPv6 payload len / UDP len / TCP doff
          const at = [2, 3, 4, 5, 24, 25, 32, 44, 45, 52][below(10)];
          if (at < len) work[at] = below(256);
        }
      }
    } else {
      len = below(120);
      for (let i = 0; i < len; i++) work[i] = below(256);
      if (len > 0 && below(2) === 0) work[0] = (below(2) === 0 ? 0x40 : 0x60) | (work[0] & 0x0f);
    }
    const pkt = work.subarray(0, len);
    let ok: boolean;
    try {
      ok = parsePacket(pkt, 0, len, v);
    } catch (e) {
      assert.fail(`iteration ${it}: threw ${String(e)} on ${Buffer.from(pkt).toString('hex')}`);
    }
    check(v, ok, len, `iteration ${it} ${Buffer.from(pkt).toString('hex')}`);
    counts.set(v.malformed, (counts.get(v.malformed) ?? 0) + 1);
    if (it % 16 === 0) {
      // same bytes at an odd offset inside a big shared buffer with garbage around: same result
      const off = 1 + below(4000);
      for (let i = off - 1; i < off + len + 8; i++) big[i] = below(256);
      big.set(pkt, off);
      const okBig = parsePacket(big, off, len, ref);
      assert.equal(okBig, ok);
      assert.deepEqual(relSnapshot(ref), relSnapshot(v), `iteration ${it}`);
    }
  }
  // the corpus mutations reach valid packets and every main failure kind
  for (const code of [
    0,
    Malformed.TOO_SHORT,
    Malformed.BAD_VERSION,
    Malformed.BAD_IHL,
    Malformed.BAD_TOTAL_LEN,
    Malformed.BAD_EXT_HEADER,
    Malformed.TRUNCATED_L4,
    Malformed.BAD_TCP_DOFF,
    Malformed.BAD_UDP_LEN,
    Malformed.BAD_INNER,
  ]) {
    assert.ok((counts.get(code) ?? 0) > 0, `code ${code} never produced`);
  }
});
