/**
 * Offline engine benchmark: packets per second through the whole per-packet pipeline
 * (parse → raw → conntrack → filter → confirm, src/pipeline/firewall.ts) with
 * rules/bench.rules, over a generated array of packets, in queue-sized batches; and the same
 * packets through `nfqwall replay` from a generated pcap (marginal rate: the run time of a
 * 1-packet capture, i.e. start-up and rule loading, is subtracted). No thresholds.
 *
 *   node dist/bench/micro/engine.js [--flows N] [--reps N] [--json] [--no-replay] [--rules FILE]
 *        [--traffic new|established|both]   (after `npm run build`; or node --import tsx bench/micro/engine.ts)
 *
 * Traffic: complete TCP conversations (SYN, SYN-ACK, ACK, request, response, FIN, FIN, ACK:
 * 8 packets, valid sequence numbers, so the TCP tracker's window checks run for real) and UDP
 * request/response pairs (2 × 2 packets), 64-byte payloads, 256 flows interleaved at a time,
 * cli 198.18.x.y → srv 198.19.2.1 ports 5201 (tcp) / 5210 (udp), hook FORWARD.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Firewall } from '../../src/pipeline/firewall';
import { loadRuleFile } from '../../src/pipeline/load-rules';
import { defaultTunables } from '../../src/conntrack/sysctl';
import { INDEX_STRIDE, IX_CAPLEN, IX_FAMILY, IX_HOOK, IX_OFFSET, IX_ORIGLEN, NF_ACCEPT } from '../../src/queue/layout';
import type { Batch } from '../../src/queue/queue';
import { writePcapFile } from '../../src/pcap/write';
import { ipv4, tcp, udp } from '../../test/helpers/packets';

const { values } = parseArgs({
  options: {
    flows: { type: 'string', default: '20000' },
    reps: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    'no-replay': { type: 'boolean', default: false },
    rules: { type: 'string' },
    traffic: { type: 'string', default: 'both' },
  },
});
/** the repository root (also when running as compiled JS from dist/bench/micro) */
function findRoot(): string {
  let d = path.resolve(__dirname, '..', '..');
  while (!fs.existsSync(path.join(d, 'rules', 'bench.rules')) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}
const ROOT = findRoot();
const RULES = values.rules ? path.resolve(values.rules) : path.join(ROOT, 'rules', 'bench.rules');
const HOOK_FORWARD = 2;
const BATCH = 64;

const FLOWS = Number(values.flows);
const REPS = Number(values.reps);

function cliAddr(k: number): string {
  return `198.18.${(k >>> 8) & 0xff}.${k & 0xff}`;
}

/** The packets of one flow, in order. */
function flowPackets(k: number): Uint8Array[] {
  const c = cliAddr(k);
  const s = '198.19.2.1';
  const sport = 20000 + (k >>> 16);
  const pay = new Uint8Array(64).fill(0x61);
  if (k % 2 === 0) {
    const a = (k * 2654435761) >>> 0;
    const b = (a ^ 0x5bd1e995) >>> 0;
    const dport = 5201;
    const C = (spec: Parameters<typeof tcp>[0]) => ipv4({ src: c, dst: s }, tcp({ sport, dport, window: 64240, ...spec }));
    const S = (spec: Parameters<typeof tcp>[0]) => ipv4({ src: s, dst: c }, tcp({ sport: dport, dport: sport, window: 65160, ...spec }));
    return [
      C({ seq: a, flags: 'S' }),
      S({ seq: b, ack: a + 1, flags: 'SA' }),
      C({ seq: a + 1, ack: b + 1, flags: 'A' }),
      C({ seq: a + 1, ack: b + 1, flags: 'PA', payload: pay }),
      S({ seq: b + 1, ack: a + 65, flags: 'PA', payload: pay }),
      C({ seq: a + 65, ack: b + 65, flags: 'FA' }),
      S({ seq: b + 65, ack: a + 66, flags: 'FA' }),
      C({ seq: a + 66, ack: b + 66, flags: 'A' }),
    ].map((p) => p);
  }
  const q = () => ipv4({ src: c, dst: s }, udp({ sport, dport: 5210, payload: pay }));
  const r = () => ipv4({ src: s, dst: c }, udp({ sport: 5210, dport: sport, payload: pay }));
  return [q(), r(), q(), r()];
}

/**
 * Established-flow traffic: the set-up packets of each flow (TCP handshake; UDP first
 * request/response), then `rounds` steady exchanges (TCP: 64-byte data segment with its
 * ACK; UDP: request and response), flows interleaved 256 at a time.
 */
function steadyPackets(k: number, rounds: number): { setup: Uint8Array[]; steady: Uint8Array[] } {
  const c = cliAddr(k);
  const s = '198.19.2.1';
  const sport = 20000 + (k >>> 16);
  const pay = new Uint8Array(64).fill(0x61);
  if (k % 2 === 0) {
    const a = (k * 2654435761) >>> 0;
    const b = (a ^ 0x5bd1e995) >>> 0;
    const dport = 5201;
    const C = (spec: Parameters<typeof tcp>[0]) => ipv4({ src: c, dst: s }, tcp({ sport, dport, window: 64240, ...spec }));
    const S = (spec: Parameters<typeof tcp>[0]) => ipv4({ src: s, dst: c }, tcp({ sport: dport, dport: sport, window: 65160, ...spec }));
    const setup = [C({ seq: a, flags: 'S' }), S({ seq: b, ack: a + 1, flags: 'SA' }), C({ seq: a + 1, ack: b + 1, flags: 'A' })];
    const steady: Uint8Array[] = [];
    for (let r = 0; r < rounds; r++) {
      const sq = (a + 1 + 64 * r) >>> 0;
      steady.push(C({ seq: sq, ack: b + 1, flags: 'PA', payload: pay }), S({ seq: b + 1, ack: (sq + 64) >>> 0, flags: 'A' }));
    }
    return { setup, steady };
  }
  const q = ipv4({ src: c, dst: s }, udp({ sport, dport: 5210, payload: pay }));
  const rr = ipv4({ src: s, dst: c }, udp({ sport: 5210, dport: sport, payload: pay }));
  const steady: Uint8Array[] = [];
  for (let r = 0; r < rounds; r++) steady.push(q, rr);
  return { setup: [q, rr], steady };
}

function interleave(per: Uint8Array[][]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const G = 256;
  for (let g = 0; g < per.length; g += G) {
    const group = per.slice(g, g + G);
    const steps = Math.max(...group.map((x) => x.length));
    for (let st = 0; st < steps; st++) for (const f of group) if (st < f.length) out.push(f[st]);
  }
  return out;
}

/** All packets, 256 flows interleaved step by step. */
function generate(flows: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const G = 256;
  for (let g = 0; g < flows; g += G) {
    const group: Uint8Array[][] = [];
    for (let k = g; k < Math.min(flows, g + G); k++) group.push(flowPackets(k));
    const steps = Math.max(...group.map((x) => x.length));
    for (let st = 0; st < steps; st++) for (const f of group) if (st < f.length) out.push(f[st]);
  }
  return out;
}

function makeBatches(pkts: Uint8Array[]): Batch[] {
  const total = pkts.reduce((n, p) => n + p.length, 0);
  const data = new Uint8Array(total);
  const index = new Uint32Array(pkts.length * INDEX_STRIDE);
  let off = 0;
  pkts.forEach((p, i) => {
    data.set(p, off);
    const row = i * INDEX_STRIDE;
    index[row + IX_OFFSET] = off;
    index[row + IX_CAPLEN] = p.length;
    index[row + IX_ORIGLEN] = p.length;
    index[row + IX_HOOK] = HOOK_FORWARD;
    index[row + IX_FAMILY] = 2; // AF_INET
    off += p.length;
  });
  const verdicts = new Uint32Array(pkts.length);
  const marks = new Uint32Array(pkts.length);
  const batches: Batch[] = [];
  for (let i = 0; i < pkts.length; i += BATCH) {
    const n = Math.min(BATCH, pkts.length - i);
    batches.push({
      queue: 0,
      count: n,
      data,
      index: index.subarray(i * INDEX_STRIDE, (i + n) * INDEX_STRIDE),
      verdicts: verdicts.subarray(i, i + n),
      marks: marks.subarray(i, i + n),
    } as unknown as Batch);
  }
  return batches;
}

function newFirewall(): Firewall {
  const loaded = loadRuleFile(RULES, { log: () => {} });
  if (!loaded.rules) throw new Error(loaded.errors.join('\n'));
  const tun = defaultTunables();
  tun.nf_conntrack_max = Math.max(tun.nf_conntrack_max, FLOWS * 2);
  return new Firewall({ tun, rules: loaded.rules });
}

function runOnce(batches: Batch[], npk: number, setup?: Batch[]): { pps: number; cpuPps: number; accepted: number; entries: number } {
  const fw = newFirewall();
  let now = 1000;
  if (!setup) {
    // Size the table first, as a running daemon's table already is: one pass over the same
    // flows, then every entry expires and the periodic sweep (Firewall.tick) removes it, so
    // the measured pass creates every connection anew without growing the table's arrays.
    for (const b of batches) fw.processBatch(b, now);
    now += 10 * 86400e3;
    fw.tick(now, fw.ct.table.nbuckets + 2 * fw.ct.table.hashed + 1);
    if (fw.ct.count !== 0) throw new Error(`${fw.ct.count} entries left after the sweep`);
  } else {
    for (const b of setup) {
      fw.processBatch(b, now);
      now += 0.05;
    }
  }
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (const b of batches) {
    fw.processBatch(b, now);
    now += 0.05;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  let accepted = 0;
  for (const b of batches) for (let i = 0; i < b.count; i++) if (b.verdicts[i] === NF_ACCEPT) accepted++;
  return { pps: npk / s, cpuPps: npk / cpu, accepted, entries: fw.ct.count };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function replayRate(pkts: Uint8Array[]): { pps: number; seconds: number; startupSeconds: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqwall-bench-replay-'));
  try {
    const big = path.join(dir, 'big.pcap');
    const small = path.join(dir, 'small.pcap');
    writePcapFile(
      big,
      pkts.map((data, i) => ({ data, tsMs: 1_700_000_000_000 + i * 0.01 })),
    );
    writePcapFile(small, [{ data: pkts[0], tsMs: 1_700_000_000_000 }]);
    const run = (f: string) => {
      const t0 = process.hrtime.bigint();
      execFileSync(process.execPath, [path.join(ROOT, 'bin', 'nfqwall.js'), 'replay', '--rules', RULES, '--quiet', f], {
        cwd: ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
        maxBuffer: 64 << 20,
      });
      return Number(process.hrtime.bigint() - t0) / 1e9;
    };
    const startup = median([run(small), run(small)]);
    const full = median([run(big), run(big)]);
    return { pps: pkts.length / Math.max(1e-6, full - startup), seconds: full, startupSeconds: startup };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Speed of the CPU this process runs on, independent of nfqwall: millions of iterations per
 * CPU-second of a fixed integer loop (xorshift + multiply, no memory traffic). On the shared VM
 * the engine's rates move with the other tenants (host-level contention is invisible inside
 * the guest: no steal time), and this figure moves with them; compare engine figures of two
 * runs only together with it.
 */
function calibrate(): number {
  let x = 0x9e3779b9 | 0;
  const N = 20_000_000;
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x = Math.imul(x, 0x2545f491) | 0;
  }
  const c = process.cpuUsage(c0);
  if (x === 42) console.error(''); // keep the loop alive
  return N / ((c.user + c.system) / 1e6) / 1e6;
}

const TRAFFIC = values.traffic!;
const result: Record<string, unknown> = { flows: FLOWS, rules: path.relative(ROOT, RULES) };
calibrate(); // JIT
const calib: number[] = [calibrate()];
let pkts: Uint8Array[] = [];
if (TRAFFIC === 'new' || TRAFFIC === 'both') {
  pkts = generate(FLOWS);
  const batches = makeBatches(pkts);
  runOnce(batches, pkts.length); // warm-up (JIT)
  const runs = Array.from({ length: REPS }, () => runOnce(batches, pkts.length));
  Object.assign(result, {
    packets: pkts.length,
    engine_pps: median(runs.map((r) => r.pps)),
    engine_pps_runs: runs.map((r) => Math.round(r.pps)),
    // packets per second of the process's CPU time (user + system): less sensitive to sharing the CPU
    engine_cpu_pps: median(runs.map((r) => r.cpuPps)),
    accepted: runs[0].accepted,
    entries_at_end: runs[0].entries,
  });
  if (runs[0].accepted !== pkts.length) result.note = `only ${runs[0].accepted} of ${pkts.length} packets accepted`;
}
if (TRAFFIC === 'established' || TRAFFIC === 'both') {
  const ROUNDS = 4;
  const per = Array.from({ length: FLOWS }, (_, k) => steadyPackets(k, ROUNDS));
  const setupB = makeBatches(interleave(per.map((p) => p.setup)));
  const steady = interleave(per.map((p) => p.steady));
  const steadyB = makeBatches(steady);
  runOnce(steadyB, steady.length, setupB); // warm-up (JIT)
  const runs = Array.from({ length: REPS }, () => runOnce(steadyB, steady.length, setupB));
  Object.assign(result, {
    established_packets: steady.length,
    established_pps: median(runs.map((r) => r.pps)),
    established_pps_runs: runs.map((r) => Math.round(r.pps)),
    established_cpu_pps: median(runs.map((r) => r.cpuPps)),
    established_accepted: runs[0].accepted,
  });
  if (runs[0].accepted !== steady.length) result.established_note = `only ${runs[0].accepted} of ${steady.length} packets accepted`;
}
calib.push(calibrate());
result.calibration_mops = median(calib);
result.calibration_mops_runs = calib.map((x) => Math.round(x));
if (!values['no-replay'] && pkts.length > 0) {
  const r = replayRate(pkts);
  result.replay_pps = r.pps;
  result.replay_seconds = r.seconds;
  result.replay_startup_seconds = r.startupSeconds;
}
if (values.json) console.log(JSON.stringify(result));
else {
  const mp = (x: number) => (x / 1e6).toFixed(2);
  if (result.engine_pps !== undefined) {
    console.log(
      `engine, new flows: ${result.packets} packets (${FLOWS} flows), ${mp(result.engine_pps as number)} Mpps median of ${REPS}` +
        ` (${(result.engine_pps_runs as number[]).map(mp).join(', ')}), ${mp(result.engine_cpu_pps as number)} Mpps of CPU time,` +
        ` accepted ${result.accepted}, entries ${result.entries_at_end}`,
    );
  }
  if (result.established_pps !== undefined) {
    console.log(
      `engine, established flows: ${result.established_packets} packets (${FLOWS} flows), ${mp(result.established_pps as number)} Mpps median of ${REPS}` +
        ` (${(result.established_pps_runs as number[]).map(mp).join(', ')}), ${mp(result.established_cpu_pps as number)} Mpps of CPU time,` +
        ` accepted ${result.established_accepted}`,
    );
  }
  console.log(`CPU speed (fixed integer loop, before and after): ${(result.calibration_mops_runs as number[]).join(', ')} M iterations per CPU-second`);
  if (result.replay_pps !== undefined) {
    console.log(
      `replay: ${((result.replay_pps as number) / 1e3).toFixed(0)} kpps marginal (${(result.replay_seconds as number).toFixed(2)} s total, ` +
        `${(result.replay_startup_seconds as number).toFixed(2)} s start-up)`,
    );
  }
}
