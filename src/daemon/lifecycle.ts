/**
 * The daemon's one lifecycle, for every mode (src/daemon/backend.ts has what differs):
 *
 *   start   tunables → rule file checked → backend (restore --state) → queues bound (the
 *           firewall decides from here) → control socket → metrics → iptables rules (one
 *           iptables-restore commit per table replaces an earlier run's: never a gap)
 *           → "nfqwall started" → state timer, signals
 *   run     SIGHUP: reload; SIGTERM/SIGINT: stop; a lost worker thread: stop with exit code 1
 *   stop    signals and timers off → queues closed (every packet held gets its verdict)
 *           → iptables rules: kept under fail-closed (the kernel drops what nobody reads,
 *           until the next start replaces them or `nfqwall uninstall`), removed under
 *           --fail-open → "nfqwall stopped" → final state save → backend, control socket and
 *           metrics closed
 *
 * A failure during start-up undoes what was done (in reverse) and returns 1.
 */
import { defaultTunables, type TunableValues } from '../conntrack/sysctl';
import { RuleLoadError } from '../pipeline/load-rules';
import type { Backend } from './backend';
import { ControlServer } from './control';
import { nflogHub } from './nflog';
import { DaemonControl, type ControlHost } from './control-ops';
import { IptablesRules } from './iptables';
import { samePrerouting } from '../rules/prerouting';
import { warnFwmarkRules } from './fwmark-check';
import { LocalBackend } from './local';
import { createLogger, type Logger } from './log';
import { createRegistry, MetricsServer } from './metrics';
import { startedFields, startTunables, type DaemonOptions } from './options';
import { WorkerPool } from './pool';
import { DaemonRules, natQueuesError } from './ruleset';
import { DaemonIpsets, loadIpsetFile } from './ipsets';
import { StateFileWriter } from './state';
import { parseSyncConfig, SyncConfigError, type SyncConfig } from '../sync/config';
import { SyncService } from '../sync/service';
import { readFileSync } from 'node:fs';

function createBackend(opts: DaemonOptions, tun: TunableValues, log: Logger, rules: DaemonRules | undefined, onLost: (why: string) => void): Backend {
  const queue = {
    copyRange: opts.copyRange,
    maxLen: opts.maxLen,
    batchSize: opts.batchSize,
    rcvbuf: opts.rcvbuf,
    failOpen: opts.failOpen,
    gso: opts.gso,
    stallChecks: opts.stallChecks,
  };
  if (!rules || opts.queues.first === opts.queues.last) return new LocalBackend({ queues: opts.queues, queue, tun, log, rules: rules?.current.rules });
  return new WorkerPool({
    queues: opts.queues,
    queue,
    rulesFile: rules.file,
    rules: rules.current,
    tun,
    logLevel: opts.logLevel,
    logPretty: process.stderr.isTTY === true,
    log,
    testHooks: process.env.NFQWALL_TEST_HOOKS === '1',
    onWorkerLost: (queue, why) => {
      log.fatal({ queue, why }, `the worker thread of queue ${queue} is gone (${why}); stopping`);
      onLost('worker lost');
    },
  });
}

/** One state file from every table, through the one writer. */
async function saveState(backend: Backend, file: string, log: Logger): Promise<void> {
  const savedAt = Date.now();
  let w: StateFileWriter | undefined;
  try {
    const exps = await backend.stateExpectations(savedAt);
    w = new StateFileWriter(file, savedAt, backend.count(), exps.length);
    await backend.saveInto(w, savedAt);
    const r = w.finish(exps);
    log.info({ file, ...r }, 'state saved');
  } catch (err) {
    w?.abort();
    log.error({ file, err }, `state save failed: ${(err as Error).message}`);
  }
}

