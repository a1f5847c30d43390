/**
 * The ipset(8) command line (src/ipset.c, lib/session.c, lib/parse.c) run against a registry:
 * create, add, del, test, destroy, list, save, restore, flush, rename, swap, with the global
 * options -exist, -quiet, -output plain|save, -name, -terse, -sorted, -resolve wherever they
 * are. `ipset save` output is what `ipset restore` (and `--ipsets FILE` at start) reads. The
 * answer is what ipset prints: lines for stdout, a message for stderr and the exit status.
 */
import { MAX_TIMEOUT, IpsetError, defaultCreateOpts, noExt, type CreateOpts, type UserExt } from './set';
import { MAX_MAXELEM } from './hash';
import { parseAddress, parseNetPart, parsePortPart } from './elements';
import { ipsets, type IpsetRegistry } from './registry';
import { SET_TYPES, UNSUPPORTED_TYPES } from './types';
import { MAX_COMMENT } from './store';

export interface IpsetResult {
  status: number;
  out: string[];
  /** what ipset writes to stderr (without its "ipset vX: " prefix) */
  err: string | null;
}

const COMMANDS: Record<string, string> = {};
for (const [cmd, aliases] of Object.entries({
  create: ['n', '-N', 'c'],
  add: ['a', '-A'],
  del: ['d', '-D'],
  test: ['t', '-T'],
  destroy: ['x', '-X'],
  list: ['l', '-L'],
  save: ['s', '-S'],
  restore: ['r', '-R'],
  flush: ['f', '-F'],
  rename: ['e', '-E'],
  swap: ['w', '-W'],
  version: ['v', '-V'],
})) {
  COMMANDS[cmd] = cmd;
  for (const a of aliases) COMMANDS[a] = cmd;
}

interface Globals {
  exist: boolean;
  quiet: boolean;
  output: 'plain' | 'save';
  names: boolean;
  terse: boolean;
}

const usage = (m: string): IpsetError => new IpsetError(m, 2);

function uint(text: string | undefined, what: string, max = 0xffffffff): number {
  if (text === undefined) throw usage(`Syntax error: option ${what} requires a value`);
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) throw new IpsetError(`Syntax error: '${text}' is invalid as number`);
  const n = Number(text);
  if (n > max) throw new IpsetError(`Syntax error: '${text}' is out of range 0-${max}`);
  return n;
}

function createOpts(type: string, args: string[]): CreateOpts {
  const t = SET_TYPES[type];
  const o = defaultCreateOpts();
  if (t.families[0] === 0) o.family = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const allowed = t.createOptions.includes(a) || ['timeout', 'counters', 'comment'].includes(a);
    if (!allowed) {
      if (['forceadd', 'skbinfo', 'markmask'].includes(a))
        throw new IpsetError(
          `nfqwall does not support the create option ${a}: ${a === 'forceadd' ? 'the kernel evicts an element of its choosing from a full set' : 'it exists for --map-set and mark types, which nfqwall refuses'}`,
        );
      throw usage(`Unknown argument: \`${a}'`);
    }
    const v = args[i + 1];
    switch (a) {
      case 'family':
        i++;
        if (v === 'inet' || v === 'ipv4' || v === '-4') o.family = 4;
        else if (v === 'inet6' || v === 'ipv6' || v === '-6') o.family = 6;
        else throw new IpsetError(`Syntax error: unknown family ${v ?? ''}`);
        break;
      case 'hashsize': {
        i++;
        const n = uint(v, a);
        let h = 64;
        while (h < n) h *= 2;
        o.hashsize = h;
        break;
      }
      case 'maxelem':
        i++;
        o.maxelem = uint(v, a);
        if (o.maxelem > MAX_MAXELEM) throw new IpsetError(`nfqwall reserves a set's memory for maxelem at create: maxelem at most ${MAX_MAXELEM}`);
        break;
      case 'bucketsize':
        i++;
        o.bucketsize = Math.min(Math.max(uint(v, a, 255), 2), 12) & ~1;
        break;
      case 'initval':
        i++;
        o.initval = `0x${uint(v, a).toString(16).padStart(8, '0')}`;
        break;
      case 'netmask':
        i++;
        o.netmask = uint(v, a, o.family === 6 ? 128 : 32);
        if (o.netmask === 0) throw new IpsetError('Syntax error: netmask must be at least 1');
        break;
      case 'timeout':
        i++;
        o.timeout = uint(v, a, MAX_TIMEOUT);
        break;
      case 'counters':
        o.counters = true;
        break;
      case 'comment':
        o.comment = true;
        break;
      case 'size':
        i++;
        o.size = Math.max(uint(v, a), 4);
        break;
      case 'range': {
        i++;
        if (v === undefined) throw usage('Syntax error: option range requires a value');
        if (type === 'bitmap:port') {
          const [, lo, hi] = parsePortPart(`tcp:${v}`, 4);
          [o.rangeFrom, o.rangeTo] = [lo, hi];
        } else if (v.includes('-')) {
          const [x, y] = v.split('-');
          const lo = parseAddress(x, 4)[0];
          const hi = parseAddress(y, 4)[0];
          [o.rangeFrom, o.rangeTo] = lo <= hi ? [lo, hi] : [hi, lo];
        } else {
          const [[a4, c]] = parseNetPart(v, 4);
          o.rangeFrom = a4[0];
          o.rangeTo = a4[0] + 2 ** (32 - c) - 1;
        }
        break;
      }
    }
  }
  return o;
}

