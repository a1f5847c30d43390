/**
 * -m set: libxt_set.c revision 4 (--match-set NAME src|dst[,…] with `!`, --return-nomatch,
 * ! --update-counters, ! --update-subcounters, --packets-eq/lt/gt, --bytes-eq/lt/gt, eq
 * invertible) and xt_set.c set_match_v4 over the thread's ipsets (src/rules/sets/): the
 * counters are compared inside the set (ip_set_match_extensions, after the element's own
 * counters are updated). A set that does not exist is refused as libxt_set refuses it.
 */
import type { CompiledMatch, MatchModule, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { ipsets, type SetRef } from '../sets/registry';
import {
  AdtOpt,
  CNT_EQ,
  CNT_GT,
  CNT_LT,
  CNT_NE,
  CNT_NONE,
  FLAG_MATCH_COUNTERS,
  FLAG_RETURN_NOMATCH,
  FLAG_SKIP_COUNTER_UPDATE,
  FLAG_SKIP_SUBCOUNTER_UPDATE,
  ipSetTest,
} from '../sets/set';

/** IPSET_DIM_MAX */
const DIM_MAX = 6;

export interface SetUse {
  name: string;
  /** bit d (1-based dimension) set: that dimension reads the source */
  flags: number;
  dim: number;
}

/** parse_dirs: src|dst[,…], at most 6 (strncmp over three letters, as libxt_set). */
export function parseDirs(tok: Token, env: ParseEnv): { flags: number; dim: number } | null {
  const parts = tok.text.split(',');
  if (parts.length > DIM_MAX) {
    env.error(tok, `Can't be more src/dst options than ${DIM_MAX}.`);
    return null;
  }
  let flags = 0;
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith('src')) flags |= 1 << (i + 1);
    else if (!parts[i].startsWith('dst')) {
      env.error(tok, "You must spefify (the comma separated list of) 'src' or 'dst'.");
      return null;
    }
  }
  return { flags, dim: parts.length };
}

export function formatDirs(u: SetUse): string {
  const out: string[] = [];
  for (let i = 1; i <= u.dim; i++) out.push(u.flags & (1 << i) ? 'src' : 'dst');
  return out.join(',');
}

/** get_set_byname: the set must exist when the rule is read. */
export function setUse(nameTok: Token, dirsTok: Token, env: ParseEnv): SetUse | null {
  if (!ipsets().byName(nameTok.text)) {
    env.error(nameTok, `Set ${nameTok.text} doesn't exist.`);
    return null;
  }
  const d = parseDirs(dirsTok, env);
  return d ? { name: nameTok.text, ...d } : null;
}

export interface SetMatchState {
  use: SetUse | null;
  inv: boolean;
  returnNomatch: boolean;
  skipCounters: boolean;
  skipSubcounters: boolean;
  packetsOp: number;
  packets: number;
  bytesOp: number;
  bytes: number;
}

const OPS: Record<string, number> = { eq: CNT_EQ, lt: CNT_LT, gt: CNT_GT };
const OP_NAMES: Record<number, string> = { [CNT_EQ]: 'eq', [CNT_NE]: 'eq', [CNT_LT]: 'lt', [CNT_GT]: 'gt' };

export const setMatch: MatchModule<SetMatchState> = {
  name: 'set',
  options: [
    { name: 'match-set', invertible: true, args: 2 },
    { name: 'return-nomatch', invertible: false, args: 0 },
    { name: 'update-counters', invertible: true, args: 0 },
    { name: 'update-subcounters', invertible: true, args: 0 },
    ...['packets', 'bytes'].flatMap((w) => ['eq', 'lt', 'gt'].map((op) => ({ name: `${w}-${op}`, invertible: op === 'eq', args: 1 as const }))),
  ],
  create: () => ({
    use: null,
    inv: false,
    returnNomatch: false,
    skipCounters: false,
    skipSubcounters: false,
    packetsOp: CNT_NONE,
    packets: 0,
    bytesOp: CNT_NONE,
    bytes: 0,
  }),
  parse(s, opt, args, inv, optTok, env) {
    switch (opt) {
      case 'match-set':
        if (s.use) return env.error(optTok, '--match-set can be specified only once');
        s.use = setUse(args[0], args[1], env);
        s.inv = inv;
        return;
      case 'return-nomatch':
        s.returnNomatch = true;
        return;
      case 'update-counters':
        s.skipCounters = inv;
        return;
      case 'update-subcounters':
        s.skipSubcounters = inv;
        return;
    }
    const [what, op] = opt.split('-');
    const t = args[0].text;
    if (!/^[0-9]+$/.test(t) || !Number.isSafeInteger(Number(t))) return env.error(args[0], `Cannot parse ${t} as a ${what} counter`);
    const code = inv ? CNT_NE : OPS[op];
    if (what === 'packets') [s.packetsOp, s.packets] = [code, Number(t)];
    else [s.bytesOp, s.bytes] = [code, Number(t)];
  },
  finalize(s, _rule, at, env) {
    if (!s.use && (s.returnNomatch || s.packetsOp || s.bytesOp || s.skipCounters || s.skipSubcounters))
      env.error(at, "You must specify `--match-set' with proper arguments");
    else if (!s.use && !at.quoted) env.error(at, "You must specify `--match-set' with proper arguments");
  },
  familyOf: () => 0,
  save(s) {
    const u = s.use!;
    const out = [...(s.inv ? ['!'] : []), '--match-set', u.name, formatDirs(u)];
    if (s.returnNomatch) out.push('--return-nomatch');
    if (s.skipCounters) out.push('!', '--update-counters');
    if (s.skipSubcounters) out.push('!', '--update-subcounters');
    if (s.packetsOp) out.push(...(s.packetsOp === CNT_NE ? ['!'] : []), `--packets-${OP_NAMES[s.packetsOp]}`, String(s.packets));
    if (s.bytesOp) out.push(...(s.bytesOp === CNT_NE ? ['!'] : []), `--bytes-${OP_NAMES[s.bytesOp]}`, String(s.bytes));
    return out;
  },
  compile(s) {
    const o = new AdtOpt();
    o.dim = s.use!.dim;
    o.flags = s.use!.flags;
    if (s.returnNomatch) o.cmdflags |= FLAG_RETURN_NOMATCH;
    if (s.skipCounters) o.cmdflags |= FLAG_SKIP_COUNTER_UPDATE;
    if (s.skipSubcounters) o.cmdflags |= FLAG_SKIP_SUBCOUNTER_UPDATE;
    if (s.packetsOp || s.bytesOp) o.cmdflags |= FLAG_MATCH_COUNTERS;
    [o.packetsOp, o.packets, o.bytesOp, o.bytes] = [s.packetsOp, s.packets, s.bytesOp, s.bytes];
    return new SetMatch(ipsets().ref(s.use!.name)!, o, s.inv);
  },
  // the sets the rules in service name cannot be destroyed
  inService: () => ipsets().commit(),
};

class SetMatch implements CompiledMatch {
  constructor(
    private readonly ref: SetRef,
    private readonly o: AdtOpt,
    private readonly inv: boolean,
  ) {}
  match(ctx: PacketContext, now: number): boolean {
    const set = this.ref.set;
    if (set === null) return this.inv;
    this.o.family = ctx.family;
    return ipSetTest(set, ctx, this.o, now) > 0 !== this.inv;
  }
}
