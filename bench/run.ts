/**
 * `npm run bench`: nfqwall's benchmark. Two parts, both print numbers and ratios only (no thresholds):
 *
 * 1. In-process (pinned to the firewall CPU): the offline engine (bench/micro/engine.ts: parse →
 *    track → rules over a generated packet array, and `nfqwall replay` over a generated pcap),
 *    the connection table at 1k/100k/1M entries (bench/micro/conntrack.ts) beside the same
 *    table design written in C (bench/peers/ct_table.c), rule chains (bench/micro/rules.ts), and the
 *    load time and memory of 1k/10k/100k/200k-rule blocklists (bench/micro/rule-load.ts), and the
 *    packet latency during a reload of 100k rules (bench/micro/reload-latency.ts).
 * 2. Through a namespace lab (cli → gw → srv, 198.18.0.0/15 only, names unique per run, deleted
 *    on exit or interrupt): modes forward, kernel-stateful, c-simple, c-batch (the baseline),
 *    npm-nfqueue, nfqwall-accept-all, nfqwall; workloads udp-pps, tcp-bulk (1 and 4 streams),
 *    tcp-crr, latency; rounds interleaved; medians with the ratio to c-batch.
 *
 * The method, the C peers (bench/peers/*.c) and the npm peer are the team's shared harness
 * (/work/shared/bench, README.md there); this is its TypeScript port for this repository,
 * with the two nfqwall modes built in. Needs root.
 *
 *   npm run bench [-- --quick] [-- --modes a,b --workloads x,y --duration S --rounds N --json FILE
 *                  --no-micro --no-net --load-cpu 0 --fw-cpu 1]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab } from '../src/lab/netns';
import type { ConntrackRow } from './micro/conntrack';
import { parseKernelQueues, type KernelQueueInfo } from '../src/queue/queue';

const HERE = __dirname;
const ROOT = path.resolve(HERE, '..');
const BUILD = path.join(HERE, 'build');
const BIN = path.join(ROOT, 'bin', 'nfqwall.js');

const CLI_IP = '198.18.1.1';
const SRV_IP = '198.19.2.1';
const PORT_LO = 5200;
const PORT_HI = 5299;
const PORT_IPERF = 5201;
const PORT_RR = 5202;
const PORT_UDP = 5210;
const QUEUE = 0;

const ALL_MODES = ['forward', 'kernel-stateful', 'c-simple', 'c-batch', 'c-stateful', 'npm-nfqueue', 'nfqwall-accept-all', 'nfqwall'];
const DEFAULT_MODES = ['forward', 'kernel-stateful', 'c-simple', 'c-batch', 'npm-nfqueue', 'nfqwall-accept-all', 'nfqwall'];
const ALL_WORKLOADS = ['udp-pps', 'tcp-bulk', 'tcp-crr', 'latency'];

interface Metric {
  key: string;
  workload: string;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  ratio: boolean;
}
const METRICS: Metric[] = [
  { key: 'udp_rx_kpps', workload: 'udp-pps', label: 'udp-pps rx kpps', unit: 'kpps', higherIsBetter: true, ratio: true },
  { key: 'udp_loss_pct', workload: 'udp-pps', label: 'udp-pps loss %', unit: '%', higherIsBetter: false, ratio: false },
  { key: 'udp_tx_kpps', workload: 'udp-pps', label: 'udp-pps offered kpps', unit: 'kpps', higherIsBetter: true, ratio: false },
  { key: 'bulk1_gbps', workload: 'tcp-bulk', label: 'tcp-bulk 1 stream', unit: 'Gbit/s', higherIsBetter: true, ratio: true },
  { key: 'bulk4_gbps', workload: 'tcp-bulk', label: 'tcp-bulk 4 streams', unit: 'Gbit/s', higherIsBetter: true, ratio: true },
  { key: 'crr_cps', workload: 'tcp-crr', label: 'tcp-crr conn/s', unit: 'conn/s', higherIsBetter: true, ratio: true },
  { key: 'crr_failures', workload: 'tcp-crr', label: 'tcp-crr failures', unit: '', higherIsBetter: false, ratio: false },
  { key: 'lat_p50_us', workload: 'latency', label: 'latency p50', unit: 'us', higherIsBetter: false, ratio: true },
  { key: 'lat_p99_us', workload: 'latency', label: 'latency p99', unit: 'us', higherIsBetter: false, ratio: true },
  { key: 'fw_us_per_pkt_udp', workload: 'udp-pps', label: 'udp-pps CPU/packet (gw program)', unit: 'us', higherIsBetter: false, ratio: true },
  { key: 'fw_us_per_pkt_crr', workload: 'tcp-crr', label: 'tcp-crr CPU/packet (gw program)', unit: 'us', higherIsBetter: false, ratio: true },
];

const { values: A } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    modes: { type: 'string' },
    workloads: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    json: { type: 'string' },
    'no-micro': { type: 'boolean', default: false },
    'no-net': { type: 'boolean', default: false },
    'load-cpu': { type: 'string', default: '0' },
    'fw-cpu': { type: 'string', default: '1' },
    baseline: { type: 'string', default: 'c-batch' },
    'ready-timeout': { type: 'string', default: '30' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (A.help) {
  process.stdout.write(fs.readFileSync(__filename, 'utf8').split('*/')[0] + '*/\n');
  process.exit(0);
}
const QUICK = A.quick!;
const DURATION = Number(A.duration ?? (QUICK ? 2 : 3));
const ROUNDS = Number(A.rounds ?? (QUICK ? 1 : 3));
const MODES = A.modes
  ? A.modes
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  : DEFAULT_MODES;
const WORKLOADS = A.workloads
  ? A.workloads
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  : ALL_WORKLOADS;
const LOAD_CPU = Number(A['load-cpu']);
const FW_CPU = Number(A['fw-cpu']);
const BASELINE = A.baseline!;
const READY_TIMEOUT = Number(A['ready-timeout']);
for (const m of MODES) if (!ALL_MODES.includes(m)) die(`unknown mode ${m} (known: ${ALL_MODES.join(', ')})`);
for (const w of WORKLOADS) if (!ALL_WORKLOADS.includes(w)) die(`unknown workload ${w} (known: ${ALL_WORKLOADS.join(', ')})`);

