/**
 * Offline engine benchmark: packets per second through the whole per-packet pipeline
 * (parse → raw → conntrack → filter → confirm, src/pipeline/firewall.ts) with
 * rules/bench.rules, over a generated array of packets, in queue-sized batches; and the same
 * packets through `nfqwall replay` from a generated pcap (marginal rate: the run time of a
 * 1-packet capture, i.e. start-up and rule loading, is subtracted). No thresholds.
 *
 *   node --import tsx bench/micro/engine.ts [--flows N] [--reps N] [--json] [--no-replay]
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

const ROOT = path.resolve(__dirname, '..', '..');
const RULES = path.join(ROOT, 'rules', 'bench.rules');
const HOOK_FORWARD = 2;
const BATCH = 64;

const { values } = parseArgs({
  options: {
    flows: { type: 'string', default: '20000' },
    reps: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    'no-replay': { type: 'boolean', default: false },
  },
});
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

function runOnce(batches: Batch[], npk: number): { pps: number; accepted: number; entries: number } {
  const fw = newFirewall();
  let now = 1000;
  const t0 = process.hrtime.bigint();
  for (const b of batches) {
    fw.processBatch(b, now);
    now += 0.05;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  let accepted = 0;
  for (const b of batches) for (let i = 0; i < b.count; i++) if (b.verdicts[i] === NF_ACCEPT) accepted++;
  return { pps: npk / s, accepted, entries: fw.ct.count };
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

const pkts = generate(FLOWS);
const batches = makeBatches(pkts);
runOnce(batches, pkts.length); // warm-up (JIT)
const runs = Array.from({ length: REPS }, () => runOnce(batches, pkts.length));
const result: Record<string, unknown> = {
  packets: pkts.length,
  flows: FLOWS,
  engine_pps: median(runs.map((r) => r.pps)),
  engine_pps_runs: runs.map((r) => Math.round(r.pps)),
  accepted: runs[0].accepted,
  entries_at_end: runs[0].entries,
};
if (runs[0].accepted !== pkts.length) result.note = `only ${runs[0].accepted} of ${pkts.length} packets accepted`;
if (!values['no-replay']) {
  const r = replayRate(pkts);
  result.replay_pps = r.pps;
  result.replay_seconds = r.seconds;
  result.replay_startup_seconds = r.startupSeconds;
}
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(
    `engine: ${pkts.length} packets (${FLOWS} flows), ${((result.engine_pps as number) / 1e6).toFixed(2)} Mpps median of ${REPS}` +
      ` (${runs.map((r) => (r.pps / 1e6).toFixed(2)).join(', ')}), accepted ${runs[0].accepted}, entries ${runs[0].entries}`,
  );
  if (result.replay_pps !== undefined) {
    console.log(
      `replay: ${((result.replay_pps as number) / 1e3).toFixed(0)} kpps marginal (${(result.replay_seconds as number).toFixed(2)} s total, ` +
        `${(result.replay_startup_seconds as number).toFixed(2)} s start-up)`,
    );
  }
}
