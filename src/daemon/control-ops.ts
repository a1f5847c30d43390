/**
 * Every control request of the daemon, implemented once for one table in this thread and for
 * one table per worker thread: table requests go to each table in turn (src/daemon/table-ops.ts;
 * listings streamed one table after the other, counts summed, `conntrack -S` one cpu= line per
 * table), and the daemon's own requests (sysctl, `rules -L`, reload) are answered here.
 */
import type { SyncService } from '../sync/service';
import type { ConntrackStats } from '../conntrack/stats';
import { formatStats } from '../conntrack/format';
import { applySetting } from '../conntrack/settings';
import { findSysctl, SYSCTLS, type TunableValues } from '../conntrack/sysctl';
import { elementChange, parseElementCommand } from '../rules/nft/element-command';
import type { NamedSets } from '../rules/nft/named-sets';
import type { Logger } from './log';
import type { IpsetResult } from '../rules/sets/command';
import { CHUNK_ENTRIES, ControlAborted, TableOps, type ControlOutput, type Res, type TableSource } from './table-ops';

/** One connection table as the control requests reach it (in this thread, or a worker's). */
export interface TableLink {
  /** the queue it serves (-1: none) */
  readonly queue: number;
  /** A table request (TableOps); streamed lines go to out. */
  request(req: Res, out: ControlOutput): Promise<Res>;
}

/** What the control requests read and change in the daemon. */
export interface ControlHost {
  /** the daemon's tunables (each table keeps its own copy in step) */
  readonly tun: TunableValues;
  readonly tables: readonly TableLink[];
  /** restored entries no table has claimed yet: listed, counted and deleted after the tables */
  readonly parked?: TableLink;
  /** nf_conntrack_count: the entries of every table */
  count(): number;
  /** the rules in force in iptables-save format; with the counters of every table when verbose */
  rulesText(verbose: boolean): string | Promise<string>;
  reload(): { ok: boolean; errors: string[] } | Promise<{ ok: boolean; errors: string[] }>;
  /** `nfqwall nft add/delete element …` (the words after `nft`) on the loaded rules' named sets, in every table */
  nftElement?(words: string[]): void | Promise<void>;
  /** `nfqwall nflog --group N`: the group's -j NFLOG packets streamed until the reader goes away */
  nflog?(group: number, out: ControlOutput): Promise<Res>;
  /** `nfqwall ipset …` (ipset's words; stdin for restore) on the daemon's sets, shared by every table */
  ipset?(argv: string[], stdin: string): IpsetResult | Promise<IpsetResult>;
  /** test hooks (NFQWALL_TEST_HOOKS=1), when the daemon has them */
  debug?(req: Res): Promise<Res>;
  /** state sync (--sync), when on */
  readonly sync?: SyncService;
}

/** Answers a control request (everything but ping); the control socket's side of the daemon. */
export interface ControlBackend {
  handle(req: Res, out: ControlOutput): Promise<Res>;
}

/** A table in this thread as a TableLink. */
export function localTable(src: TableSource, queue: number, now?: () => number, chunk?: number): TableLink {
  const ops = new TableOps(src, now, chunk);
  return {
    queue,
    request: async (req, out) => (await ops.handle(req, out)) ?? { ok: false, error: `unknown op ${JSON.stringify(req.op)}` },
  };
}

/** One table and its rules (a test's, or any single-table owner) as the whole daemon. */
export interface ControlTarget {
  readonly tun: TunableValues;
  readonly fw: TableSource['fw'];
  readonly rules: { format(verbose: boolean): string; readonly nftSets?: NamedSets };
  reload(): { ok: boolean; errors: string[] };
}

export function singleTableHost(t: ControlTarget, now?: () => number, chunk?: number): ControlHost {
  return {
    tun: t.tun,
    tables: [localTable({ tun: t.tun, fw: t.fw }, -1, now, chunk)],
    count: () => t.fw.ct.count,
    rulesText: (verbose) => t.rules.format(verbose),
    reload: () => t.reload(),
    nftElement: (words) => {
      const ch = elementChange(t.rules.nftSets, parseElementCommand(words));
      t.rules.nftSets!.get(ch.key)!.replace(ch.elems);
    },
  };
}