function die(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}
function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
const pin = (cpu: number, argv: string[]) => ['taskset', '-c', String(cpu), ...argv];

// ------------------------------------------------------------------ set-up: C peers, npm peer

function prepare(): void {
  for (const t of ['ip', 'iptables-restore', 'iperf3', 'taskset', 'cc', 'make']) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) die(`missing tool: ${t} (bash scripts/setup.sh)`);
  }
  // nfqwall runs as compiled JavaScript (dist/, what bin/nfqwall.js runs when it is current),
  // as it does when installed: through tsx every imported constant is a getter call, which
  // made the per-packet path ~3x slower in this benchmark's previous runs.
  log('building nfqwall (npm run build: native addon + tsc → dist/)');
  execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  log('building the C peers (make -C bench/peers)');
  execFileSync('make', ['-s', '-C', path.join(HERE, 'peers'), 'all'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const addon = path.join(HERE, 'node_modules', 'nfqueue', 'build', 'Release', 'nfqueue.node');
  if (MODES.includes('npm-nfqueue') && !fs.existsSync(addon)) {
    log('installing the npm peer nfqueue@0.3.2 into bench/node_modules');
    spawnSync('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts'], { cwd: HERE, stdio: ['ignore', 'ignore', 'inherit'] });
    if (!fs.existsSync(addon)) {
      spawnSync('npx', ['--yes', 'node-gyp', 'rebuild'], { cwd: path.join(HERE, 'node_modules', 'nfqueue'), stdio: ['ignore', 'ignore', 'inherit'] });
    }
    if (!fs.existsSync(addon)) die('could not build the npm nfqueue addon (needs libnetfilter-queue-dev, python3, make, g++)');
  }
}

// ------------------------------------------------------------------ in-process benchmarks

function runMicro(argv: string[], timeoutMs: number): { out: string; ok: boolean; seconds: number } {
  const t0 = Date.now();
  const r = spawnSync('taskset', ['-c', String(FW_CPU), process.execPath, ...argv], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 16 << 20,
  });
  const out = (r.stdout ?? '') + (r.status !== 0 ? (r.stderr ?? '') : '');
  return { out: out.trim(), ok: r.status === 0, seconds: (Date.now() - t0) / 1000 };
}

/** The JSON-object lines of a benchmark program's output (one row each). */
function jsonLines<T>(out: string): T[] {
  return out
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as T);
}

