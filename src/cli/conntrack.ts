/**
 * `nfqwall conntrack`: the connection table of a running daemon, with conntrack-tools'
 * options and output (lines on stdout, the `conntrack v1.4.8 (conntrack-tools): …` summary
 * on stderr).
 *
 *   nfqwall conntrack -L [conntrack|expect] [filters] [-o extended]
 *   nfqwall conntrack -L --external   the state sync peer's entries (conntrackd -e)
 *   nfqwall conntrack -C | -S
 *   nfqwall conntrack -D [filters]
 *   nfqwall conntrack -F [conntrack|expect]
 *
 * Filters (ORIG tuple, as conntrack-tools applies them): -p/--proto PROTO, -s/--src/--orig-src
 * ADDR[/LEN], -d/--dst/--orig-dst ADDR[/LEN], -r/--reply-src, -q/--reply-dst, --sport/
 * --orig-port-src N, --dport/--orig-port-dst N, -f/--family ipv4|ipv6, -m/--mark MARK[/MASK].
 * Plus --control PATH / --queue N to find the daemon.
 */
import { summary } from '../conntrack/format';
import type { CtFilter } from '../daemon/control';
import { ClientError, printLines, quietEpipe, request, takeTarget } from './client';
import { parseUint } from '../rules/matches/util';

const USAGE = `usage: nfqwall conntrack COMMAND [options] [--control PATH | --queue N]
commands:
  -L, --dump [conntrack|expect]   list connections (or expectations)
  -C, --count                     number of entries
  -S, --stats                     statistics (conntrack -S)
  -D, --delete [filters]          delete the matching connections (prints them)
  -F, --flush [conntrack|expect]  delete every connection (or expectation)
filters:
  -p, --proto PROTO               tcp, udp, udplite, icmp, icmpv6, sctp, dccp, gre or a number
  -s, --src, --orig-src ADDR      original source address (ADDR or ADDR/LEN)
  -d, --dst, --orig-dst ADDR      original destination address
  -r, --reply-src ADDR            reply source address
  -q, --reply-dst ADDR            reply destination address
  --sport, --orig-port-src N      original source port
  --dport, --orig-port-dst N      original destination port
  -f, --family ipv4|ipv6          address family
  -m, --mark MARK[/MASK]          mark (entries whose mark & MASK == MARK)
  -o extended                     /proc/net/nf_conntrack-like lines (layer 3 name and number first)
  --external                      with -L: the state sync peer's entries, not yet live (run --sync; conntrackd -e)
`;

const PROTOS: Record<string, number> = { tcp: 6, udp: 17, udplite: 136, icmp: 1, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132, dccp: 33, gre: 47 };

class UsageError extends Error {}

type Cmd = 'list' | 'count' | 'stats' | 'delete' | 'flush';

interface Parsed {
  cmd: Cmd;
  table: 'conntrack' | 'expect';
  filter: CtFilter;
  extended: boolean;
  external: boolean;
}

function port(v: string, name: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UsageError(`${name}: bad port '${v}'`);
  return Number(v);
}

