/**
 * `nfqwall uninstall [--queue N | --queues A:B]`: removes nfqwall's iptables/ip6tables rules of
 * that queue (range) in this network namespace — the chain and every jump to it, raw and
 * filter, in one iptables-restore commit per table. A fail-closed daemon leaves them in place
 * when it stops (the kernel drops the queued traffic while nobody reads it); taking them away,
 * which opens the gateway to its own iptables policy, is this explicit act. While a queue of
 * the range is still bound in this namespace (/proc/net/netfilter/nfnetlink_queue: a daemon
 * reads it) it refuses, since the running daemon would go on without its rules; --force
 * removes them all the same.
 */
import { parseArgs } from 'node:util';
import { chainName, IptablesRules } from '../daemon/iptables';
import { parseQueueSpec } from '../daemon/options';
import { findNetlinkOwner, readKernelQueues, type KernelQueueInfo } from '../queue/queue';

const USAGE = `usage: nfqwall uninstall [--queue N | --queues A:B] [--force]

Removes the iptables and ip6tables rules nfqwall run --iptables auto installed for that queue
(default 0) or range: chain NFQWALL[-qN | -qA-B] in the filter and raw tables and every jump to
it. Exit 0 also when there was nothing to remove. Refused (exit 1) while a queue of the range is
still bound in this network namespace, i.e. a daemon is reading it, unless --force.
`;

/** What uninstall reads besides iptables (tests replace it). */
export interface UninstallDeps {
  kernelQueues(): KernelQueueInfo[];
  owner(portid: number): { pid?: number; comm?: string };
}

const realDeps: UninstallDeps = { kernelQueues: () => readKernelQueues(), owner: findNetlinkOwner };

/** The refusal for queues of the range still bound, or null. */
export function boundQueuesError(first: number, last: number, deps: UninstallDeps): string | null {
  const bound = deps.kernelQueues().filter((q) => q.queue >= first && q.queue <= last);
  if (bound.length === 0) return null;
  const who = bound.map((q) => {
    const o = deps.owner(q.portid);
    const by = o.pid !== undefined ? `pid ${o.pid}${o.comm ? ` (${o.comm})` : ''}` : `netlink port ${q.portid}`;
    return `queue ${q.queue} by ${by}`;
  });
  return `a daemon is still reading ${who.join(', ')}: stop it first (removing the rules under it would pass the traffic it filters to the iptables policy), or use --force`;
}

export async function main(argv: string[], deps: UninstallDeps = realDeps): Promise<number> {
  let queues;
  let force = false;
  try {
    const { values } = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        queue: { type: 'string' },
        queues: { type: 'string' },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (values.queue !== undefined && values.queues !== undefined) throw new Error('--queue and --queues are exclusive');
    queues = parseQueueSpec(values.queues ?? values.queue ?? '0');
    if (values.queue !== undefined && queues.first !== queues.last) throw new Error('--queue takes one number; use --queues A:B');
    force = values.force === true;
  } catch (err) {
    process.stderr.write(`nfqwall uninstall: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const busy = boundQueuesError(queues.first, queues.last, deps);
  if (busy !== null && !force) {
    process.stderr.write(`nfqwall uninstall: ${busy}\n`);
    return 1;
  }
  const warnings: string[] = [];
  const rules = new IptablesRules({
    queues,
    failOpen: false,
    kernelConntrack: 'notrack',
    log: { info: () => {}, warn: (o) => warnings.push(...((o as { errors?: string[] }).errors ?? [])) },
  });
  const n = await rules.remove();
  for (const w of warnings) process.stderr.write(`nfqwall uninstall: ${w}\n`);
  if (warnings.length > 0) return 1;
  process.stdout.write(
    n > 0 ? `removed ${chainName(queues)} and its jumps (${n === 1 ? 'one family' : 'iptables and ip6tables'})\n` : `no ${chainName(queues)} rules here\n`,
  );
  return 0;
}
