/**
 * `nfqwall run`: the daemon.
 *
 *   nfqwall run --rules FILE [--queue N | --queues A:B] [--fail-open] [--iptables auto|off]
 *               [--kernel-conntrack keep|notrack] [--copy-range N] [--queue-maxlen N]
 *               [--batch N] [--rcvbuf BYTES] [--no-gso] [--log-level LEVEL]
 *               [--set NAME=VALUE]... [--sysctl FILE] [--control PATH] [--metrics HOST:PORT]
 *               [--state FILE] [--state-interval SEC]
 *   nfqwall run --accept-all …   data-path benchmark/diagnostic mode: no tracking, no rules,
 *                                every packet ACCEPT.
 *
 * The firewall itself plugs in at createHandler(): it returns the per-queue batch handler.
 */
import { parseArgs } from 'node:util';
import { NF_ACCEPT } from '../queue/layout';
import { BatchHandler, DaemonOptions, parseQueueSpec, startDaemon } from '../daemon/daemon';
import { createLogger, Logger } from '../daemon/log';
import { FirewallService } from '../daemon/service';
import { RuleLoadError } from '../pipeline/load-rules';
import { defaultTunables, type TunableValues } from '../conntrack/sysctl';
import { applySetting, parseSysctlText } from '../conntrack/settings';
import * as fs from 'node:fs';
import { ControlServer, defaultControlPath } from '../daemon/control';
import { createRegistry, MetricsServer } from '../daemon/metrics';
import type { Queue } from '../queue/queue';
import { StateKeeper } from '../daemon/state';
import { runWorkers } from '../daemon/multi';

export interface RunOptions extends DaemonOptions {
  rules?: string;
  acceptAll: boolean;
  logLevel: string;
  /** --set NAME=VALUE, in order (applied after --sysctl FILE) */
  set: string[];
  sysctlFile?: string;
  control: string;
  metrics?: string;
  state?: string;
  stateIntervalSec: number;
  /** seconds a queue may hold packets for us while we receive none before it is reopened (0 = never) */
  stallChecks: number;
}

const USAGE = `usage: nfqwall run --rules FILE [options]
       nfqwall run --accept-all [options]

  --rules FILE                 rule file (iptables-restore format)
  --accept-all                 data-path benchmark/diagnostic mode: no tracking, no rules, every packet ACCEPT
  --queue N | --queues A:B     NFQUEUE number(s) (default 0); A:B opens every queue A..B and uses --queue-balance
  --fail-open                  kernel accepts packets when nfqwall is gone or the queue is full (default fail-closed)
  --iptables auto|off          install (and on exit remove) nfqwall's own iptables jump rules (default auto)
  --kernel-conntrack keep|notrack
                               notrack (default): raw-table CT --notrack for the queued traffic; keep: leave kernel tracking on
  --copy-range N               bytes of each packet copied to nfqwall (default 65535)
  --queue-maxlen N             packets the kernel holds per queue waiting for a verdict (default 4096)
  --batch N                    packets per receive batch, 1..256 (default 64)
  --rcvbuf BYTES               netlink receive buffer (default 8388608)
  --no-gso                     let the kernel segment GSO packets before queueing
  --log-level LEVEL            fatal|error|warn|info|debug|trace|silent (default info)
  --set NAME=VALUE             a tunable (repeatable; kernel names, e.g. net.netfilter.nf_conntrack_max=262144)
  --sysctl FILE                tunables in sysctl.conf syntax (applied before --set)
  --control PATH               control socket for the client commands (default /run/nfqwall/queue-N.sock;
                               the client commands find a sole daemon without it)
  --metrics HOST:PORT          Prometheus metrics at http://HOST:PORT/metrics
  --state FILE                 save the connection table on exit (and every --state-interval s), restore it at start
  --state-interval SEC         seconds between periodic state saves (default 60, 0 = only on exit)
  --stall-timeout SEC          reopen a queue that holds packets for nfqwall but delivered none for SEC s (default 5, 0 = off)

With --queues A:B (B > A) each queue runs in its own worker thread with its own connection
table; the kernel's --queue-balance keeps both directions of a flow on one queue (README).
`;

function int(name: string, v: string | undefined, def: number, lo: number, hi: number): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v)) throw new UsageError(`${name}: not a number: ${v}`);
  const n = Number(v);
  if (n < lo || n > hi) throw new UsageError(`${name}: must be in ${lo}..${hi} (got ${v})`);
  return n;
}

