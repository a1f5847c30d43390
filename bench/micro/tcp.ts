/**
 * Micro-benchmark of the TCP tracker alone: window-update packets per second
 * on established connections (the most common packet of a bulk transfer's
 * reverse direction: class ack, in window, full tcp_in_window bookkeeping and
 * a timeout refresh). Prints numbers only; no thresholds.
 *
 *   node --import tsx bench/micro/tcp.ts [connections] [packets]
 */
import { IPS_SEEN_REPLY } from '../../src/conntrack/constants';
import { TcpTracker } from '../../src/conntrack/proto/tcp';
import type { TrackerHost } from '../../src/conntrack/proto/tracker';
import { defaultTunables } from '../../src/conntrack/sysctl';
import { PacketView, TCP_ACK, TCP_SYN } from '../../src/packet/view';

const conns = Number(process.argv[2] ?? 10000);
const total = Number(process.argv[3] ?? 5_000_000);

const status = new Uint32Array(conns);
const expiry = new Float64Array(conns);
const host: TrackerHost = {
  tun: defaultTunables(),
  status: (e) => status[e],
  setStatusBits: (e, b) => {
    status[e] |= b;
  },
  setTimeout: (e, s, now) => {
    expiry[e] = now + s * 1000;
  },
  timeoutLeft: (e, now) => Math.max(0, Math.floor((expiry[e] - now) / 1000)),
  createdAt: () => 0,
  seqOffset: () => 0,
  kill: () => {},
  logInvalid: () => {},
};

function view(flags: number, seq: number, ack: number, win: number, wscale = -1): PacketView {
  const v = new PacketView();
  v.ipVersion = 4;
  v.proto = 6;
  v.tcpFlags = flags;
  v.seq = seq >>> 0;
  v.ack = ack >>> 0;
  v.window = win;
  v.tcpHeaderLen = wscale >= 0 ? 24 : 20;
  v.optWscale = wscale;
  v.l4len = v.tcpHeaderLen;
  return v;
}

const t = new TcpTracker(conns);
const CISN = 1000;
const SISN = 500000;
for (let e = 0; e < conns; e++) {
  const syn = view(TCP_SYN, CISN, 0, 64240, 7);
  t.newConnection(host, e, syn, 0);
  t.packet(host, e, 0, 2, syn, 0);
  t.packet(host, e, 1, 3, view(TCP_SYN | TCP_ACK, SISN, CISN + 1, 65160, 7), 0);
  status[e] |= IPS_SEEN_REPLY;
  t.packet(host, e, 0, 0, view(TCP_ACK, CISN + 1, SISN + 1, 502), 0);
}

// Window updates from the server: same seq/ack, window changing every packet. Entries are
// visited in order, then in a shuffled order (as a busy table's lookups hand them out): with
// many connections the second is bound by cache misses on the tracker state.
const upd = view(TCP_ACK, SISN + 1, CISN + 1, 500);
const inOrder = new Uint32Array(conns).map((_, i) => i);
const shuffled = inOrder.slice();
let rnd = 0x9e3779b9;
for (let i = conns - 1; i > 0; i--) {
  rnd ^= rnd << 13;
  rnd ^= rnd >>> 17;
  rnd ^= rnd << 5;
  const j = (rnd >>> 0) % (i + 1);
  const x = shuffled[i];
  shuffled[i] = shuffled[j];
  shuffled[j] = x;
}
function run(n: number, order: Uint32Array): number {
  let bad = 0;
  let now = 1;
  for (let i = 0, k = 0; i < n; i++) {
    upd.window = 400 + (i & 255);
    if (t.packet(host, order[k], 1, 3, upd, now) !== 0) bad++;
    if ((i & 1023) === 0) now++;
    if (++k === conns) k = 0;
  }
  return bad;
}

for (const [what, order] of [
  ['in order', inOrder],
  ['shuffled', shuffled],
] as const) {
  run(Math.min(total, 200_000), order); // warm-up
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const bad = run(total, order);
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(c0);
  // CPU time as well: on a shared machine the wall time includes time the process waited.
  const cpuNs = (cpu.user + cpu.system) * 1000;
  const pps = (total / ns) * 1e9;
  console.log(
    `tcp window updates (${what}): ${total} packets over ${conns} connections in ${(ns / 1e6).toFixed(1)} ms → ${(pps / 1e6).toFixed(2)} Mpps (${(ns / total).toFixed(1)} ns/packet, cpu ${(cpuNs / total).toFixed(1)} ns/packet)${bad ? `, ${bad} not accepted` : ''}`,
  );
}
console.log(`per-entry tracker state: ${bytesPerEntry()} bytes`);

/** Bytes of the typed arrays a tracker holds (each buffer counted once, however many views share it). */
function bytesPerEntry(): number {
  const probe = new TcpTracker(1000);
  const buffers = new Set<ArrayBufferLike>();
  for (const v of Object.values(probe)) if (ArrayBuffer.isView(v)) buffers.add(v.buffer);
  let sum = 0;
  for (const b of buffers) sum += b.byteLength;
  return sum / 1000;
}
