/**
 * `nfqwall run`: the daemon.
 *
 *   nfqwall run --rules FILE | --nft FILE [--queue N | --queues A:B] [--fail-open] [--iptables auto|off]
 *               [--kernel-conntrack keep|notrack] [--copy-range N] [--queue-maxlen N]
 *               [--batch N] [--rcvbuf BYTES] [--no-gso] [--log-level LEVEL]
 *               [--set NAME=VALUE]... [--sysctl FILE] [--control PATH] [--metrics HOST:PORT]
 *               [--state FILE] [--state-interval SEC] [--ipsets FILE] [--sync FILE]
 *   nfqwall run --accept-all …   data-path benchmark/diagnostic mode: no tracking, no rules,
 *                                every packet ACCEPT.
 *
 * This file parses the arguments; src/daemon/lifecycle.ts runs the daemon.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isNftJson } from '../rules/index';
import { DEFAULT_MAX_SESSIONS, defaultControlPath } from '../daemon/control';
import { runDaemon } from '../daemon/lifecycle';
import { parseQueueSpec, type DaemonOptions } from '../daemon/options';

export type RunOptions = DaemonOptions;

const USAGE = `usage: nfqwall run --rules FILE [options]
       nfqwall run --accept-all [options]

  --rules FILE                 rule file (iptables-restore format, or the JSON of nft -j list ruleset)
  --nft FILE                   the same, and the file must be nft -j JSON
  --accept-all                 data-path benchmark/diagnostic mode: no tracking, no rules, every packet ACCEPT
  --queue N | --queues A:B     NFQUEUE number(s) (default 0); A:B opens every queue A..B and uses --queue-balance
  --fail-open                  kernel accepts packets when nfqwall is gone or the queue is full (default fail-closed)
  --iptables auto|off          install nfqwall's own iptables jump rules (default auto), replacing an earlier
                               run's in one commit; at exit fail-closed keeps them (the kernel drops while
                               nfqwall is gone; nfqwall uninstall removes them), --fail-open removes them
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
  --control-max-clients N      control connections served at once, more are refused (default ${DEFAULT_MAX_SESSIONS})
  --metrics HOST:PORT          Prometheus metrics at http://HOST:PORT/metrics
  --state FILE                 save the connection table on exit (and every --state-interval s), restore it at start
  --state-interval SEC         seconds between periodic state saves (default 60, 0 = only on exit)
  --ipsets FILE                restore these ipsets (an \`ipset save\` file) at start; \`nfqwall ipset\` changes them
  --sync FILE                  state sync with a peer gateway in conntrackd's protocol (NOTRACK over UDP or
                               multicast; README "State sync"); one queue only
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

/** Whether FILE holds an nft -j rule set (unreadable: false, the loader then says why). */
function isNftFile(file: string): boolean {
  try {
    return isNftJson(readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
}

export function parseRunArgs(argv: string[]): RunOptions {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      rules: { type: 'string' },
      nft: { type: 'string' },
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
      'control-max-clients': { type: 'string' },
      metrics: { type: 'string' },
      state: { type: 'string' },
      'state-interval': { type: 'string' },
      ipsets: { type: 'string' },
      'stall-timeout': { type: 'string' },
      sync: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) throw new HelpRequested();
  if (values.nft !== undefined) {
    if (values.rules !== undefined) throw new UsageError('--rules and --nft are exclusive');
    if (!isNftFile(values.nft)) throw new UsageError(`--nft ${values.nft}: not the JSON of nft -j list ruleset`);
  }
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
  if (values.sync !== undefined && (values['accept-all'] || queues.first !== queues.last))
    throw new UsageError('--sync needs the connection table of one queue (not --accept-all, not --queues A:B with B > A)');
  const kc = values['kernel-conntrack']!;
  if (kc !== 'keep' && kc !== 'notrack') throw new UsageError(`--kernel-conntrack must be keep or notrack (got ${kc})`);
  return {
    rules: values.rules ?? values.nft,
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
    controlMaxClients: int('--control-max-clients', values['control-max-clients'], DEFAULT_MAX_SESSIONS, 1, 1 << 20),
    metrics: values.metrics,
    state: values.state,
    ipsets: values.ipsets,
    stateIntervalSec: int('--state-interval', values['state-interval'], 60, 0, 86400 * 365),
    stallChecks: int('--stall-timeout', values['stall-timeout'], 5, 0, 86400),
    sync: values.sync,
  };
}

class HelpRequested extends Error {}

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
  return runDaemon(opts);
}
