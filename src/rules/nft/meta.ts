/** `match` on { meta: { key } }: interfaces, family, protocol, packet mark. */
import { checkIface } from '../matches/basic';
import type { ParsedRule } from '../types';
import { addIptablesMatch, addLookup, requireFamily, type RuleBuild } from './build';
import { opRanges, type MatchOp } from './ops';
import { kindOf, NftError } from './path';
import { isSingle, liveRanges } from './values';
import { fieldMatch } from './payload';

const WHY_NOT: Record<string, string> = {
  pkttype:
    "meta pkttype is not supported: the queue does not deliver the packet's type (host, broadcast, multicast: skb->pkt_type, set from the destination MAC address), only the source MAC",
};

/** iif / oif names as the interface indexes nft resolves them to when it loads the rule. */
function ifindexes(b: RuleBuild, right: unknown, path: string): unknown {
  const one = (x: unknown, p: string): unknown => {
    if (typeof x === 'number') return x;
    if (typeof x !== 'string') throw new NftError(p, 'an interface name');
    if (x.startsWith('@')) throw new NftError(p, 'named sets of interface indexes are not supported');
    const i = b.ifindex(x);
    if (i === 0) throw new NftError(p, `Interface does not exist: "${x}" (nft resolves iif/oif names when it loads the rule)`);
    return i;
  };
  if (kindOf(right) === 'set') {
    const list = (right as { set: unknown }).set;
    if (!Array.isArray(list)) throw new NftError(`${path}.set`, 'a set is a list of elements');
    return { set: list.map((x, i) => one(x, `${path}.set[${i}]`)) };
  }
  return one(right, path);
}

/** nft's "eth*" wildcard as the engine's interface pattern ("eth+"). */
function ifacePattern(name: string, path: string): string {
  const pat = name.endsWith('*') && !name.endsWith('\\*') ? name.slice(0, -1) + '+' : name.replace(/\\\*$/, '*');
  const why = checkIface(pat);
  if (why) throw new NftError(path, why);
  return pat;
}

export function metaMatch(b: RuleBuild, op: MatchOp, key: string, mask: number | null, right: unknown, path: string): void {
  const r = b.rule;
  switch (key) {
    case 'iifname':
    case 'oifname': {
      if (op !== '==' && op !== '!=' && op !== 'in') throw new NftError(`${path}.op`, `"${op}" on ${key} is not supported`);
      if (b.impure) throw new NftError(path, `${key} after a limit is not supported`);
      const inv = op === '!=';
      const names = kindOf(right) === 'set' ? (right as { set: unknown }).set : [right];
      if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && !n.startsWith('@')))
        throw new NftError(`${path}.right`, `${key} takes a name or an anonymous set of names`);
      if ((key === 'iifname' ? r.inIface : r.outIface) !== null || b.alternatives.some((a) => a.key === key))
        throw new NftError(path, `a second ${key} test in one rule is not supported`);
      const set = (pat: string) => (x: ParsedRule) => {
        if (key === 'iifname') [x.inIface, x.inInv] = [pat, inv];
        else [x.outIface, x.outInv] = [pat, inv];
      };
      if (names.length === 1) return set(ifacePattern(names[0] as string, `${path}.right`))(r);
      // several names: one engine rule per name (a packet has one interface: at most one matches)
      if (inv) throw new NftError(path, `${key} != a set of several names is not supported`);
      const pats = (names as string[]).map((n, i) => {
        if (n.endsWith('*')) throw new NftError(`${path}.right.set[${i}]`, 'a wildcard in a set of interface names is not supported');
        return ifacePattern(n, `${path}.right.set[${i}]`);
      });
      b.alternatives.push({ key, path, apply: pats.map(set) });
      return;
    }
    case 'nfproto': {
      if ((op !== '==' && op !== '!=') || (right !== 'ipv4' && right !== 'ipv6')) throw new NftError(path, 'meta nfproto is tested == or != ipv4 or ipv6');
      if (b.impure) throw new NftError(path, 'meta nfproto after a limit is not supported');
      const v4 = (right === 'ipv4') !== (op === '!=');
      requireFamily(b, v4 ? 4 : 6, path);
      return;
    }
    case 'iif':
    case 'oif':
      return fieldMatch(b, `meta ${key}`, op, mask, ifindexes(b, right, `${path}.right`), path);
    case 'l4proto':
      // the same test as ip protocol without the family (the upper-layer protocol)
      return fieldMatch(b, 'meta l4proto', op, null, right, path);
    case 'mark': {
      if (!b.impure && (op === '==' || op === '!=') && isSingle(right)) {
        const { ranges } = opRanges('mark', '==', right, `${path}.right`, b.sets, 0xffffffff);
        const m = mask ?? 0xffffffff;
        addIptablesMatch(b, 'mark', [['mark', [`0x${ranges[0][0][0].toString(16)}/0x${m.toString(16)}`], op === '!=']], path);
        return;
      }
      const { ranges, inv } = opRanges('mark', op, right, `${path}.right`, b.sets, 0xffffffff);
      addLookup(b, {
        field: 'meta mark',
        live: liveRanges(right, b.sets, 'mark', `${path}.right`),
        ranges,
        inv,
        mask: mask ?? 0xffffffff,
        text: `meta mark ${op} ${JSON.stringify(right)}`,
      });
      return;
    }
  }
  throw new NftError(`${path}.left`, WHY_NOT[key] ?? `unsupported meta key "${key}"`);
}