function micro(): Record<string, unknown> {
  const res: Record<string, unknown> = {};
  log('in-process: offline engine (bench/micro/engine.ts) on CPU ' + FW_CPU);
  const eng = runMicro(['dist/bench/micro/engine.js', '--json', '--flows', QUICK ? '5000' : '20000', '--reps', QUICK ? '1' : '7'], 300_000);
  try {
    res.engine = JSON.parse(eng.out.split('\n').pop()!);
  } catch {
    res.engine = { error: eng.out.slice(-2000) };
  }
  log('in-process: connection table (bench/micro/conntrack.ts)');
  const sizes = QUICK ? ['1000', '100000'] : ['1000', '100000', '1000000', 'tcp:1000000'];
  const ct = runMicro(['--expose-gc', 'dist/bench/micro/conntrack.js', '--json', ...sizes], 600_000);
  const ctRows = jsonLines<ConntrackRow>(ct.out);
  // the same table design in C (bench/peers/ct_table.c) on the same CPU: what this machine's
  // memory allows, the reference for the lookup rates above
  log('in-process: the connection table design in C (bench/peers/ct_table.c)');
  const cSizes = sizes.filter((x) => !x.startsWith('tcp:'));
  const cr = spawnSync('taskset', ['-c', String(FW_CPU), path.join(BUILD, 'ct_table'), ...cSizes], { encoding: 'utf8', timeout: 300_000 });
  res.c_table =
    cr.status === 0 ? { rows: jsonLines<Record<string, number>>(cr.stdout ?? '') } : { error: ((cr.stdout ?? '') + (cr.stderr ?? '')).slice(-2000) };
  res.conntrack = ct.ok ? { rows: ctRows, text: ct.out } : { error: ct.out.slice(-2000) };
  const rulesFile = path.join(HERE, 'micro', 'rules.ts');
  if (fs.existsSync(rulesFile)) {
    log('in-process: rule chains (bench/micro/rules.ts)');
    const rr = runMicro(['dist/bench/micro/rules.js'], 300_000);
    const rows: Record<string, unknown>[] = [];
    for (const line of rr.out.split('\n')) {
      const m = /^\s*(\d+) rules\s+(.*?)\s+([\d.]+) Mpps\s+(\d+) ns\/packet/.exec(line);
      if (m) rows.push({ rules: Number(m[1]), case: m[2], mpps: Number(m[3]), ns_per_packet: Number(m[4]) });
    }
    res.rules = rr.ok ? { rows, text: rr.out } : { error: rr.out.slice(-2000) };
  } else res.rules = { error: 'bench/micro/rules.ts not present' };
  log('in-process: loading large rule sets (bench/micro/rule-load.ts)');
  const rl = runMicro(
    ['--expose-gc', 'dist/bench/micro/rule-load.js', '--json', ...(QUICK ? ['1000', '10000'] : ['1000', '10000', '100000', '200000'])],
    600_000,
  );
  res.rule_load = rl.ok ? { rows: jsonLines<Record<string, number>>(rl.out) } : { error: rl.out.slice(-2000) };
  log('in-process: packet latency during a reload (bench/micro/reload-latency.ts)');
  const rd = runMicro(['dist/bench/micro/reload-latency.js', '--json', QUICK ? '10000' : '100000'], 600_000);
  res.reload_latency = rd.ok ? { rows: jsonLines<Record<string, number>>(rd.out) } : { error: rd.out.slice(-2000) };
  return res;
}

