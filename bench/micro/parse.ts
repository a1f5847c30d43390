/**
 * Micro-benchmark: parsePacket (and checksum verification) throughput on a
 * batch-like shared buffer. Prints parses per second; no thresholds.
 *   node --import tsx bench/micro/parse.ts [seconds-per-case]
 */
import { verifyL4Checksum } from '../../src/packet/checksum';
import { parsePacket } from '../../src/packet/parse';
import { PacketView } from '../../src/packet/view';
import { icmpError, ipv4, ipv6, tcp, udp } from '../../test/helpers/packets';

const seconds = Number(process.argv[2] ?? '1');

const CASES: Array<[string, Uint8Array]> = [
  ['ipv4 tcp syn + options', ipv4({}, tcp({ flags: 'S', options: { mss: 1460, sackPerm: true, timestamp: [1, 2], wscale: 7 } }))],
  ['ipv4 tcp ack 1400 B', ipv4({}, tcp({ flags: 'A', options: { timestamp: [1, 2] }, payload: new Uint8Array(1400) }))],
  ['ipv4 udp 100 B', ipv4({}, udp({ payload: new Uint8Array(100) }))],
  ['ipv6 ext + udp', ipv6({ extHeaders: [{ type: 0 }, { type: 60 }] }, udp({ payload: new Uint8Array(64) }))],
  ['ipv4 icmp error', ipv4({}, icmpError(3, 3, ipv4({}, udp({ payload: 'x' }))))],
];

// Lay 256 copies of the packet out in one buffer, like a queue batch.
function layout(p: Uint8Array): { buf: Uint8Array; offs: Uint32Array } {
  const n = 256;
  const stride = (p.length + 7) & ~7;
  const buf = new Uint8Array(stride * n + 3);
  const offs = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    offs[i] = 3 + i * stride;
    buf.set(p, offs[i]);
  }
  return { buf, offs };
}

function run(name: string, p: Uint8Array, withChecksum: boolean): void {
  const { buf, offs } = layout(p);
  const v = new PacketView();
  const len = p.length;
  let n = 0;
  let bad = 0;
  const t0 = performance.now();
  const stop = t0 + seconds * 1000;
  let now = t0;
  while (now < stop) {
    for (let r = 0; r < 64; r++) {
      for (let i = 0; i < offs.length; i++) {
        if (!parsePacket(buf, offs[i], len, v, 0)) bad++;
        if (withChecksum && !verifyL4Checksum(v)) bad++;
      }
      n += offs.length;
    }
    now = performance.now();
  }
  const rate = (n / (now - t0)) * 1000;
  const label = `${name}${withChecksum ? ' + checksum' : ''}`;
  console.log(`${label.padEnd(40)} ${(rate / 1e6).toFixed(2).padStart(7)} M/s${bad ? ` (${bad} failed!)` : ''}`);
}

for (const [name, p] of CASES) run(name, p, false);
for (const [name, p] of CASES) run(name, p, true);
