/**
 * `nfqwall run --queues A:B` with B > A: the main thread of the worker-thread daemon. It keeps
 * what is global (iptables rules, control socket, metrics, state file, signals) and runs one
 * worker thread per queue (src/daemon/pool.ts, src/daemon/worker.ts).
 */
import { Conntrack } from '../conntrack/core';
import { createHelpers } from '../conntrack/helpers/registry';
import type { TunableValues } from '../conntrack/sysctl';
import { ControlServer } from './control';
import { IptablesRules } from './iptables';
import { startedFields, type DaemonOptions } from './daemon';
import type { Logger } from './log';
import { createRegistry, MetricsServer } from './metrics';
import { ParkedEntries } from './parked';
import { WorkerPool } from './pool';
import { RuleLoadError } from '../pipeline/load-rules';
import { StateKeeper } from './state';

export interface MultiOptions extends DaemonOptions {
  rules: string;
  stallChecks: number;
  logLevel: string;
  control: string;
  metrics?: string;
  state?: string;
  stateIntervalSec: number;
}

export async function runWorkers(opts: MultiOptions, tun: TunableValues, log: Logger): Promise<number> {
  const shared = new Int32Array(new SharedArrayBuffer(4));
  let parked: ParkedEntries | undefined;
  if (opts.state !== undefined) {
    // restored into a table of this thread; the workers claim the entries as their flows show up
    const ct = new Conntrack({ ...tun }, { helpers: createHelpers() });
    new StateKeeper(ct, opts.state, log).restore();
    parked = new ParkedEntries(ct, shared);
  }
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let exitCode = 0;
  let stopping = false;
  const stop = (reason: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    log.info({ reason }, 'stopping');
    resolveDone(code);
  };

  let pool: WorkerPool;
  try {
    pool = await WorkerPool.start({
      queues: opts.queues,
      queue: {
        copyRange: opts.copyRange,
        maxLen: opts.maxLen,
        batchSize: opts.batchSize,
        rcvbuf: opts.rcvbuf,
        failOpen: opts.failOpen,
        gso: opts.gso,
        stallChecks: opts.stallChecks,
      },
      rulesFile: opts.rules,
      tun,
      logLevel: opts.logLevel,
      logPretty: process.stderr.isTTY === true,
      log,
      parked,
      sharedCount: shared,
      testHooks: process.env.NFQWALL_TEST_HOOKS === '1',
      onWorkerLost: (queue, why) => {
        log.fatal({ queue, why }, `the worker thread of queue ${queue} is gone (${why}); stopping`);
        stop('worker lost', 1);
      },
    });
  } catch (err) {
    if (err instanceof RuleLoadError) {
      for (const line of err.errors) process.stderr.write(line + '\n');
      log.error({ file: opts.rules, errors: err.errors }, 'invalid rule file');
    } else {
      log.fatal({ err }, (err as Error).message);
      process.stderr.write(`nfqwall run: ${(err as Error).message}\n`);
    }
    return 1;
  }

  const control = new ControlServer({ path: opts.control, backend: pool, log });
  let metrics: MetricsServer | undefined;
  let ipt: IptablesRules | undefined;
  const abort = async (what: string, err: unknown) => {
    log.fatal({ err }, `${what}: ${(err as Error).message}`);
    process.stderr.write(`nfqwall run: ${what}: ${(err as Error).message}\n`);
    await pool.closeQueues();
    await pool.exit();
    await metrics?.close();
    await control.close();
    return 1;
  };
  try {
    await control.listen();
  } catch (err) {
    return abort('control socket', err);
  }
  if (opts.metrics !== undefined) {
    metrics = new MetricsServer(createRegistry({ collect: () => pool.collect(), control: () => control.counters }), log);
    try {
      await metrics.listen(opts.metrics);
    } catch (err) {
      return abort('metrics', err);
    }
  }
  if (opts.iptables === 'auto') {
    ipt = new IptablesRules({ queues: opts.queues, failOpen: opts.failOpen, kernelConntrack: opts.kernelConntrack, log });
    try {
      await ipt.install();
    } catch (err) {
      return abort('iptables', err);
    }
  }
  // before "nfqwall started", which callers wait for as the last line of the start-up
  log.info(
    { buckets: tun.nf_conntrack_buckets, max: tun.nf_conntrack_max, expect_max: tun.nf_conntrack_expect_max, rules: opts.rules, workers: pool.workers.length },
    `nf_conntrack (${tun.nf_conntrack_buckets} buckets, ${tun.nf_conntrack_max} max)`,
  );
  log.info(
    startedFields(
      opts,
      pool.workers.map((w) => w.queue),
      pool.portids,
      pool.workers.length,
    ),
    'nfqwall started',
  );

  let saving: Promise<void> | undefined;
  const save = async () => {
    if (opts.state === undefined) return;
    if (saving) await saving;
    const file = opts.state;
    saving = pool.saveState(file).then(
      (r) => log.info({ file, ...r }, 'state saved'),
      (err: Error) => log.error({ file, err }, `state save failed: ${err.message}`),
    );
    await saving;
    saving = undefined;
  };
  const timers: NodeJS.Timeout[] = [];
  if (opts.state !== undefined && opts.stateIntervalSec > 0) timers.push(setInterval(() => void save(), opts.stateIntervalSec * 1000));
  if (parked) {
    const p = parked;
    timers.push(setInterval(() => p.sweep(), 1000));
  }
  for (const t of timers) t.unref();

  const onSignal = (sig: NodeJS.Signals) => stop(sig);
  const onHup = () => void pool.reload();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHup);

  await done;
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGHUP', onHup);
  for (const t of timers) clearInterval(t);
  // every packet gets its verdict; then the tables stop changing and are saved
  const stats = await pool.closeQueues();
  if (ipt) await ipt.remove();
  log.info({ stats }, 'nfqwall stopped');
  await save();
  await pool.exit();
  await control.close();
  await metrics?.close();
  return exitCode;
}