export class DaemonControl implements ControlBackend {
  constructor(
    private readonly host: ControlHost,
    private readonly log: Logger,
  ) {}

  /** The same request to every table, one after the other; a failed answer fails the request. */
  private async each(req: Res, out: ControlOutput, withParked: boolean): Promise<Res[]> {
    const links = withParked && this.host.parked ? [...this.host.tables, this.host.parked] : this.host.tables;
    const res: Res[] = [];
    for (const t of links) {
      const r = await t.request(req, out);
      if (r.ok !== true) {
        if (r.error === 'aborted') throw new ControlAborted();
        throw new Error(String(r.error));
      }
      res.push(r);
    }
    return res;
  }

  private async summed(req: Res, out: ControlOutput, withParked: boolean): Promise<number> {
    const res = await this.each(req, out, withParked);
    return res.reduce((a, x) => a + (Number(x.count) || 0), 0);
  }

  async handle(r: Res, out: ControlOutput): Promise<Res> {
    const log = this.log;
    switch (r.op) {
      case 'ct.list':
      case 'expect.list':
        return { ok: true, count: await this.summed(r, out, true) };
      case 'ct.delete': {
        const n = await this.summed(r, out, true);
        if (n > 0) log.info({ deleted: n, filter: r.filter }, 'conntrack entries deleted');
        return { ok: true, count: n };
      }
      case 'ct.flush': {
        const n = await this.summed(r, out, true);
        log.info({ deleted: n }, 'conntrack table flushed');
        return { ok: true, count: n };
      }
      case 'ct.count':
        return { ok: true, count: await this.summed(r, out, true) };
      case 'expect.flush': {
        const n = await this.summed(r, out, false);
        log.info({ deleted: n }, 'expectation table flushed');
        return { ok: true, count: n };
      }
      case 'ct.stats': {
        const per = (await this.each(r, out, false)).map((x) => x.stats as ConntrackStats);
        const total = { ...per[0] };
        for (const s of per.slice(1)) for (const k of Object.keys(total) as (keyof ConntrackStats)[]) total[k] += s[k];
        return {
          ok: true,
          line: per.map((s, i) => formatStats(s, i)).join('\n'),
          stats: total,
          perWorker: per.map((s, i) => ({ cpu: i, queue: this.host.tables[i].queue, ...s })),
          count: this.host.count(),
        };
      }
      case 'rules.list': {
        const text = await this.host.rulesText(r.verbose === true);
        const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
        for (let i = 0; i < lines.length; i += CHUNK_ENTRIES) await out.sendLines(lines.slice(i, i + CHUNK_ENTRIES));
        return { ok: true };
      }
      case 'sysctl.get': {
        if (r.name === undefined || r.name === null) return { ok: true, values: SYSCTLS.map((d) => [d.name, this.tunValue(d.key)]) };
        if (typeof r.name !== 'string') throw new Error('name must be a string');
        const d = findSysctl(r.name);
        if (!d) throw new Error(`unknown tunable '${r.name}'`);
        return { ok: true, values: [[d.name, this.tunValue(d.key)]] };
      }
      case 'sysctl.set': {
        if (typeof r.name !== 'string' || (typeof r.value !== 'string' && typeof r.value !== 'number')) throw new Error('sysctl.set needs name and value');
        // checked on a copy first: an invalid value changes no table
        const assignment = `${r.name}=${r.value}`;
        const err = applySetting({ ...this.host.tun }, assignment);
        if (err) throw new Error(err);
        await this.each({ op: 'sysctl.set', name: r.name, value: r.value }, out, false);
        applySetting(this.host.tun, assignment);
        const d = findSysctl(r.name)!;
        log.info({ name: d.name, value: this.tunValue(d.key) }, 'tunable set');
        return { ok: true, values: [[d.name, this.tunValue(d.key)]] };
      }
      case 'routes.local': {
        // every table's thread follows the local routes itself: the first one's view
        const first = this.host.tables[0];
        const res = await first.request(r, out);
        if (res.ok !== true) throw new Error(String(res.error));
        return { ok: true, count: res.count };
      }
      case 'recent': {
        // names are merged, lines listed table by table, a write goes to every table
        if (r.name === undefined || r.name === null) {
          const res = await this.each(r, out, false);
          return { ok: true, names: [...new Set(res.flatMap((x) => (x.names as string[] | undefined) ?? []))] };
        }
        if (r.write === undefined || r.write === null) return { ok: true, count: await this.summed(r, out, false) };
        await this.each(r, out, false);
        log.info({ list: r.name, write: r.write }, 'recent list changed');
        return { ok: true };
      }
      case 'nft.element': {
        if (!Array.isArray(r.words) || !r.words.every((w) => typeof w === 'string')) throw new Error('nft.element needs words');
        if (!this.host.nftElement) throw new Error('the loaded rules are not an nftables rule set');
        await this.host.nftElement(r.words);
        log.info({ command: r.words.join(' ') }, 'nft set changed');
        return { ok: true };
      }
      case 'nflog': {
        if (!this.host.nflog) throw new Error('nflog: not available here');
        return this.host.nflog(Number(r.group), out);
      }
      case 'ipset': {
        if (!Array.isArray(r.argv) || !r.argv.every((w) => typeof w === 'string')) throw new Error('ipset needs argv');
        if (!this.host.ipset) throw new Error('this daemon has no ipsets (accept-all mode)');
        const res = await this.host.ipset(r.argv as string[], typeof r.stdin === 'string' ? r.stdin : '');
        for (let i = 0; i < res.out.length; i += CHUNK_ENTRIES) await out.sendLines(res.out.slice(i, i + CHUNK_ENTRIES));
        const w = (r.argv as string[]).find((x) => !x.startsWith('-'));
        if (w && !['list', 'l', '-L', 'save', 's', '-S', 'test', 't', '-T', 'version', 'v', '-V'].includes(w))
          log.info({ command: (r.argv as string[]).join(' '), status: res.status, error: res.err ?? undefined }, 'ipset command');
        return { ok: true, status: res.status, err: res.err };
      }
      case 'reload': {
        const res = await this.host.reload();
        return res.ok ? { ok: true } : { ok: false, error: 'the rule file is invalid; the old rules stay in force', errors: res.errors };
      }
      case 'sync.commit':
      case 'sync.demote':
      case 'sync.resync':
      case 'sync.bulk':
      case 'sync.flush':
      case 'sync.list':
      case 'sync.stats':
        return this.syncOp(r, out);
      case 'debug.crash':
      case 'debug.stall':
        if (this.host.debug) return this.host.debug(r);
        throw new Error(`unknown op ${JSON.stringify(r.op)}`);
      default:
        throw new Error(`unknown op ${JSON.stringify(r.op)}`);
    }
  }