class UsageError extends Error {}

export function parseRunArgs(argv: string[]): RunOptions {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      rules: { type: 'string' },
      'accept-all': { type: 'boolean', default: false },
      queue: { type: 'string' },
      queues: { type: 'string' },
      'fail-open': { type: 'boolean', default: false },
      iptables: { type: 'string', default: 'auto' },
      'kernel-conntrack': { type: 'string', default: 'notrack' },
      'copy-range': { type: 'string' },
      'queue-maxlen': { type: 'string' },
      batch: { type: 'string' },
      rcvbuf: { type: 'string' },
      'no-gso': { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
      set: { type: 'string', multiple: true },
      sysctl: { type: 'string' },
      control: { type: 'string' },
      metrics: { type: 'string' },
      state: { type: 'string' },
      'state-interval': { type: 'string' },
      'stall-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) throw new HelpRequested();
  if (values.queue !== undefined && values.queues !== undefined) throw new UsageError('--queue and --queues are exclusive');
  let queues;
  try {
    queues = values.queues !== undefined ? parseQueueSpec(values.queues) : parseQueueSpec(values.queue ?? '0');
    if (values.queue !== undefined && queues.first !== queues.last) throw new Error('--queue takes one number; use --queues A:B');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const ipt = values.iptables!;
  if (ipt !== 'auto' && ipt !== 'off') throw new UsageError(`--iptables must be auto or off (got ${ipt})`);
  const kc = values['kernel-conntrack']!;
  if (kc !== 'keep' && kc !== 'notrack') throw new UsageError(`--kernel-conntrack must be keep or notrack (got ${kc})`);
  return {
    rules: values.rules,
    acceptAll: values['accept-all']!,
    queues,
    failOpen: values['fail-open']!,
    iptables: ipt,
    kernelConntrack: kc,
    copyRange: int('--copy-range', values['copy-range'], 0xffff, 0, 0xffff),
    maxLen: int('--queue-maxlen', values['queue-maxlen'], 4096, 1, 0x7fffffff),
    batchSize: int('--batch', values.batch, 64, 1, 256),
    rcvbuf: int('--rcvbuf', values.rcvbuf, 8 << 20, 0, 0x7fffffff),
    gso: !values['no-gso'],
    logLevel: values['log-level']!,
    set: values.set ?? [],
    sysctlFile: values.sysctl,
    control: values.control ?? defaultControlPath(queues.first),
    metrics: values.metrics,
    state: values.state,
    stateIntervalSec: int('--state-interval', values['state-interval'], 60, 0, 86400 * 365),
    stallChecks: int('--stall-timeout', values['stall-timeout'], 5, 0, 86400),
  };
}

class HelpRequested extends Error {}

/**
 * Returns, per queue, the handler that decides a batch (queues opened in the main thread: one
 * queue, or --accept-all).
 * --accept-all: every packet ACCEPT. --rules: the stateful firewall.
 */
export function createHandler(opts: RunOptions, log: Logger, service?: FirewallService): (queue: number) => BatchHandler {
  if (opts.acceptAll) {
    if (opts.rules) log.warn({ rules: opts.rules }, '--accept-all: the rule file is ignored');
    log.warn('accept-all mode: no connection tracking, no rules, every packet is accepted');
    return () => (batch) => {
      batch.verdicts.fill(NF_ACCEPT, 0, batch.count);
    };
  }
  if (!service) throw new UsageError('--rules FILE is required (or --accept-all)');
  return () => service.handleBatch;
}

export async function main(argv: string[]): Promise<number> {
  let opts: RunOptions;
  try {
    opts = parseRunArgs(argv);
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(USAGE);
      return 0;
    }
    process.stderr.write(`nfqwall run: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!opts.acceptAll && !opts.rules) {
    process.stderr.write(`nfqwall run: --rules FILE is required (or --accept-all)\n${USAGE}`);
    return 2;
  }
  const log = createLogger({ level: opts.logLevel });
  const tun = defaultTunables();
  const tunErrors = startTunables(tun, opts);
  if (tunErrors.length > 0) {
    for (const line of tunErrors) process.stderr.write(line + '\n');
    log.error({ errors: tunErrors }, 'invalid tunables');
    return 1;
  }
  if (!opts.acceptAll && opts.queues.last > opts.queues.first) {
    // one worker thread per queue, each with its own table (src/daemon/multi.ts)
    return runWorkers({ ...opts, rules: opts.rules! }, tun, log);
  }
  let service: FirewallService | undefined;
  if (!opts.acceptAll) {
    try {
      service = new FirewallService({ rulesFile: opts.rules!, tun, log });
    } catch (err) {
      if (err instanceof RuleLoadError) {
        for (const line of err.errors) process.stderr.write(line + '\n');
        log.error({ file: opts.rules, errors: err.errors }, 'invalid rule file');
      } else process.stderr.write(`nfqwall run: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let handlerFor;
  try {
    handlerFor = createHandler(opts, log, service);
  } catch (err) {
    process.stderr.write(`nfqwall run: ${(err as Error).message}\n`);
    return 1;
  }
  let state: StateKeeper | undefined;
  if (service && opts.state !== undefined) {
    // before the queues open: restored entries are in place for the first packet
    state = new StateKeeper(service.fw.ct, opts.state, log);
    state.restore();
  }
  let control: ControlServer | undefined;
  if (service) {
    control = new ControlServer({ path: opts.control, target: service, log });
    try {
      await control.listen();
    } catch (err) {
      log.fatal({ err, path: opts.control }, `control socket: ${(err as Error).message}`);
      process.stderr.write(`nfqwall run: control socket: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let metrics: MetricsServer | undefined;
  let openQueues: readonly Queue[] = [];
  if (opts.metrics !== undefined) {
    if (!service) log.warn('--metrics needs --rules (there are no firewall counters in accept-all mode); not started');
    else {
      const c = control;
      const reg = createRegistry({ service, queues: () => openQueues, control: c ? () => c.counters : undefined });
      metrics = new MetricsServer(reg, log);
      try {
        await metrics.listen(opts.metrics);
      } catch (err) {
        await control?.close();
        log.fatal({ err }, `metrics: ${(err as Error).message}`);
        process.stderr.write(`nfqwall run: metrics: ${(err as Error).message}\n`);
        return 1;
      }
    }
  }
  if (service) {
    // before "nfqwall started", which callers wait for as the last line of the start-up
    const t = service.tun;
    log.info(
      { buckets: t.nf_conntrack_buckets, max: t.nf_conntrack_max, expect_max: t.nf_conntrack_expect_max, rules: opts.rules },
      `nf_conntrack (${t.nf_conntrack_buckets} buckets, ${t.nf_conntrack_max} max)`,
    );
  }
  let daemon;
  try {
    daemon = await startDaemon(opts, handlerFor, log);
  } catch (err) {
    await metrics?.close();
    await control?.close();
    log.fatal({ err }, (err as Error).message);
    process.stderr.write(`nfqwall run: ${(err as Error).message}\n`);
    return 1;
  }
  openQueues = daemon.queues;
  state?.start(opts.stateIntervalSec);
  if (service) {
    service.start();
    const s = service;
    const onHup = () => void s.reload();
    process.on('SIGHUP', onHup);
    void daemon.done.then(() => {
      process.removeListener('SIGHUP', onHup);
      s.stop();
    });
  }
  const code = await daemon.done;
  // the queues are closed: the table no longer changes; save it, then close the sockets
  await state?.stop();
  await control?.close();
  await metrics?.close();
  return code;
}

/**
 * Tunables at start: `--sysctl FILE` (sysctl.conf syntax) first, then every `--set`, applied to
 * tun before the table is created (so nf_conntrack_buckets / nf_conntrack_max take effect).
 * Returns error lines (`FILE:LINE: message`, `--set ARG: message`); empty when all applied.
 */
export function startTunables(tun: TunableValues, opts: Pick<RunOptions, 'set' | 'sysctlFile'>): string[] {
  const errors: string[] = [];
  if (opts.sysctlFile !== undefined) {
    let text: string | undefined;
    try {
      text = fs.readFileSync(opts.sysctlFile, 'utf8');
    } catch (err) {
      errors.push(`${opts.sysctlFile}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text !== undefined) {
      const r = parseSysctlText(text);
      for (const e of r.errors) errors.push(`${opts.sysctlFile}:${e.line}: ${e.message}`);
      if (r.errors.length === 0) for (const st of r.settings) tun[st.key] = st.value;
    }
  }
  for (const a of opts.set) {
    const err = applySetting(tun, a);
    if (err) errors.push(`--set ${a}: ${err}`);
  }
  return errors;
}
