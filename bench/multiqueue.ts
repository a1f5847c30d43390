/**
 * `node --import tsx bench/multiqueue.ts [--rounds N] [--duration S] [--clients N]`: nfqwall
 * with one queue (`run --queue 0`, main thread) against two (`run --queues 0:1`, one worker
 * thread per queue) in a namespace lab (198.18.0.0/15 only; names unique per run; deleted on
 * exit), under rules/bench.rules. The kernel balances by address pair, so the load comes
 * from N client addresses at once (iperf3 -B ADDR, one server port each): TCP bulk and
 * 64-byte UDP. Nothing is pinned: the load tools share the machine's cores with nfqwall,
 * as they would on a small gateway's own tests. Prints medians and the 2-queue/1-queue
 * ratio; no thresholds. Needs root.
 */
import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../src/lab/netns';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '6' }, clients: { type: 'string', default: '8' } },
});
const ROUNDS = Number(values.rounds);
const DURATION = Number(values.duration);
const CLIENTS = Number(values.clients);
const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'nfqwall.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main(): Promise<void> {
  const lab = await Lab.create({ prefix: 'mqb' });
  try {
    const srcs = Array.from({ length: CLIENTS }, (_, i) => `198.18.1.${100 + i}`);
    for (const a of srcs) await lab.exec('cli', ['ip', 'addr', 'add', `${a}/24`, 'dev', 'c0'], { check: true });
    for (let i = 0; i < CLIENTS; i++) lab.spawn('srv', ['iperf3', '-s', '-p', String(5201 + i)]);
    await sleep(500);
    const results: Record<string, { tcp: number[]; udp: number[] }> = { '1 queue': { tcp: [], udp: [] }, '2 queues': { tcp: [], udp: [] } };
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of Object.keys(results)) {
        const q = mode === '1 queue' ? ['--queue', '0'] : ['--queues', '0:1'];
        const d = lab.spawn('gw', [
          process.execPath,
          BIN,
          'run',
          '--rules',
          path.join(ROOT, 'rules', 'bench.rules'),
          ...q,
          '--log-level',
          'warn',
          '--control',
          `/tmp/mqb-${lab.id}.sock`,
        ]);
        await sleep(2500);
        for (const kind of ['tcp', 'udp'] as const) {
          const runs = await Promise.all(
            srcs.map((src, i) =>
              lab.exec('cli', [
                'iperf3',
                '-c',
                A.srv4,
                '-p',
                String(5201 + i),
                '-B',
                src,
                '-t',
                String(DURATION),
                '-J',
                ...(kind === 'udp' ? ['-u', '-b', '0', '-l', '64'] : []),
              ]),
            ),
          );
          let total = 0;
          for (const r of runs) {
            try {
              const j = JSON.parse(r.stdout);
              total += kind === 'tcp' ? j.end.sum_received.bits_per_second / 1e9 : j.end.sum.packets / DURATION / 1e3;
              if (kind === 'udp') total -= (j.end.sum.lost_packets ?? 0) / DURATION / 1e3;
            } catch {
              /* a failed client adds nothing */
            }
          }
          results[mode][kind].push(total);
          await sleep(300);
        }
        await lab.kill(d);
      }
    }
    const line = (k: 'tcp' | 'udp', unit: string) => {
      const one = median(results['1 queue'][k]);
      const two = median(results['2 queues'][k]);
      return `${k === 'tcp' ? 'TCP bulk' : 'UDP 64 B delivered'}: 1 queue ${one.toFixed(2)} ${unit}, 2 queues ${two.toFixed(2)} ${unit}, ratio ${(two / one).toFixed(2)} (runs: ${JSON.stringify(results['1 queue'][k].map((x) => +x.toFixed(2)))} vs ${JSON.stringify(results['2 queues'][k].map((x) => +x.toFixed(2)))})`;
    };
    console.log(`${CLIENTS} client addresses, ${DURATION} s per run, ${ROUNDS} rounds, medians`);
    console.log(line('tcp', 'Gbit/s'));
    console.log(line('udp', 'kpps'));
  } finally {
    await lab.destroy();
  }
}

void main();