function printMicro(m: Record<string, unknown>): void {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const e = m.engine as Record<string, any>;
  console.log('\nIn-process (one core, CPU ' + FW_CPU + '):');
  if (e && e.engine_pps) {
    // Per CPU-second of the engine process first: the wall-clock rate also counts the time the
    // other tenants of a shared machine held CPU 1 (issue #8 run: 0.50 Mpps wall, 1.40 CPU).
    const mp = (x: number) => (x / 1e6).toFixed(2);
    const runs = (xs: number[]) => xs.map(mp).join(', ');
    console.log(
      `  engine, all-new flows (parse → raw → conntrack → filter → confirm, rules/bench.rules): ${mp(e.engine_cpu_pps)} Mpps per CPU-second,` +
        ` ${mp(e.engine_pps)} Mpps wall (runs: ${runs(e.engine_pps_runs)}) over ${e.packets} packets / ${e.flows} flows`,
    );
    if (e.established_pps) {
      console.log(
        `  engine, established flows: ${mp(e.established_cpu_pps)} Mpps per CPU-second, ${mp(e.established_pps)} Mpps wall` +
          ` (runs: ${runs(e.established_pps_runs)}) over ${e.established_packets} packets`,
      );
    }
    if (e.calibration_mops) {
      console.log(
        `  CPU speed during the engine runs (fixed integer loop, bench/micro/engine.ts calibrate): ${(e.calibration_mops_runs as number[]).join(', ')} M iterations per CPU-second`,
      );
    }
    if (e.replay_pps) {
      console.log(
        `  nfqwall replay of the same packets as a pcap: ${(e.replay_pps / 1e3).toFixed(0)} kpps marginal` +
          ` (${e.replay_seconds.toFixed(2)} s total, ${e.replay_startup_seconds.toFixed(2)} s start-up subtracted)`,
      );
    }
  } else console.log('  engine: ' + JSON.stringify(e));
  const ct = m.conntrack as { rows?: ConntrackRow[]; error?: string };
  const c = m.c_table as { rows?: Record<string, number>[]; error?: string } | undefined;
  const cOf = (n: number) => c?.rows?.find((r) => r.entries === n);
  if (ct.rows) {
    for (const r of ct.rows) {
      const cr = r.proto === 'udp' ? cOf(r.entries) : undefined;
      const vsC = (x: number, y: number | undefined) => (y ? ` (${(x / y).toFixed(2)}x C)` : '');
      console.log(
        `  conntrack ${String(r.entries).padStart(8)} ${r.proto} entries: ${r.bytes_per_conn_rss} bytes/entry (RSS; ${r.bytes_per_conn_reserved} reserved),` +
          ` lookups ${(r.lookups_per_s / 1e6).toFixed(2)} M/s${vsC(r.lookups_per_s, cr?.lookups_per_s)},` +
          ` batched ${(r.lookups_batched_per_s / 1e6).toFixed(2)} M/s${vsC(r.lookups_batched_per_s, cr?.batched_lookups_per_s)},` +
          ` packets ${(r.packet_path_per_s / 1e6).toFixed(2)} M/s (batched ${(r.packet_path_batched_per_s / 1e6).toFixed(2)}),` +
          ` ${(r.create_per_s / 1e6).toFixed(2)} M creates/s, slowest insert ${r.slowest_insert_ms.toFixed(1)} ms` +
          (r.slowest_insert_after_warmup_ms !== null ? ` (${r.slowest_insert_after_warmup_ms.toFixed(1)} ms after the first 10,000)` : ''),
      );
    }
  } else console.log('  conntrack: ' + ct.error);
  if (c?.rows) {
    for (const r of c.rows)
      console.log(
        `  C table  ${String(r.entries).padStart(8)} udp entries: lookups ${(r.lookups_per_s / 1e6).toFixed(2)} M/s, batched ${(r.batched_lookups_per_s / 1e6).toFixed(2)} M/s`,
      );
  } else if (c) console.log('  C table: ' + c.error);
  const rl = m.rules as { rows?: Record<string, string | number>[]; error?: string };
  if (rl.rows) for (const r of rl.rows) console.log(`  rules ${String(r.rules).padStart(5)} (${r.case}): ${r.mpps} Mpps, ${r.ns_per_packet} ns/packet`);
  else console.log('  rules: ' + rl.error);
  const ld = m.rule_load as { rows?: Record<string, number>[]; error?: string };
  if (ld.rows)
    for (const r of ld.rows) console.log(`  load ${String(r.rules).padStart(6)} blocklist rules: ${r.load_ms} ms, heap +${r.heap_mb} MB, RSS +${r.rss_mb} MB`);
  else console.log('  rule load: ' + ld.error);
  const rd = m.reload_latency as { rows?: Record<string, number>[]; error?: string };
  if (rd.rows)
    for (const r of rd.rows)
      console.log(
        `  reload ${String(r.rules).padStart(6)} rules: ${r.batches_during} batches decided while it compiled (${r.sliced_compile_ms} ms); ` +
          `gap between batches median ${r.gap_median_ms} ms, p99 ${r.gap_p99_ms} ms, max ${r.gap_max_ms} ms (a blocking compile: ${r.blocking_compile_ms} ms)`,
      );
  else console.log('  reload latency: ' + rd.error);
}

// ------------------------------------------------------------------ lab, modes, workloads

type Row = Record<string, unknown>;

function gwRuleset(mode: string): string | null {
  const head = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n';
  if (mode === 'kernel-stateful') {
    return (
      head +
      '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n' +
      `-A FORWARD -p tcp -m tcp --dport ${PORT_LO}:${PORT_HI} -m conntrack --ctstate NEW -j ACCEPT\n` +
      `-A FORWARD -p udp -m udp --dport ${PORT_LO}:${PORT_HI} -m conntrack --ctstate NEW -j ACCEPT\n` +
      '-A FORWARD -p icmp -m conntrack --ctstate NEW -j ACCEPT\n-A FORWARD -j DROP\nCOMMIT\n'
    );
  }
  if (mode === 'forward') return null;
  return head + `-A FORWARD -j NFQUEUE --queue-num ${QUEUE}\nCOMMIT\n`;
}