/** Runs the daemon until SIGTERM/SIGINT (or a lost worker); returns the exit code. */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const log = createLogger({ level: opts.logLevel });
  const tun = defaultTunables();
  const tunErrors = startTunables(tun, opts);
  if (tunErrors.length > 0) {
    for (const line of tunErrors) process.stderr.write(line + '\n');
    log.error({ errors: tunErrors }, 'invalid tunables');
    return 1;
  }
  let rules: DaemonRules | undefined;
  if (opts.ipsets !== undefined && !opts.acceptAll) {
    const errs = loadIpsetFile(opts.ipsets, log);
    if (errs.length > 0) {
      for (const line of errs) process.stderr.write(line + '\n');
      log.error({ file: opts.ipsets, errors: errs }, 'invalid ipset file');
      return 1;
    }
  }
  if (opts.acceptAll) {
    if (opts.rules) log.warn({ rules: opts.rules }, '--accept-all: the rule file is ignored');
    log.warn('accept-all mode: no connection tracking, no rules, every packet is accepted');
  } else {
    try {
      rules = new DaemonRules(opts.rules!, log);
    } catch (err) {
      if (!(err instanceof RuleLoadError)) throw err;
      for (const line of err.errors) process.stderr.write(line + '\n');
      log.error({ file: opts.rules, errors: err.errors }, 'invalid rule file');
      return 1;
    }
  }

  if (rules && opts.queues.first !== opts.queues.last) {
    const natRefusal = natQueuesError(rules.file, rules.current.rules);
    if (natRefusal) {
      process.stderr.write(natRefusal + '\n');
      log.error({ file: opts.rules, errors: [natRefusal] }, 'invalid rule file');
      return 1;
    }
    rules.multiQueue = true;
  }

  let syncCfg: SyncConfig | undefined;
  if (opts.sync !== undefined) {
    try {
      syncCfg = parseSyncConfig(readFileSync(opts.sync, 'utf8'), opts.sync);
    } catch (err) {
      const lines = err instanceof SyncConfigError ? err.errors : [`${opts.sync}: ${(err as Error).message}`];
      for (const line of lines) process.stderr.write(line + '\n');
      log.error({ file: opts.sync, errors: lines }, 'invalid sync file');
      return 1;
    }
  }

  let resolveDone!: (code: number) => void;
  const done = new Promise<{ reason: string; code: number }>((r) => (resolveDone = (code) => r({ reason: stopReason, code })));
  let stopReason = '';
  let stopping = false;
  const stop = (reason: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    stopReason = reason;
    resolveDone(code);
  };

  const backend = createBackend(opts, tun, log, rules, (why) => stop(why, 1));
  rules?.attach(backend);
  const stateFile = rules ? opts.state : undefined;
  // before the queues open: the restored entries are there for the first packet
  if (stateFile !== undefined) backend.restore(stateFile);

  const undo: Array<() => Promise<void>> = [];
  const fail = async (what: string, err: unknown): Promise<number> => {
    const msg = `${what}${(err as Error).message}`;
    log.fatal({ err }, msg);
    process.stderr.write(`nfqwall run: ${msg}\n`);
    for (const u of undo.reverse()) await u();
    return 1;
  };
  // before the queues open: the first packets' entries are announced to the peer
  let sync: SyncService | undefined;
  if (syncCfg !== undefined) {
    const ct = backend instanceof LocalBackend ? backend.conntrack : undefined;
    if (!ct) return fail('--sync: ', new Error('needs the connection table of one queue'));
    sync = new SyncService(syncCfg, ct, log);
    try {
      await sync.start();
    } catch (err) {
      return fail('--sync: ', err);
    }
    const sy = sync;
    undo.push(async () => sy.stop());
  }
  let started;
  try {
    started = await backend.start();
  } catch (err) {
    return fail('', err);
  }
  undo.push(async () => {
    await backend.closeQueues();
    await backend.close();
  });

  let control: ControlServer | undefined;
  const sets = rules ? new DaemonIpsets(backend.syncIpsets ? (d) => backend.syncIpsets!(d) : undefined) : undefined;
  if (rules) {
    const r = rules;
    const host: ControlHost = {
      tun,
      tables: backend.tables,
      parked: backend.parked,
      count: () => backend.count(),
      rulesText: (verbose) => r.text(verbose),
      reload: () => r.reload(),
      nftElement: (words) => r.nftElement(words),
      nflog: (group, out) => nflogHub.subscribe(group, out),
      ipset: (argv, stdin) => sets!.run(argv, stdin),
      debug: backend.debug ? (req) => backend.debug!(req) : undefined,
      sync,
    };
    const c = new ControlServer({ path: opts.control, backend: new DaemonControl(host, log), log, maxSessions: opts.controlMaxClients });
    control = c;
    try {
      await c.listen();
    } catch (err) {
      return fail('control socket: ', err);
    }
    undo.push(() => c.close());
  }

  let metrics: MetricsServer | undefined;
  if (opts.metrics !== undefined) {
    if (!rules) log.warn('--metrics needs --rules (there are no firewall counters in accept-all mode); not started');
    else {
      const r = rules;
      const c = control;
      const collect = async () => ({
        ...(await backend.collect()),
        ruleCount: r.current.rules.ruleCount,
        reloads: r.reloads,
        reloadFailures: r.reloadFailures,
        sync: sync?.stats(),
      });
      const m = new MetricsServer(createRegistry({ collect, control: c ? () => c.counters : undefined }), log);
      metrics = m;
      try {
        await m.listen(opts.metrics);
      } catch (err) {
        return fail('metrics: ', err);
      }
      undo.push(() => m.close());
    }
  }

  let ipt: IptablesRules | undefined;
  if (opts.iptables === 'auto') {
    ipt = new IptablesRules({
      queues: opts.queues,
      failOpen: opts.failOpen,
      kernelConntrack: opts.kernelConntrack,
      log,
      prerouting: rules?.current.rules.prerouting,
    });
    const ours = ipt;
    if (rules)
      rules.onSwapped = async (next) => {
        if (next.twoCrossings === true) await warnFwmarkRules(log);
        if (samePrerouting(next.prerouting, ours.prerouting)) return;
        ours.setPrerouting(next.prerouting);
        try {
          await ours.install();
        } catch (err) {
          log.error({ err }, `iptables: the pre-routing crossing of the new rules could not be installed: ${(err as Error).message}`);
        }
      };
    if (rules?.current.rules.twoCrossings === true) await warnFwmarkRules(log);
    try {
      await ipt.install();
    } catch (err) {
      // a family refused stays as it was; under fail-open what the others got goes again
      if (opts.failOpen) undo.push(async () => void (await ours.remove()));
      return fail('iptables: ', err);
    }
  }

  if (rules) {
    // before "nfqwall started", which callers wait for as the last line of the start-up
    log.info(
      { buckets: tun.nf_conntrack_buckets, max: tun.nf_conntrack_max, expect_max: tun.nf_conntrack_expect_max, rules: opts.rules, workers: started.workers },
      `nf_conntrack (${tun.nf_conntrack_buckets} buckets, ${tun.nf_conntrack_max} max)`,
    );
  }
  log.info(startedFields(opts, started.queues, started.portids, started.workers), 'nfqwall started');

  let saving: Promise<void> | undefined;
  const save = async () => {
    if (stateFile === undefined) return;
    while (saving) await saving;
    saving = saveState(backend, stateFile, log);
    await saving;
    saving = undefined;
  };
  const timer = stateFile !== undefined && opts.stateIntervalSec > 0 ? setInterval(() => void save(), opts.stateIntervalSec * 1000) : undefined;
  timer?.unref();

  const onSignal = (sig: NodeJS.Signals) => stop(sig);
  const onHup = () => void rules?.reload();
  // keepalived's notify scripts: SIGUSR1 = become primary (nfqwall sync commit), SIGUSR2 = backup (sync demote)
  const onUsr1 = () => sync?.commit();
  const onUsr2 = () => sync?.demote();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHup);
  if (sync) {
    process.on('SIGUSR1', onUsr1);
    process.on('SIGUSR2', onUsr2);
  }

  const { reason, code } = await done;
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGHUP', onHup);
  process.removeListener('SIGUSR1', onUsr1);
  process.removeListener('SIGUSR2', onUsr2);
  if (timer) clearInterval(timer);
  // every packet gets its verdict; then the tables stop changing and are saved
  const stats = await backend.closeQueues();
  if (ipt && opts.failOpen) await ipt.remove();
  else if (ipt)
    log.info(
      { chain: ipt.chain },
      'iptables rules kept (fail-closed): the kernel drops the queued traffic until nfqwall runs again; `nfqwall uninstall` removes them',
    );
  log.info({ reason, stats }, 'nfqwall stopped');
  sync?.stop();
  await save();
  sets?.close();
  await backend.close();
  nflogHub.close();
  await control?.close();
  await metrics?.close();
  return code;
}
