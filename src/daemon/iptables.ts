/**
 * nfqwall's own iptables/ip6tables rules in the current network namespace.
 *
 * filter: chain NFQWALL[-qA[-B]] with one rule `-j NFQUEUE --queue-num N` (or `--queue-balance A:B`,
 *         plus `--queue-bypass` under fail-open), jumped to from the top of INPUT, FORWARD, OUTPUT.
 * raw:    chain of the same name jumped to from PREROUTING and OUTPUT:
 *         notrack (default): `-j CT --notrack` so the kernel's conntrack neither tracks nor drops
 *         the queued traffic, then a target-less `-m conntrack --ctstate UNTRACKED` rule (the
 *         "defrag anchor"); keep: only the anchor.
 *
 * Fragments (measured in the lab, kernel 6.x, iptables-nft): with only `-j CT --notrack` the
 * queue receives the raw IPv4/IPv6 fragments — xt_CT does not call nf_ct_netns_get for
 * --notrack, so neither conntrack nor the defrag hooks get registered in the namespace. The
 * conntrack match does register them (nf_ct_netns_get -> nf_defrag_ipv4/ipv6_enable); the
 * defrag hooks run at priority -400, before raw (-300) and filter, so with the anchor the queue
 * sees whole datagrams and forwarding re-fragments them on the way out. Tested in
 * test/e2e/datapath.test.ts ("fragmented UDP … reassembled").
 *
 * At install, stale chains of the same name from a crashed run (and every jump to them from the
 * built-in chains) are removed first. remove() deletes exactly what install() added.
 */
import { execFile } from 'node:child_process';

export type QueueSpec = { first: number; last: number };

export interface IptablesOptions {
  queues: QueueSpec;
  failOpen: boolean;
  kernelConntrack: 'keep' | 'notrack';
  /** Families to manage (default both). */
  families?: Array<4 | 6>;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

interface Rule {
  bin: 'iptables' | 'ip6tables';
  table: 'filter' | 'raw';
  chain: string;
  spec: string[];
}

export function chainName(q: QueueSpec): string {
  if (q.first === 0 && q.last === 0) return 'NFQWALL';
  return q.first === q.last ? `NFQWALL-q${q.first}` : `NFQWALL-q${q.first}-${q.last}`;
}

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function must(bin: string, args: string[]): Promise<void> {
  const r = await run(bin, ['-w', ...args]);
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
}

const BUILTIN: Record<'filter' | 'raw', string[]> = { filter: ['INPUT', 'FORWARD', 'OUTPUT'], raw: ['PREROUTING', 'OUTPUT'] };

/** Splits one `iptables -S` line into argv (handles double quotes). */
function splitRule(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

export class IptablesRules {
  readonly chain: string;
  private installed: Rule[] = [];
  private chains: Array<{ bin: Rule['bin']; table: Rule['table'] }> = [];
  constructor(private readonly opts: IptablesOptions) {
    this.chain = chainName(opts.queues);
  }

  private bins(): Array<Rule['bin']> {
    const fams = this.opts.families ?? [4, 6];
    return fams.map((f) => (f === 4 ? 'iptables' : 'ip6tables'));
  }

  /** Removes a chain of our name in bin/table and every jump to it (stale state from a crashed run). */
  private async purge(bin: Rule['bin'], table: Rule['table']): Promise<number> {
    const r = await run(bin, ['-w', '-t', table, '-S']);
    if (r.code !== 0) return 0;
    let removed = 0;
    let exists = false;
    for (const line of r.stdout.split('\n')) {
      const a = splitRule(line.trim());
      if (a[0] === '-N' && a[1] === this.chain) exists = true;
      if (a[0] === '-A' && a[1] !== this.chain) {
        const j = a.indexOf('-j');
        if (j >= 0 && a[j + 1] === this.chain) {
          await must(bin, ['-t', table, '-D', ...a.slice(1)]);
          removed++;
        }
      }
    }
    if (exists) {
      await must(bin, ['-t', table, '-F', this.chain]);
      await must(bin, ['-t', table, '-X', this.chain]);
      removed++;
    }
    return removed;
  }

  async install(): Promise<void> {
    const { queues, failOpen, kernelConntrack } = this.opts;
    const target =
      queues.first === queues.last
        ? ['-j', 'NFQUEUE', '--queue-num', String(queues.first)]
        : ['-j', 'NFQUEUE', '--queue-balance', `${queues.first}:${queues.last}`];
    if (failOpen) target.push('--queue-bypass');
    // The conntrack match registers the conntrack + defrag hooks in this namespace (CT --notrack
    // alone does not: xt_CT skips nf_ct_netns_get for notrack), so the queue sees whole datagrams.
    const anchor = ['-m', 'conntrack', '--ctstate', 'UNTRACKED', '-m', 'comment', '--comment', 'nfqwall: keeps kernel defragmentation on'];
    const raw: string[][] = kernelConntrack === 'notrack' ? [['-j', 'CT', '--notrack'], anchor] : [anchor];
    try {
      for (const bin of this.bins()) {
        for (const table of ['raw', 'filter'] as const) {
          const stale = await this.purge(bin, table);
          if (stale) this.opts.log?.warn({ bin, table, chain: this.chain, rules: stale }, 'removed stale nfqwall rules from an earlier run');
          await must(bin, ['-t', table, '-N', this.chain]);
          this.chains.push({ bin, table });
          for (const spec of table === 'raw' ? raw : [target]) await must(bin, ['-t', table, '-A', this.chain, ...spec]);
        }
        // Jumps last, raw before filter: nothing is queued before the chains are complete.
        for (const table of ['raw', 'filter'] as const) {
          for (const builtin of BUILTIN[table]) {
            const jump: Rule = { bin, table, chain: builtin, spec: ['-j', this.chain] };
            await must(bin, ['-t', table, '-I', builtin, '1', ...jump.spec]);
            this.installed.push(jump);
          }
        }
      }
    } catch (err) {
      await this.remove();
      throw err;
    }
    this.opts.log?.info({ chain: this.chain, families: this.bins(), kernelConntrack, queueBypass: failOpen }, 'iptables rules installed');
  }

  /** Deletes exactly the jumps and chains install() added. Safe to call twice. */
  async remove(): Promise<void> {
    const errors: string[] = [];
    // Filter jumps first (stop queueing), then raw.
    const jumps = this.installed.slice().sort((a, b) => (a.table === b.table ? 0 : a.table === 'filter' ? -1 : 1));
    for (const j of jumps) {
      const r = await run(j.bin, ['-w', '-t', j.table, '-D', j.chain, ...j.spec]);
      if (r.code !== 0) errors.push(`${j.bin} -t ${j.table} -D ${j.chain} ${j.spec.join(' ')}: ${r.stderr.trim()}`);
    }
    this.installed = [];
    for (const c of this.chains.reverse()) {
      for (const op of ['-F', '-X']) {
        const r = await run(c.bin, ['-w', '-t', c.table, op, this.chain]);
        if (r.code !== 0) errors.push(`${c.bin} -t ${c.table} ${op} ${this.chain}: ${r.stderr.trim()}`);
      }
    }
    this.chains = [];
    if (errors.length) this.opts.log?.warn({ errors }, 'some iptables rules could not be removed');
  }
}
