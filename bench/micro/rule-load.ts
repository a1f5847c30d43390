/**
 * Load time and memory of large rule sets: `loadRules` (parse + compile) of a FORWARD
 * blocklist of N rules (`-s ADDR/32 -j DROP`, every 10th a `--dport` rule, so both indexes
 * are built), each size in a fresh process so its memory is its own. No thresholds: one JSON
 * row per size ({rules, load_ms, heap_mb, rss_mb}) with --json, a line otherwise.
 *
 *   node --expose-gc --import tsx bench/micro/rule-load.ts [--json] [N...]
 */
import { spawnSync } from 'node:child_process';
import { formatError, loadRules } from '../../src/rules/index';
import { blocklist } from './blocklist';

function measure(n: number): { rules: number; load_ms: number; heap_mb: number; rss_mb: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  const text = blocklist(n);
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const t0 = process.hrtime.bigint();
  const r = loadRules(text, `blocklist-${n}.rules`, { helperId: () => 0, deps: { ifname: () => '', log: () => {}, reject: () => {} } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!r.engine) throw new Error(r.errors.map(formatError).join('\n'));
  gc?.();
  const mu = process.memoryUsage();
  const keep = r.engine; // held until measured
  void keep;
  return { rules: n, load_ms: Math.round(ms), heap_mb: Math.round((mu.heapUsed - heap0) / 1e5) / 10, rss_mb: Math.round((mu.rss - rss0) / 1e5) / 10 };
}

const args = process.argv.slice(2);
const json = args.includes('--json');
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
if (process.env.NFQWALL_RULE_LOAD_CHILD) {
  console.log(JSON.stringify(measure(sizes[0])));
} else {
  for (const n of sizes.length ? sizes : [1000, 10_000, 100_000, 200_000]) {
    const r = spawnSync(process.execPath, [...process.execArgv, __filename, String(n)], {
      encoding: 'utf8',
      env: { ...process.env, NFQWALL_RULE_LOAD_CHILD: '1' },
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) throw new Error(`${n} rules: ${r.stderr}`);
    const row = JSON.parse(r.stdout.trim().split('\n').pop()!);
    console.log(json ? JSON.stringify(row) : `${String(n).padStart(7)} rules: load ${row.load_ms} ms, heap +${row.heap_mb} MB, RSS +${row.rss_mb} MB`);
  }
}
