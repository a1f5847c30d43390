/**
 * Packet latency during a reload of N rules (blocklist.ts), in-process: the thread decides a
 * batch of 64 packets per event-loop turn, as its queue's reads would come, while the reload
 * compiles in slices (readRulesSliced, as the daemon does), then swaps the rules in. Reported:
 * the batches decided during the compile and the gaps between two batches (the longest wait a
 * packet could have had, median and p99), beside the one-go compile time (the wait before
 * reloads compiled in slices). No thresholds: one JSON row per size with --json.
 *
 *   node --import tsx bench/micro/reload-latency.ts [--json] [N...]
 */
import { Firewall } from '../../src/pipeline/firewall';
import { readRules, readRulesSliced, type RuleDeps } from '../../src/pipeline/load-rules';
import { defaultTunables } from '../../src/conntrack/sysctl';
import { NF_INET_FORWARD } from '../../src/queue/layout';
import { blocklist } from './blocklist';

const deps: RuleDeps = { log: () => {}, reject: () => {}, ifname: () => undefined, linkGeneration: () => 0 };

/** an IPv4 UDP datagram 198.18.250.1 → 198.19.250.1 (no rule of the blocklist matches it) */
function datagram(sport: number): Uint8Array {
  const p = new Uint8Array(28);
  p.set([0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 250, 1, 198, 19, 250, 1]);
  p[20] = sport >> 8;
  p[21] = sport & 255;
  p[23] = 53;
  p[25] = 8;
  return p;
}

async function measure(n: number) {
  const text = blocklist(n);
  const t0 = performance.now();
  readRules('blocking.rules', deps, text);
  const blockingMs = performance.now() - t0;

  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 4096, nf_conntrack_max: 4096 };
  const fw = new Firewall({ tun, rules: readRules('old.rules', deps, blocklist(10)).rules });
  const pkts = Array.from({ length: 64 }, (_, i) => datagram(40000 + i));
  let pending = true;
  let last = performance.now();
  const gaps: number[] = [];
  const batch = (): void => {
    if (!pending) return;
    const now = performance.now();
    gaps.push(now - last);
    for (const p of pkts) fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, 4, 0, 0, 0, 0, now);
    last = performance.now();
    setImmediate(batch);
  };
  const c0 = performance.now();
  setImmediate(batch);
  const next = await readRulesSliced('new.rules', deps, text);
  const compileMs = performance.now() - c0;
  pending = false;
  fw.setRules(next.rules);
  gaps.sort((a, b) => a - b);
  const q = (f: number) => Math.round(gaps[Math.min(gaps.length - 1, Math.floor(f * gaps.length))] * 100) / 100;
  return {
    rules: n,
    blocking_compile_ms: Math.round(blockingMs),
    sliced_compile_ms: Math.round(compileMs),
    batches_during: gaps.length,
    gap_median_ms: q(0.5),
    gap_p99_ms: q(0.99),
    gap_max_ms: q(1),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
  for (const n of sizes.length ? sizes : [100_000]) {
    const r = await measure(n);
    console.log(
      json
        ? JSON.stringify(r)
        : `${String(n).padStart(7)} rules: a blocking compile ${r.blocking_compile_ms} ms; sliced ${r.sliced_compile_ms} ms with ${r.batches_during} batches decided, gap between batches median ${r.gap_median_ms} ms, p99 ${r.gap_p99_ms} ms, max ${r.gap_max_ms} ms`,
    );
  }
}

void main();