/**
 * Kernel queue length (NFQA_CFG_QUEUE_MAXLEN) for the baseline c-batch (its default, -m 8192),
 * c-stateful and both nfqwall modes. nfqwall's own default is 4096: with it nfqwall had half
 * the queue room of the consumer it is compared with. c-simple and npm-nfqueue keep theirs.
 */
const QUEUE_MAXLEN = 8192;

/** Extra node options for the nfqwall modes (profiling: NFQWALL_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p"). */
const NODE_ARGS = (process.env.NFQWALL_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);

/** `nfqwall run` for the two nfqwall modes: the same queue settings as the C consumers. */
function nfqwallArgv(q: string, modeArgs: string[]): string[] {
  return [
    process.execPath,
    ...NODE_ARGS,
    BIN,
    'run',
    ...modeArgs,
    '--queue',
    q,
    '--queue-maxlen',
    String(QUEUE_MAXLEN),
    '--iptables',
    'off',
    '--log-level',
    'warn',
  ];
}

function consumerArgv(mode: string): string[] | null {
  const q = String(QUEUE);
  switch (mode) {
    case 'c-simple':
      return [path.join(BUILD, 'nfq_simple'), '-q', q];
    case 'c-batch':
      return [path.join(BUILD, 'nfq_batch'), '-q', q, '-m', String(QUEUE_MAXLEN)];
    case 'c-stateful':
      return [path.join(BUILD, 'nfq_stateful'), '-q', q, '-m', String(QUEUE_MAXLEN), '-P', `${PORT_LO}:${PORT_HI}`];
    case 'npm-nfqueue':
      return [process.execPath, path.join(HERE, 'peers', 'npm-nfqueue.js'), q];
    case 'nfqwall-accept-all':
      return nfqwallArgv(q, ['--accept-all']);
    case 'nfqwall':
      return nfqwallArgv(q, ['--rules', path.join(ROOT, 'rules', 'bench.rules')]);
    default:
      return null;
  }
}

async function linkStats(lab: Lab, ns: string, dev: string): Promise<{ rx: Record<string, number>; tx: Record<string, number> }> {
  const r = await lab.exec(ns, ['ip', '-j', '-s', 'link', 'show', dev], { check: true });
  const j = JSON.parse(r.stdout)[0];
  return j.stats64 ?? j.stats;
}

async function queueLine(lab: Lab): Promise<KernelQueueInfo | undefined> {
  const r = await lab.exec('gw', ['cat', '/proc/net/netfilter/nfnetlink_queue']);
  return parseKernelQueues(r.stdout).find((q) => q.queue === QUEUE);
}

function cpuTimes(): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    if (/^cpu\d/.test(line)) {
      const p = line.split(/\s+/);
      const v = p.slice(1, 9).map(Number);
      const total = v.reduce((a, b) => a + b, 0);
      out[p[0]] = [total - v[3] - v[4], total];
    }
  }
  return out;
}
function busyPct(a: Record<string, [number, number]>, b: Record<string, [number, number]>): Record<string, number> {
  const o: Record<string, number> = {};
  for (const k of Object.keys(b)) if (a[k]) o[k] = Math.round((1000 * (b[k][0] - a[k][0])) / Math.max(1, b[k][1] - a[k][1])) / 10;
  return o;
}
/** user+system CPU seconds of the live processes of process group pgid (the program under test). */
function groupCpuSeconds(pgid: number): number {
  const tck = 100;
  let total = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let s: string;
    try {
      s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid) total += Number(f[11]) + Number(f[12]);
  }
  return total / tck;
}

async function rr(lab: Lab, args: string[], timeoutMs: number): Promise<Row> {
  const r = await lab.exec('cli', pin(LOAD_CPU, [path.join(BUILD, 'rr'), ...args]), { timeoutMs });
  try {
    return JSON.parse(r.stdout) as Row;
  } catch {
    return { error: (r.stdout + r.stderr).slice(-500) };
  }
}