function elemExt(args: string[], opts: CreateOpts): UserExt {
  const e = noExt();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    switch (a) {
      case 'timeout':
        if (!opts.timeout) throw new IpsetError('Timeout cannot be used: set was created without timeout support');
        e.timeout = uint(v, a, MAX_TIMEOUT);
        i++;
        break;
      case 'packets':
      case 'bytes':
        if (!opts.counters) throw new IpsetError('Packet/byte counters cannot be used: set was created without counter support');
        if (v === undefined || !/^[0-9]+$/.test(v)) throw new IpsetError(`Syntax error: '${v ?? ''}' is invalid as number`);
        e[a] = Number(v);
        i++;
        break;
      case 'comment':
        if (!opts.comment) throw new IpsetError('Comment cannot be used: set was created without comment support');
        if (v === undefined) throw usage('Syntax error: option comment requires a value');
        if (Buffer.byteLength(v) > MAX_COMMENT) throw new IpsetError(`Syntax error: Comment is longer than the maximum allowed ${MAX_COMMENT} characters`);
        e.comment = v;
        i++;
        break;
      case 'nomatch':
        e.nomatch = true;
        break;
      case 'before':
      case 'after':
        if (v === undefined) throw usage(`Syntax error: option ${a} requires a value`);
        e[a] = v;
        i++;
        break;
      case 'skbmark':
      case 'skbprio':
      case 'skbqueue':
        throw new IpsetError(`nfqwall does not support ${a}: it is for -j SET --map-set, which nfqwall refuses`);
      default:
        throw usage(`Unknown argument: \`${a}'`);
    }
  }
  return e;
}

/** The text of sets for ipset save (NAME: that one; none: all, list:set last as the kernel dumps them). */
function saveLines(reg: IpsetRegistry, name: string | undefined, now: number): string[] {
  const sets =
    name !== undefined ? [reg.get(name)] : [...reg.list().filter((s) => s.typeName !== 'list:set'), ...reg.list().filter((s) => s.typeName === 'list:set')];
  const out: string[] = [];
  for (const s of sets) {
    out.push(`create ${s.name} ${s.typeName} ${s.header()}`);
    for (const m of s.members(now)) out.push(`add ${s.name} ${m}`);
  }
  return out;
}

function listLines(reg: IpsetRegistry, name: string | undefined, g: Globals, now: number): string[] {
  const sets =
    name !== undefined ? [reg.get(name)] : [...reg.list().filter((s) => s.typeName !== 'list:set'), ...reg.list().filter((s) => s.typeName === 'list:set')];
  if (g.names) return sets.map((s) => s.name);
  if (g.output === 'save') return saveLines(reg, name, now);
  const out: string[] = [];
  sets.forEach((s, i) => {
    if (i > 0) out.push('');
    out.push(
      `Name: ${s.name}`,
      `Type: ${s.typeName}`,
      `Revision: ${s.revision}`,
      `Header: ${s.header()}`,
      `Size in memory: ${s.memory()}`,
      `References: ${reg.references(s)}`,
      `Number of entries: ${s.count()}`,
    );
    if (!g.terse) out.push('Members:', ...s.members(now));
  });
  return out;
}

