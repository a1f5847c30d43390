/**
 * `nfqwall lab`: the embedded demo (see src/lab/demo.ts).
 *
 *   nfqwall lab [--rules FILE] [--duration SECONDS] [--info-file FILE] [--metrics-port N]
 *               [--no-ftp] [--no-status] [-- RUN-ARGS…]
 *
 * Builds a client/gateway/server lab in network namespaces, runs the firewall on the gateway,
 * prints what to try, and tears everything down on Ctrl-C / SIGTERM / SIGHUP or after
 * --duration seconds. A second Ctrl-C kills everything at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Demo, DemoInfo, formatStatus, projectRoot, summarizeMetrics } from '../lab/demo';
import type { KernelQueueInfo } from '../queue/queue';

const USAGE = `usage: nfqwall lab [options] [-- extra options for nfqwall run]

Builds a client/gateway/server lab in network namespaces (addresses from 198.18.0.0/15 and
2001:2::/48 only), runs nfqwall on the gateway with the lab rules, starts HTTP (80, 8080) and
FTP (21) servers on the server, prints commands to try and tears everything down on Ctrl-C.
Needs root.

  --rules FILE          rule file for the gateway (default rules/lab.rules)
  --duration SECONDS    stop by itself after this many seconds (default: run until Ctrl-C)
  --info-file FILE      write the lab's namespace names, addresses, PIDs and paths there (JSON)
                        once it is up
  --metrics-port N      port of the daemon's metrics endpoint on 198.18.1.254 (default 9100)
  --no-ftp              do not start vsftpd
  --no-status           no live status line (it is shown only when stderr is a terminal)
  --ready-timeout S     seconds to wait for the daemon to bind its queue (default 30)
`;

function probeRunFlag(flag: string, value: string): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const run = require('./run') as typeof import('./run');
    run.parseRunArgs(['--accept-all', flag, value]);
    return true;
  } catch {
    return false;
  }
}

export async function main(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : argv;
  const runArgs = dd >= 0 ? argv.slice(dd + 1) : [];
  let values;
  try {
    ({ values } = parseArgs({
      args: own,
      allowPositionals: false,
      options: {
        rules: { type: 'string' },
        duration: { type: 'string' },
        'info-file': { type: 'string' },
        'metrics-port': { type: 'string', default: '9100' },
        'no-ftp': { type: 'boolean', default: false },
        'no-status': { type: 'boolean', default: false },
        'ready-timeout': { type: 'string', default: '30' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`nfqwall lab: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: not a positive number: ${v}`);
    return n;
  };
  let duration: number | undefined;
  let metricsPort: number;
  let readyTimeout: number;
  try {
    duration = num('--duration', values.duration);
    metricsPort = num('--metrics-port', values['metrics-port'])!;
    readyTimeout = num('--ready-timeout', values['ready-timeout'])!;
    if (!Number.isInteger(metricsPort) || metricsPort > 65535) throw new Error(`--metrics-port: not a port: ${metricsPort}`);
  } catch (err) {
    process.stderr.write(`nfqwall lab: ${(err as Error).message}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('nfqwall lab: needs root (network namespaces, NFQUEUE, iptables inside the lab)\n');
    return 1;
  }

  const rules = values.rules ?? path.join(projectRoot(), 'rules', 'lab.rules');
  const log = (msg: string) => process.stderr.write(`[lab] ${msg}\n`);
  const demo = new Demo({
    rules,
    metricsPort,
    runArgs,
    ftp: values['no-ftp'] ? false : 'auto',
    readyTimeoutSec: readyTimeout,
    log,
    runSupports: probeRunFlag,
  });

  // Signals: the first one starts an orderly teardown, a second one kills everything at once.
  let stopRequested: ((why: string) => void) | undefined;
  const stopSignal = new Promise<string>((r) => (stopRequested = r));
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) stopRequested!(sig);
    else {
      demo.stopNow();
      process.exit(130);
    }
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of sigs) process.on(s, onSignal);

  let info: DemoInfo;
  const starting = demo.start();
  const first = await Promise.race([
    starting.then(
      () => 'up' as const,
      (e: Error) => e,
    ),
    stopSignal,
  ]);
  if (first instanceof Error) {
    process.stderr.write(`nfqwall lab: ${first.message}\n`);
    for (const s of sigs) process.removeListener(s, onSignal);
    return 1;
  }
  if (first !== 'up') {
    // interrupted while building: wait for start() to settle, then tear down
    await starting.catch(() => undefined);
    await demo.stop();
    log(`interrupted (${first}); lab removed`);
    for (const s of sigs) process.removeListener(s, onSignal);
    return 130;
  }
  info = demo.info;
  process.stdout.write(demo.instructions());
  process.stdout.write(
    duration !== undefined ? `Stops by itself in ${duration}s (or Ctrl-C).\n` : 'Ctrl-C tears the lab down (daemon, services, namespaces).\n',
  );
  // after the instructions, and whole (rename): a script that waits for this file finds both
  if (values['info-file']) writeInfo(values['info-file'], { ...info, state: 'up' });

  // live status line
  const tty = process.stderr.isTTY && !values['no-status'];
  const t0 = Date.now();
  let prev: { q?: KernelQueueInfo; m?: ReturnType<typeof summarizeMetrics>; t: number } = { t: t0 };
  let statusBusy = false;
  let statusShown = false;
  let daemonDied = false;
  const tick = async () => {
    if (statusBusy) return;
    statusBusy = true;
    try {
      if (!demo.daemonAlive()) {
        daemonDied = true;
        stopRequested!('daemon exited');
        return;
      }
      if (!tty) return;
      const q = (await demo.queueCounters().catch(() => [])).find((x) => x.queue === 0);
      const samples = await demo.metrics().catch(() => undefined);
      const m = samples ? summarizeMetrics(samples) : undefined;
      const now = Date.now();
      const line = formatStatus((now - t0) / 1000, prev, { q, m, loggedDrops: demo.loggedDrops() }, Math.max(0.001, (now - prev.t) / 1000));
      prev = { q, m, t: now };
      process.stderr.write(`\r\x1b[2K${line}`);
      statusShown = true;
    } catch {
      /* the lab is being torn down */
    } finally {
      statusBusy = false;
    }
  };
  const timer = setInterval(() => void tick(), 1000);
  const durationTimer = duration !== undefined ? setTimeout(() => stopRequested!(`--duration ${duration}s`), duration * 1000) : undefined;

  const why = await stopSignal;
  clearInterval(timer);
  if (durationTimer) clearTimeout(durationTimer);
  if (statusShown) process.stderr.write('\r\x1b[2K');
  const tail = daemonDied ? fs.readFileSync(info.daemonLog, 'utf8').slice(-2000) : '';
  log(`stopping (${why}): daemon, services, namespaces`);
  await demo.stop();
  if (values['info-file']) {
    try {
      writeInfo(values['info-file'], { ...info, state: 'stopped' });
    } catch {
      /* the caller may have removed it */
    }
  }
  log(`lab ${info.id} removed`);
  for (const s of sigs) process.removeListener(s, onSignal);
  if (daemonDied) {
    process.stderr.write(`nfqwall lab: the daemon exited unexpectedly; its last log lines:\n${tail}\n`);
    return 1;
  }
  return why === 'SIGINT' || why === 'SIGTERM' || why === 'SIGHUP' || why.startsWith('--duration') ? 0 : 1;
}

function writeInfo(file: string, data: object): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data, null, 1) + '\n');
  fs.renameSync(tmp, file);
}