async function wlUdp(lab: Lab): Promise<Row> {
  const tx0 = await linkStats(lab, 'cli', 'c0');
  const rx0 = await linkStats(lab, 'srv', 's0');
  const t0 = Date.now();
  const j = await rr(lab, ['udp', SRV_IP, String(PORT_UDP), String(DURATION), '256', '64', '0'], (DURATION + 20) * 1000);
  const el = typeof j.seconds === 'number' ? j.seconds : (Date.now() - t0) / 1000;
  await sleep(500);
  const tx1 = await linkStats(lab, 'cli', 'c0');
  const rx1 = await linkStats(lab, 'srv', 's0');
  const sent = tx1.tx.packets - tx0.tx.packets + (tx1.tx.dropped - tx0.tx.dropped);
  const recv = rx1.rx.packets - rx0.rx.packets;
  return {
    udp_tx_kpps: sent / el / 1e3,
    udp_rx_kpps: recv / el / 1e3,
    udp_loss_pct: sent ? Math.max(0, 100 * (1 - recv / sent)) : null,
    udp_sent: sent,
    udp_received: recv,
    udp_sender: j,
  };
}

async function iperf(lab: Lab, streams: number): Promise<{ gbps: number | null; retr?: number; error?: string }> {
  const r = await lab.exec(
    'cli',
    pin(LOAD_CPU, ['iperf3', '-c', SRV_IP, '-p', String(PORT_IPERF), '-t', String(DURATION), '-P', String(streams), '-J', '--connect-timeout', '3000']),
    { timeoutMs: (DURATION + 20) * 1000 },
  );
  try {
    const j = JSON.parse(r.stdout);
    if (j.error) return { gbps: null, error: j.error };
    return { gbps: j.end.sum_received.bits_per_second / 1e9, retr: j.end.sum_sent?.retransmits };
  } catch (e) {
    return { gbps: null, error: `iperf3: ${(e as Error).message} ${r.stderr.slice(-300)}` };
  }
}

async function wlBulk(lab: Lab): Promise<Row> {
  const o: Row = {};
  for (const [n, key] of [
    [1, 'bulk1'],
    [4, 'bulk4'],
  ] as const) {
    const r = await iperf(lab, n);
    o[`${key}_gbps`] = r.gbps;
    o[`${key}_retransmits`] = r.retr;
    if (r.error) o[`${key}_error`] = r.error;
    await sleep(300);
  }
  return o;
}

async function wlCrr(lab: Lab): Promise<Row> {
  const j = await rr(lab, ['crr', SRV_IP, String(PORT_RR), String(DURATION), '32'], (DURATION + 20) * 1000);
  if (typeof j.cps !== 'number') return { crr_cps: null, crr_error: j.error ?? j };
  return { crr_cps: j.cps, crr_failures: j.failures, crr_conns: j.conns, crr_detail: j };
}

async function wlLat(lab: Lab): Promise<Row> {
  const j = await rr(lab, ['lat', SRV_IP, String(PORT_RR), QUICK ? '500' : '1000', '100', '64'], 60_000);
  if (typeof j.p50_us !== 'number') return { lat_p50_us: null, lat_p99_us: null, lat_error: j.error ?? j };
  return { lat_p50_us: j.p50_us, lat_p99_us: j.p99_us, lat_detail: j };
}

const WORKLOAD_FN: Record<string, (lab: Lab) => Promise<Row>> = { 'udp-pps': wlUdp, 'tcp-bulk': wlBulk, 'tcp-crr': wlCrr, latency: wlLat };