/** ipset's build_argv for a restore line: words split at blanks, "…" quoting a word (comments). */
export function splitLine(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

/** One ipset command (the words after `ipset`). restoreText: the input of `ipset restore`. */
export function runIpset(argv: string[], now: number, restoreText = '', reg: IpsetRegistry = ipsets()): IpsetResult {
  const g: Globals = { exist: false, quiet: false, output: 'plain', names: false, terse: false };
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-exist' || a === '-!') g.exist = true;
    else if (a === '-quiet' || a === '-q') g.quiet = true;
    else if (a === '-name' || a === '-n') g.names = true;
    else if (a === '-terse' || a === '-t') g.terse = true;
    else if (a === '-sorted' || a === '-s' || a === '-resolve' || a === '-r') continue;
    else if (a === '-output' || a === '-o') {
      const v = argv[++i];
      if (v !== 'plain' && v !== 'save')
        return {
          status: 2,
          out: [],
          err: `Syntax error: Unknown output mode '${v ?? ''}'${v === 'xml' || v === 'json' ? ' (nfqwall prints plain and save)' : ''}`,
        };
      g.output = v;
    } else if (a === '-file' || a === '-f')
      return { status: 2, out: [], err: 'nfqwall ipset: -file is not supported: restore reads its standard input, save writes to standard output' };
    else words.push(a);
  }
  try {
    const out = run(reg, words, g, now, restoreText);
    return { status: 0, out: typeof out === 'string' ? [] : out, err: typeof out === 'string' && !g.quiet ? out : null };
  } catch (e) {
    if (!(e instanceof IpsetError)) throw e;
    return { status: e.status, out: [], err: g.quiet && e.status === 1 ? null : e.message };
  }
}

/** stdout lines, or the warning ipset writes to stderr when it succeeds (test) */
function run(reg: IpsetRegistry, words: string[], g: Globals, now: number, restoreText: string): string[] | string {
  if (words.length === 0) throw usage('No command specified.');
  const cmd = COMMANDS[words[0]];
  if (!cmd) throw usage(`No command specified: unknown argument ${words[0]}`);
  const args = words.slice(1);
  const name = args[0];
  const need = (n: number, what: string) => {
    if (args.length < n) throw usage(`Syntax error: ${what}`);
  };
  switch (cmd) {
    case 'version':
      return ['ipset v7.17 (nfqwall), protocol version: 7'];
    case 'create': {
      need(2, 'Missing mandatory argument: setname and typename');
      const type = args[1];
      if (UNSUPPORTED_TYPES[type]) throw new IpsetError(`Kernel error received: set type ${type} is not supported by nfqwall: ${UNSUPPORTED_TYPES[type]}`);
      if (!SET_TYPES[type]) throw new IpsetError(`Syntax error: typename '${type}' is unknown`);
      reg.create(name, type, createOpts(type, args.slice(2)), g.exist);
      return [];
    }
    case 'add':
    case 'del':
    case 'test': {
      need(2, cmd === 'add' ? 'Missing mandatory argument: element' : 'Missing mandatory argument: element');
      const s = reg.get(name);
      if (cmd === 'add') s.uadd(args[1], elemExt(args.slice(2), s.opts), g.exist, now);
      else if (cmd === 'del') {
        if (args.length > 2) throw usage(`Unknown argument: \`${args[2]}'`);
        s.udel(args[1], g.exist, now);
      } else {
        if (args.length > 2 && args[2] !== 'nomatch') throw usage(`Unknown argument: \`${args[2]}'`);
        if (!s.utest(args[1], now)) throw new IpsetError(`${args[1]} is NOT in set ${name}.`);
        return `Warning: ${args[1]} is in set ${name}.`;
      }
      return [];
    }
    case 'destroy':
      reg.destroy(name);
      return [];
    case 'flush':
      for (const s of name !== undefined ? [reg.get(name)] : reg.list()) s.flush();
      return [];
    case 'list':
      return listLines(reg, name, g, now);
    case 'save':
      return saveLines(reg, name, now);
    case 'rename':
      need(2, 'Missing mandatory argument: new setname');
      reg.rename(name, args[1]);
      return [];
    case 'swap':
      need(2, 'Missing mandatory argument: to-setname');
      reg.swap(name, args[1]);
      return [];
    case 'restore':
      restore(reg, restoreText, g, now);
      return [];
  }
  return [];
}

/** ipset restore: line by line, each applied at once; the first error stops it ("Error in line N: …"). */
function restore(reg: IpsetRegistry, text: string, g: Globals, now: number): void {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const w = splitLine(lines[i]);
    if (w.length === 0 || w[0].startsWith('#')) continue;
    if (w[0] === 'quit' || w[0] === 'COMMIT') break;
    const cmd = COMMANDS[w[0]];
    if (!cmd || cmd === 'restore' || cmd === 'version') throw new IpsetError(`Error in line ${i + 1}: Unknown command ${w[0]}`, 2);
    const r = runIpset([...(g.exist ? ['-exist'] : []), ...w], now, '', reg);
    if (r.status !== 0) throw new IpsetError(`Error in line ${i + 1}: ${r.err ?? ''}`, r.status);
  }
}