  /** `nfqwall sync …` and `conntrack -L --external` (conntrackd -c, -n, -B, -f, -e, -s). */
  private async syncOp(r: Res, out: ControlOutput): Promise<Res> {
    const sync = this.host.sync;
    if (!sync) throw new Error('state sync is off (nfqwall run --sync FILE)');
    switch (r.op) {
      case 'sync.commit': {
        const c = sync.commit();
        return { ok: true, committed: c.committed, failed: c.failed, reasons: c.reasons };
      }
      case 'sync.demote':
        return { ok: true, count: sync.demote() };
      case 'sync.resync':
        sync.requestResync();
        return { ok: true };
      case 'sync.bulk':
        return { ok: true, count: sync.bulk() };
      case 'sync.flush':
        return { ok: true, count: sync.cache.flush() };
      case 'sync.list': {
        const lines = sync.cache.lines(performance.now());
        for (let i = 0; i < lines.length; i += CHUNK_ENTRIES) await out.sendLines(lines.slice(i, i + CHUNK_ENTRIES));
        return { ok: true, count: lines.length };
      }
      default:
        return { ok: true, stats: sync.stats() };
    }
  }

  private tunValue(key: keyof TunableValues): number {
    return key === 'nf_conntrack_count' ? this.host.count() : this.host.tun[key];
  }
}