export function parseConntrackArgs(argv: string[]): Parsed {
  let cmd: Cmd | undefined;
  let table = 'conntrack' as 'conntrack' | 'expect';
  const filter: CtFilter = {};
  let extended = false;
  let external = false;
  const setCmd = (c: Cmd) => {
    if (cmd && cmd !== c) throw new UsageError('only one command (-L, -C, -S, -D, -F) at a time');
    cmd = c;
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let inline: string | undefined;
    if (a.startsWith('--') && a.includes('=')) {
      inline = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    }
    const val = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs an argument`);
      return v;
    };
    const optTable = () => {
      const next = argv[i + 1];
      if (next === 'conntrack' || next === 'expect') {
        table = next;
        i++;
      } else if (next !== undefined && !next.startsWith('-')) throw new UsageError(`unknown table '${next}' (conntrack or expect)`);
    };
    switch (a) {
      case '-L':
      case '--dump':
        setCmd('list');
        optTable();
        break;
      case '-C':
      case '--count':
        setCmd('count');
        break;
      case '-S':
      case '--stats':
        setCmd('stats');
        break;
      case '-D':
      case '--delete':
        setCmd('delete');
        break;
      case '-F':
      case '--flush':
        setCmd('flush');
        optTable();
        break;
      case '-p':
      case '--proto': {
        const v = val().toLowerCase();
        if (/^\d+$/.test(v) && Number(v) <= 255) filter.proto = Number(v);
        else if (PROTOS[v] !== undefined) filter.proto = PROTOS[v];
        else throw new UsageError(`unknown protocol '${v}'`);
        break;
      }
      case '-s':
      case '--src':
      case '--orig-src':
        filter.src = val();
        break;
      case '-d':
      case '--dst':
      case '--orig-dst':
        filter.dst = val();
        break;
      case '-r':
      case '--reply-src':
        filter.replySrc = val();
        break;
      case '-q':
      case '--reply-dst':
        filter.replyDst = val();
        break;
      case '--sport':
      case '--orig-port-src':
        filter.sport = port(val(), a);
        break;
      case '--dport':
      case '--orig-port-dst':
        filter.dport = port(val(), a);
        break;
      case '-f':
      case '--family': {
        const v = val();
        if (v === 'ipv4') filter.family = 4;
        else if (v === 'ipv6') filter.family = 6;
        else throw new UsageError(`unknown family '${v}' (ipv4 or ipv6)`);
        break;
      }
      case '-m':
      case '--mark': {
        // parse_u32_mask: MARK[/MASK], each as strtoul base 0 reads it (0x hex, leading-0 octal)
        const v = val();
        const [m, mask, more] = v.split('/');
        const mv = parseUint(m);
        const mm = mask === undefined ? 0xffffffff : parseUint(mask);
        if (more !== undefined || mv < 0 || mm < 0) throw new UsageError(`unexpected value '${v}' with -m option`);
        filter.mark = mv;
        filter.markMask = mm;
        break;
      }
      case '-o':
      case '--output': {
        for (const o of val().split(',')) {
          if (o === 'extended') extended = true;
          else throw new UsageError(`unsupported output format '${o}' (extended)`);
        }
        break;
      }
      case '--external':
        external = true;
        break;
      case '-h':
      case '--help':
        throw new HelpRequested();
      default:
        throw new UsageError(`unknown option '${argv[i]}'`);
    }
  }
  if (!cmd) throw new UsageError('no command given (-L, -C, -S, -D or -F)');
  const hasFilter = Object.keys(filter).length > 0;
  if (hasFilter && !(cmd === 'list' || cmd === 'delete')) throw new UsageError('filters apply to -L and -D only');
  if (hasFilter && table === 'expect') throw new UsageError('filters apply to the conntrack table only');
  if (external && (cmd !== 'list' || table !== 'conntrack' || hasFilter || extended)) throw new UsageError('--external goes with -L alone');
  return { cmd, table, filter, extended, external };
}

class HelpRequested extends Error {}

export async function main(argv: string[]): Promise<number> {
  let target;
  let p: Parsed;
  try {
    target = takeTarget(argv);
    p = parseConntrackArgs(target.rest);
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(USAGE);
      return 0;
    }
    process.stderr.write(`nfqwall conntrack: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  quietEpipe();
  const err = (m: string) => process.stderr.write(m + '\n');
  try {
    if (p.external) {
      const r = await request(target.path, { op: 'sync.list' }, printLines);
      if (!r.ok) throw new ClientError(r.error ?? 'failed');
      err(summary.shown(Number(r.count)));
    } else if (p.cmd === 'list') {
      const op = p.table === 'expect' ? 'expect.list' : 'ct.list';
      const r = await request(target.path, { op, filter: p.filter, extended: p.extended }, printLines);
      if (!r.ok) throw new ClientError(r.error ?? 'failed');
      err(p.table === 'expect' ? summary.expectShown(Number(r.count)) : summary.shown(Number(r.count)));
    } else if (p.cmd === 'delete') {
      const r = await request(target.path, { op: 'ct.delete', filter: p.filter }, printLines);
      if (!r.ok) throw new ClientError(r.error ?? 'failed');
      err(summary.deleted(Number(r.count)));
    } else if (p.cmd === 'flush') {
      const r = await request(target.path, { op: p.table === 'expect' ? 'expect.flush' : 'ct.flush' });
      if (!r.ok) throw new ClientError(r.error ?? 'failed');
      err(p.table === 'expect' ? summary.expectFlushed() : summary.flushed());
    } else if (p.cmd === 'count') {
      const r = await request(target.path, { op: 'ct.count' });
      if (!r.ok) throw new ClientError(r.error ?? 'failed');
      process.stdout.write(`${r.count}\n`);
    } else {
      const r = await request(target.path, { op: 'ct.stats' });
      if (!r.ok) throw new ClientError(r.error ?? 'failed');
      process.stdout.write(`${r.line}\n`);
    }
  } catch (e) {
    process.stderr.write(`nfqwall conntrack: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
