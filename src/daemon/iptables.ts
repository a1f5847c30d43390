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
 * Fail-closed across restarts: install() writes the chains and jumps of one family in one
 * `iptables-restore --noflush` input, each table one commit (raw, then filter): a crashed or
 * stopped run's chain of the same name is flushed and refilled and its jumps are replaced
 * inside that commit, so the queue rule is never absent — there is no moment in which the
 * namespace's own policy decides what nfqwall should. remove() (`nfqwall uninstall`, or a
 * stop under --fail-open) takes the jumps and chains away the same way.
 */
import { execFile } from 'node:child_process';
import { NO_PREROUTING, type PreroutingNeed } from '../rules/prerouting';

export type QueueSpec = { first: number; last: number };

export interface IptablesOptions {
  queues: QueueSpec;
  failOpen: boolean;
  kernelConntrack: 'keep' | 'notrack';
  /** Families to manage (default both). */
  families?: Array<4 | 6>;
  /** the packets the rules need before routing (src/rules/prerouting.ts): the raw `CHAIN-pre` chain queues them */
  prerouting?: PreroutingNeed;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

type Bin = 'iptables' | 'ip6tables';
type Table = 'filter' | 'raw';

export function chainName(q: QueueSpec): string {
  if (q.first === 0 && q.last === 0) return 'NFQWALL';
  return q.first === q.last ? `NFQWALL-q${q.first}` : `NFQWALL-q${q.first}-${q.last}`;
}

function run(bin: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(bin, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

const BUILTIN: Record<Table, string[]> = { filter: ['INPUT', 'FORWARD', 'OUTPUT'], raw: ['PREROUTING', 'OUTPUT'] };

/** Splits one `iptables -S` line into argv (handles double quotes). */
function splitRule(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

/** One argv as an iptables-restore line (quoted where it has spaces or quotes). */
function restoreLine(args: string[]): string {
  return args.map((a) => (/^[^\s"']+$/.test(a) ? a : `"${a.replace(/(["\\])/g, '\\$1')}"`)).join(' ');
}

export class IptablesRules {
  readonly chain: string;
  constructor(private readonly opts: IptablesOptions) {
    this.chain = chainName(opts.queues);
  }

  private bins(): Bin[] {
    const fams = this.opts.families ?? [4, 6];
    return fams.map((f) => (f === 4 ? 'iptables' : 'ip6tables'));
  }

  /** What is there now: does chain `chain` exist in bin/table, and every rule elsewhere that jumps to it (as `-S` prints it). */
  private async current(bin: Bin, table: Table, chain = this.chain): Promise<{ exists: boolean; jumps: string[][] }> {
    const r = await run(bin, ['-w', '-t', table, '-S']);
    if (r.code !== 0) throw new Error(`${bin} -t ${table} -S: ${r.stderr.trim() || `exit ${r.code}`}`);
    let exists = false;
    const jumps: string[][] = [];
    for (const line of r.stdout.split('\n')) {
      const a = splitRule(line.trim());
      if (a[0] === '-N' && a[1] === chain) exists = true;
      if (a[0] === '-A' && a[1] !== chain) {
        const j = a.indexOf('-j');
        if (j >= 0 && a[j + 1] === chain) jumps.push(a.slice(1));
      }
    }
    return { exists, jumps };
  }

  /** The raw chain of the pre-routing crossing (jumped to from raw PREROUTING after the main chain). */
  get preChain(): string {
    return `${this.chain}-pre`;
  }

  /** The queue target of both crossings. */
  private queueTarget(): string[] {
    const { queues, failOpen } = this.opts;
    const target =
      queues.first === queues.last
        ? ['-j', 'NFQUEUE', '--queue-num', String(queues.first)]
        : ['-j', 'NFQUEUE', '--queue-balance', `${queues.first}:${queues.last}`];
    if (failOpen) target.push('--queue-bypass');
    return target;
  }

  /** The pre-routing chain's rules for a family: one queue rule per match of the rules' need (none: no chain). */
  private preBody(bin: Bin): string[][] {
    const need = (this.opts.prerouting ?? NO_PREROUTING)[bin === 'iptables' ? 4 : 6];
    return need.map((m) => [...m, ...this.queueTarget()]);
  }

  get prerouting(): PreroutingNeed {
    return this.opts.prerouting ?? NO_PREROUTING;
  }

  /** Replace the pre-routing need (a reload changed the rules); install() puts it in force. */
  setPrerouting(need: PreroutingNeed): void {
    this.opts.prerouting = need;
  }

  /** Runs one iptables-restore --noflush input (each table one commit). */
  private async restore(bin: Bin, input: string): Promise<void> {
    const r = await run(`${bin}-restore`, ['-w', '--noflush'], input);
    if (r.code !== 0) throw new Error(`${bin}-restore --noflush: ${r.stderr.trim() || `exit ${r.code}`}\n${input}`);
  }

  /** The chain's rules in `table`. */
  private body(table: Table): string[][] {
    const { kernelConntrack } = this.opts;
    if (table === 'filter') return [this.queueTarget()];
    // The conntrack match registers the conntrack + defrag hooks in this namespace (CT --notrack
    // alone does not: xt_CT skips nf_ct_netns_get for notrack), so the queue sees whole datagrams.
    const anchor = ['-m', 'conntrack', '--ctstate', 'UNTRACKED', '-m', 'comment', '--comment', 'nfqwall: keeps kernel defragmentation on'];
    return kernelConntrack === 'notrack' ? [['-j', 'CT', '--notrack'], anchor] : [anchor];
  }

  /**
   * Installs the chains and jumps, replacing those of an earlier run of the same queues in
   * the same commit (see the file comment). Throws when a family's input is refused; that
   * family is then as it was.
   */
  async install(): Promise<void> {
    const { failOpen, kernelConntrack } = this.opts;
    for (const bin of this.bins()) {
      const lines: string[] = [];
      let stale = 0;
      // raw first: nothing is queued before the raw chain is in place
      for (const table of ['raw', 'filter'] as const) {
        const now = await this.current(bin, table);
        if (now.exists) stale += 1 + now.jumps.length;
        lines.push(`*${table}`, `:${this.chain} - [0:0]`);
        for (const j of now.jumps) lines.push(restoreLine(['-D', ...j]));
        for (const spec of this.body(table)) lines.push(restoreLine(['-A', this.chain, ...spec]));
        for (const builtin of BUILTIN[table]) lines.push(restoreLine(['-I', builtin, '1', '-j', this.chain]));
        if (table === 'raw') {
          // the pre-routing crossing: replaced (or removed when no longer needed) in the same commit
          const pre = await this.current(bin, table, this.preChain);
          const body = this.preBody(bin);
          if (pre.exists) stale += 1 + pre.jumps.length;
          for (const j of pre.jumps) lines.push(restoreLine(['-D', ...j]));
          if (body.length > 0) {
            lines.splice(1, 0, `:${this.preChain} - [0:0]`);
            lines.push(restoreLine(['-F', this.preChain]));
            for (const spec of body) lines.push(restoreLine(['-A', this.preChain, ...spec]));
            lines.push(restoreLine(['-I', 'PREROUTING', '2', '-j', this.preChain]));
          } else if (pre.exists) lines.push(restoreLine(['-F', this.preChain]), restoreLine(['-X', this.preChain]));
        }
        lines.push('COMMIT');
      }
      await this.restore(bin, lines.join('\n') + '\n');
      if (stale)
        this.opts.log?.warn(
          { bin, chain: this.chain, rules: stale },
          'removed stale nfqwall rules from an earlier run (replaced in one iptables-restore commit per table)',
        );
    }
    this.opts.log?.info({ chain: this.chain, families: this.bins(), kernelConntrack, queueBypass: failOpen }, 'iptables rules installed');
  }

  /** Removes the chains and every jump to them (filter first: queueing stops before raw goes). Returns how many families had them. */
  async remove(): Promise<number> {
    const errors: string[] = [];
    let removed = 0;
    for (const bin of this.bins()) {
      const lines: string[] = [];
      for (const table of ['filter', 'raw'] as const) {
        let now;
        try {
          now = await this.current(bin, table);
        } catch (err) {
          errors.push((err as Error).message);
          continue;
        }
        if (!now.exists && now.jumps.length === 0) continue;
        lines.push(`*${table}`);
        for (const j of now.jumps) lines.push(restoreLine(['-D', ...j]));
        if (now.exists) lines.push(restoreLine(['-F', this.chain]), restoreLine(['-X', this.chain]));
        if (table === 'raw') {
          const pre = await this.current(bin, table, this.preChain).catch(() => ({ exists: false, jumps: [] as string[][] }));
          for (const j of pre.jumps) lines.push(restoreLine(['-D', ...j]));
          if (pre.exists) lines.push(restoreLine(['-F', this.preChain]), restoreLine(['-X', this.preChain]));
        }
        lines.push('COMMIT');
      }
      if (lines.length === 0) continue;
      try {
        await this.restore(bin, lines.join('\n') + '\n');
        removed++;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length) this.opts.log?.warn({ errors }, 'some iptables rules could not be removed');
    return removed;
  }
}
