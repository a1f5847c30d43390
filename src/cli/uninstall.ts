/**
 * `nfqwall uninstall [--queue N | --queues A:B]`: removes nfqwall's iptables/ip6tables rules of
 * that queue (range) in this network namespace — the chain and every jump to it, raw and
 * filter, in one iptables-restore commit per table. A fail-closed daemon leaves them in place
 * when it stops (the kernel drops the queued traffic while nobody reads it); taking them away,
 * which opens the gateway to its own iptables policy, is this explicit act.
 */
import { parseArgs } from 'node:util';
import { chainName, IptablesRules } from '../daemon/iptables';
import { parseQueueSpec } from '../daemon/options';

const USAGE = `usage: nfqwall uninstall [--queue N | --queues A:B]

Removes the iptables and ip6tables rules nfqwall run --iptables auto installed for that queue
(default 0) or range: chain NFQWALL[-qN | -qA-B] in the filter and raw tables and every jump to
it. Exit 0 also when there was nothing to remove.
`;

export async function main(argv: string[]): Promise<number> {
  let queues;
  try {
    const { values } = parseArgs({
      args: argv,
      allowPositionals: false,
      options: { queue: { type: 'string' }, queues: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (values.queue !== undefined && values.queues !== undefined) throw new Error('--queue and --queues are exclusive');
    queues = parseQueueSpec(values.queues ?? values.queue ?? '0');
    if (values.queue !== undefined && queues.first !== queues.last) throw new Error('--queue takes one number; use --queues A:B');
  } catch (err) {
    process.stderr.write(`nfqwall uninstall: ${(err as Error).message}\n${USAGE}`);
    return 2;
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