async function runModeRound(mode: string, round: number, logDir: string): Promise<Row> {
  const res: Row = { mode, round, started: new Date().toISOString(), loadavg: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3), queue: {} };
  const workloads: Record<string, Row> = {};
  res.workloads = workloads;
  const t0 = Date.now();
  const lab = await Lab.create({ prefix: 'nfqb' });
  res.lab = lab.id;
  let fwLog = '';
  try {
    await lab.exec('cli', ['sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000'], { check: true });
    await lab.exec('cli', ['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1'], { check: true });
    // udp-pps packets are counted on s0 and dropped before any socket lookup (no ICMP back)
    await lab.exec('srv', ['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', String(PORT_UDP), '-j', 'DROP'], { check: true });
    const srvLog = fs.openSync(path.join(logDir, `r${round}-${mode}-servers.log`), 'a');
    lab.spawn('srv', pin(LOAD_CPU, ['iperf3', '-s', '-p', String(PORT_IPERF)]), { stdio: ['ignore', srvLog, srvLog] });
    lab.spawn('srv', pin(LOAD_CPU, [path.join(BUILD, 'rr'), 'server', String(PORT_RR)]), { stdio: ['ignore', srvLog, srvLog] });
    fs.closeSync(srvLog);
    const rules = gwRuleset(mode);
    if (rules) await lab.exec('gw', ['iptables-restore'], { input: rules, check: true });
    const argv = consumerArgv(mode);
    let fwPid: number | undefined;
    let fw: ReturnType<Lab['spawn']> | undefined;
    if (argv) {
      fwLog = path.join(logDir, `r${round}-${mode}-firewall.log`);
      const fd = fs.openSync(fwLog, 'a');
      fw = lab.spawn('gw', pin(FW_CPU, argv), { cwd: ROOT, stdio: ['ignore', fd, fd] });
      fs.closeSync(fd);
      fwPid = fw.pid;
      const deadline = Date.now() + READY_TIMEOUT * 1000;
      let bound = false;
      while (Date.now() < deadline) {
        if (fw.exitCode !== null || fw.signalCode !== null) break;
        if ((await queueLine(lab)) !== undefined) {
          bound = true;
          break;
        }
        await sleep(100);
      }
      if (!bound) {
        res.error = `${mode}: queue not bound (${fw.exitCode ?? fw.signalCode ?? 'timeout'}): ${fs.readFileSync(fwLog, 'utf8').slice(-600)}`;
        log(res.error as string);
        return res;
      }
      await sleep(500);
    }
    await sleep(500);
    const warm = await rr(lab, ['lat', SRV_IP, String(PORT_RR), '20', '5', '64'], 20_000);
    res.warmup = warm;
    for (const w of WORKLOADS) {
      const q0 = fw ? await queueLine(lab) : undefined;
      const c0 = cpuTimes();
      const f0 = fwPid ? groupCpuSeconds(fwPid) : 0;
      const tw = Date.now();
      let out: Row;
      try {
        out = await WORKLOAD_FN[w](lab);
      } catch (e) {
        out = { error: (e as Error).message };
        log(`${mode}/${w} failed: ${(e as Error).message}`);
      }
      out.wall_s = (Date.now() - tw) / 1000;
      out.cpu_busy_pct = busyPct(c0, cpuTimes());
      const q1 = fw ? await queueLine(lab) : undefined;
      if (fwPid) out.fw_cpu_s = groupCpuSeconds(fwPid) - f0;
      if (q0 && q1) {
        const d = {
          queue_dropped: q1.queueDropped - q0.queueDropped,
          user_dropped: q1.userDropped - q0.userDropped,
          id_sequence: q1.idSequence - q0.idSequence,
        };
        (res.queue as Row)[w] = d;
        if (d.id_sequence > 0) {
          const us = ((out.fw_cpu_s as number) / d.id_sequence) * 1e6;
          out.fw_us_per_pkt = us;
          if (w === 'udp-pps') out.fw_us_per_pkt_udp = us;
          if (w === 'tcp-crr') out.fw_us_per_pkt_crr = us;
        }
      }
      workloads[w] = out;
      if (fw && (fw.exitCode !== null || fw.signalCode !== null)) {
        res.error = `${mode} died during ${w}: ${fs.readFileSync(fwLog, 'utf8').slice(-600)}`;
        log(res.error as string);
        break;
      }
      await sleep(300);
    }
  } finally {
    await lab.destroy();
    if (fwLog && fs.existsSync(fwLog)) res.firewall_log_tail = fs.readFileSync(fwLog, 'utf8').trim().split('\n').slice(-3);
    res.wall_s = (Date.now() - t0) / 1000;
  }
  return res;
}

// ------------------------------------------------------------------ summary

function fmt(v: number | null | undefined, unit: string): string {
  if (v === null || v === undefined) return '-';
  if (unit === 'kpps' || unit === 'us') return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  if (unit === 'Gbit/s') return v.toFixed(2);
  if (unit === 'conn/s') return v.toFixed(0);
  if (unit === '%') return v.toFixed(1);
  return String(Math.round(v * 100) / 100);
}

function summarize(rounds: Row[]) {
  const med: Record<string, Record<string, { median: number | null; values: number[] }>> = {};
  const ratios: Record<string, Record<string, number | null>> = {};
  for (const m of MODES) {
    med[m] = {};
    ratios[m] = {};
    for (const k of METRICS) {
      if (!WORKLOADS.includes(k.workload)) continue;
      const vals = rounds
        .filter((r) => r.mode === m)
        .map((r) => ((r.workloads as Record<string, Row>)?.[k.workload] ?? {})[k.key])
        .filter((v): v is number => typeof v === 'number');
      med[m][k.key] = { median: median(vals), values: vals };
    }
  }
  for (const m of MODES) {
    for (const k of Object.keys(med[m])) {
      const b = med[BASELINE]?.[k]?.median;
      const v = med[m][k].median;
      ratios[m][k] = b && v !== null ? v / b : null;
    }
  }
  return { med, ratios };
}

