/** `match` on { ct: { key } }: state, status, direction (-m conntrack), mark (-m connmark or a lookup). */
import { addIptablesMatch, addLookup, type RuleBuild } from './build';
import { opRanges, type MatchOp } from './ops';
import { kindOf, NftError } from './path';
import { isSingle, liveRanges } from './values';
import { fieldMatch } from './payload';

const STATES = new Set(['new', 'established', 'related', 'invalid', 'untracked']);
const STATUS: Record<string, [string, string]> = {
  expected: ['ctstatus', 'EXPECTED'],
  'seen-reply': ['ctstatus', 'SEEN_REPLY'],
  assured: ['ctstatus', 'ASSURED'],
  confirmed: ['ctstatus', 'CONFIRMED'],
  snat: ['ctstate', 'SNAT'],
  dnat: ['ctstate', 'DNAT'],
};

const WHY_NOT: Record<string, string> = {};

/** ct helper names as the helper ids nfqwall keeps per connection (the kernel compares helper->name). */
function helperIds(b: RuleBuild, right: unknown, path: string): unknown {
  const list = kindOf(right) === 'set' ? (right as { set: unknown }).set : null;
  const one = (x: unknown, p: string): number => {
    const id = typeof x === 'string' && !x.startsWith('@') ? b.helperId(x) : -1;
    if (id < 0) throw new NftError(p, 'a helper name');
    if (id === 0) throw new NftError(p, `nfqwall has no conntrack helper ${JSON.stringify(x)}`);
    return id;
  };
  if (Array.isArray(list)) return { set: list.map((x, i) => one(x, `${path}.set[${i}]`)) };
  return one(right, path);
}

/** The names of a value or an anonymous set of names. */
function names(right: unknown, path: string): string[] {
  const list = kindOf(right) === 'set' ? (right as { set: unknown }).set : [right];
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string' && !x.startsWith('@'))) throw new NftError(path, 'a name or an anonymous set of names');
  return list as string[];
}

export function ctMatch(b: RuleBuild, op: MatchOp, key: string, mask: number | null, right: unknown, path: string): void {
  const inv = op === '!=';
  if (key !== 'mark' && (mask !== null || (op !== '==' && op !== '!=' && op !== 'in'))) throw new NftError(path, `ct ${key} is tested ==, != or in`);
  switch (key) {
    case 'state': {
      const n = names(right, `${path}.right`);
      for (const s of n) if (!STATES.has(s)) throw new NftError(`${path}.right`, `unknown ct state "${s}"`);
      addIptablesMatch(b, 'conntrack', [['ctstate', [n.map((s) => s.toUpperCase()).join(',')], inv]], path);
      return;
    }
    case 'status': {
      if (op === '==') throw new NftError(path, 'ct status == compares the whole status word: not supported (write ct status NAME, which tests the bit)');
      const n = names(right, `${path}.right`);
      const opts = n.map(
        (s) =>
          STATUS[s] ??
          (() => {
            throw new NftError(`${path}.right`, `ct status "${s}" is not supported`);
          })(),
      );
      if (new Set(opts.map((o) => o[0])).size > 1) throw new NftError(`${path}.right`, 'snat/dnat together with other status bits is not supported');
      addIptablesMatch(b, 'conntrack', [[opts[0][0], [opts.map((o) => o[1]).join(',')], inv]], path);
      return;
    }
    case 'direction': {
      if (right !== 'original' && right !== 'reply') throw new NftError(`${path}.right`, 'ct direction is original or reply');
      addIptablesMatch(b, 'conntrack', [['ctdir', [(right === 'original') !== inv ? 'ORIGINAL' : 'REPLY'], false]], path);
      return;
    }
    case 'helper':
      // the connection's own helper (xt_helper, -m helper, tests the master's)
      return fieldMatch(b, 'ct helper', op, null, helperIds(b, right, `${path}.right`), path);
    case 'mark': {
      if ((op === '==' || op === '!=') && isSingle(right)) {
        const { ranges } = opRanges('mark', '==', right, `${path}.right`, b.sets, 0xffffffff);
        const m = mask ?? 0xffffffff;
        addIptablesMatch(b, 'connmark', [['mark', [`0x${ranges[0][0][0].toString(16)}/0x${m.toString(16)}`], inv]], path);
        return;
      }
      const r = opRanges('mark', op, right, `${path}.right`, b.sets, 0xffffffff);
      addLookup(b, {
        field: 'ct mark',
        live: liveRanges(right, b.sets, 'mark', `${path}.right`),
        ranges: r.ranges,
        inv: r.inv,
        mask: mask ?? 0xffffffff,
        text: `ct mark ${op} ${JSON.stringify(right)}`,
      });
      return;
    }
  }
  throw new NftError(`${path}.left`, WHY_NOT[key] ?? `unsupported ct key "${key}"`);
}