function table(med: ReturnType<typeof summarize>['med'], ratios: ReturnType<typeof summarize>['ratios']): string {
  const rows: string[][] = [['metric (median)', ...MODES]];
  for (const k of METRICS) {
    if (!WORKLOADS.includes(k.workload)) continue;
    const line = [k.unit ? `${k.label} [${k.unit}]` : k.label];
    for (const m of MODES) {
      const v = med[m][k.key]?.median;
      let cell = fmt(v, k.unit);
      if (k.key === 'udp_rx_kpps' && v !== null && v !== undefined) {
        const loss = med[m].udp_loss_pct?.median;
        if (loss !== null && loss !== undefined && loss < 1) cell = '>=' + cell;
      }
      const r = ratios[m][k.key];
      if (k.ratio && r !== null && r !== undefined) cell += ` (${r.toFixed(2)}x)`;
      line.push(cell);
    }
    rows.push(line);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const out = rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  '));
  out.splice(1, 0, w.map((x) => '-'.repeat(x)).join('  '));
  out.push(`(x) = median / median of ${BASELINE}; throughput rows: >1 = more than ${BASELINE}; latency and CPU/packet rows: <1 = less than ${BASELINE}.`);
  if (WORKLOADS.includes('udp-pps'))
    out.push(">= : udp-pps loss < 1 %: the sending side (CPU 0, incl. the kernel's per-packet path) was the limit, a lower bound for that mode.");
  return out.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) die('needs root (network namespaces, NFQUEUE, iptables inside them)');
  const tStart = Date.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const resultsDir = path.join(HERE, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const logDir = path.join(resultsDir, `logs-${stamp}`);
  fs.mkdirSync(logDir, { recursive: true });
  const jsonFile = A.json ?? path.join(resultsDir, `bench-${stamp}${QUICK ? '-quick' : ''}.json`);
  prepare();
  log(
    `${QUICK ? 'quick' : 'default'} run: modes ${MODES.join(',')}; workloads ${WORKLOADS.join(',')}; ${DURATION}s x ${ROUNDS} rounds; ` +
      `load on CPU ${LOAD_CPU}, program under test on CPU ${FW_CPU}; logs in ${path.relative(ROOT, logDir)}`,
  );
  const doc: Row = {
    tool: 'nfqwall npm run bench',
    date: new Date().toISOString(),
    host: { kernel: os.release(), cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, mem_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    args: {
      quick: QUICK,
      duration: DURATION,
      rounds: ROUNDS,
      modes: MODES,
      workloads: WORKLOADS,
      load_cpu: LOAD_CPU,
      fw_cpu: FW_CPU,
      baseline: BASELINE,
      queue_maxlen: QUEUE_MAXLEN,
    },
  };
  doc.nfqwall = {
    commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim(),
    dirty: spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim() !== '',
    runs: 'compiled dist/ (npm run build at start)',
  };
  if (!A['no-micro']) {
    doc.micro = micro();
    printMicro(doc.micro as Record<string, unknown>);
  }
  if (!A['no-net']) {
    const rounds: Row[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      for (const m of MODES) {
        log(`round ${r}/${ROUNDS} mode ${m}`);
        const res = await runModeRound(m, r, logDir);
        rounds.push(res);
        const brief: Record<string, number> = {};
        for (const o of Object.values((res.workloads as Record<string, Row>) ?? {})) {
          for (const k of METRICS) if (typeof o[k.key] === 'number') brief[k.key] = Math.round((o[k.key] as number) * 100) / 100;
        }
        log(`  ${JSON.stringify(brief)} ${Object.keys(res.queue as Row).length ? 'queue ' + JSON.stringify(res.queue) : ''}`);
      }
    }
    const { med, ratios } = summarize(rounds);
    Object.assign(doc, { rounds, medians: med, ratios });
    console.log(`\nThrough the lab (cli → gw → srv), ${DURATION}s per measurement, ${ROUNDS} interleaved round(s):`);
    console.log(table(med, ratios));
  }
  doc.wall_s = (Date.now() - tStart) / 1000;
  fs.writeFileSync(jsonFile, JSON.stringify(doc, null, 1) + '\n');
  console.log(`\nwall ${Math.round(doc.wall_s as number)} s; JSON: ${path.relative(process.cwd(), jsonFile)}`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
