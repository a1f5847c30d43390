/**
 * `match` on { concat: [LOAD, …] } against concatenated elements ("ip saddr . tcp dport
 * @svc", { set: [{ concat: [ADDR, PORT] }, …] }): nft_lookup over the concatenated
 * registers, nft_set_pipapo when elements hold prefixes or ranges. Each element is a range
 * per component; the key matches an element when every component lies in its range. When a
 * component cannot be loaded the rule does not match (NFT_BREAK), whatever the operator.
 */
import type { PacketContext } from '../../conntrack/context';
import type { CompiledMatch, MatchModule } from '../types';
import { hintProto, nftToken, requireFamily, type RuleBuild } from './build';
import { fieldFamily, fieldId, loadField, LOOKUP_FIELDS, type LookupField } from './lookup';
import type { MatchOp } from './ops';
import { isObject, kindOf, NftError } from './path';
import { FIELDS, type FieldInfo } from './payload';
import { element, type Range } from './values';

export interface ConcatState {
  fields: LookupField[];
  /** per element, per component: [lo words, hi words] */
  elems: Range[][];
  inv: boolean;
  text: string;
}

/** The field a component of the key loads. */
export function concatField(x: unknown, path: string): FieldInfo {
  const kind = kindOf(x);
  const body = kind ? (x as Record<string, unknown>)[kind] : null;
  let name: string | null = null;
  if (kind === 'payload' && isObject(body)) name = `${String(body.protocol)} ${String(body.field)}`;
  else if ((kind === 'meta' || kind === 'ct') && isObject(body) && body.dir === undefined && body.family === undefined) name = `${kind} ${String(body.key)}`;
  const f = name ? FIELDS[name] : undefined;
  if (!f) throw new NftError(path, `${name ?? `"${kind ?? JSON.stringify(x)}"`} in a concatenation is not supported`);
  return f;
}

/** An element's values ({ concat: [...] }, or { elem: { val } } around it), one range per component. */
export function concatElement(b: RuleBuild, infos: FieldInfo[], v: unknown, path: string): Range[] {
  if (kindOf(v) === 'elem' && isObject((v as { elem: unknown }).elem))
    return concatElement(b, infos, (v as { elem: { val: unknown } }).elem.val, `${path}.elem.val`);
  const parts = kindOf(v) === 'concat' ? (v as { concat: unknown }).concat : null;
  if (!Array.isArray(parts) || parts.length !== infos.length) throw new NftError(path, `an element of ${infos.length} concatenated values`);
  return parts.map((x, i) => {
    const p = `${path}.concat[${i}]`;
    if (infos[i].kind !== 'ifindex' || typeof x !== 'string') return element(infos[i].kind, x, p);
    const idx = b.ifindex(x);
    if (idx === 0) throw new NftError(p, `Interface does not exist: "${x}" (nft resolves iif/oif names when it loads the rule)`);
    return [[idx], [idx]];
  });
}

export function concatMatch(b: RuleBuild, op: MatchOp, parts: unknown, right: unknown, path: string): void {
  if (!Array.isArray(parts) || parts.length < 2) throw new NftError(`${path}.left.concat`, 'a concatenation of two or more expressions');
  if (op !== '==' && op !== '!=' && op !== 'in') throw new NftError(`${path}.op`, `"${op}" on a concatenation is not supported`);
  const infos = parts.map((x, i) => concatField(x, `${path}.left.concat[${i}]`));
  for (const f of infos) {
    if (f.family) requireFamily(b, f.family, path);
    if (f.proto) hintProto(b, f.proto);
  }
  let list: [unknown, string][];
  if (typeof right === 'string' && right.startsWith('@')) {
    const named = b.sets.get(right.slice(1));
    if (!named) throw new NftError(`${path}.right`, `no set "${right.slice(1)}" in this table`);
    if (named.map !== undefined) throw new NftError(`${path}.right`, `"${right.slice(1)}" is a map, not a set`);
    if (!Array.isArray(named.type) || named.type.length !== infos.length)
      throw new NftError(`${path}.right`, `set "${right.slice(1)}" is of type ${JSON.stringify(named.type)}, not a concatenation of ${infos.length}`);
    list = named.elems.map((e, i) => [e, `${named.path}.elem[${i}]`]);
  } else if (kindOf(right) === 'set' && Array.isArray((right as { set: unknown }).set))
    list = ((right as { set: unknown[] }).set as unknown[]).map((e, i) => [e, `${path}.right.set[${i}]`]);
  else list = [[right, `${path}.right`]];
  const fields = infos.map((f) => f.lookup);
  const elems = list.map(([e, p]) => concatElement(b, infos, e, p));
  b.rule.matches.push({
    name: nftConcat.name,
    at: nftToken('concat'),
    explicit: true,
    state: { fields, elems, inv: op === '!=', text: JSON.stringify(right) } satisfies ConcatState,
  });
}

/** Whether two elements overlap in every component (a packet could be in both). */
export function elementsOverlap(a: Range[], b: Range[]): boolean {
  const le = (x: number[], y: number[]) => {
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i];
    return true;
  };
  return a.every((r, i) => le(r[0], b[i][1]) && le(b[i][0], r[1]));
}

class ConcatLookup implements CompiledMatch {
  private readonly key: Uint32Array;
  constructor(
    private readonly ids: Int32Array,
    private readonly offs: Int32Array,
    private readonly widths: Int32Array,
    /** words of the whole key */
    private readonly words: number,
    /** element e's component c: lo at lo[e * words + offs[c]…], hi likewise */
    private readonly lo: Uint32Array,
    private readonly hi: Uint32Array,
    private readonly inv: boolean,
  ) {
    this.key = new Uint32Array(words);
  }

  match(ctx: PacketContext): boolean {
    const key = this.key;
    const n = this.ids.length;
    for (let c = 0; c < n; c++) if (!loadField(this.ids[c], ctx, key, this.offs[c])) return false;
    const count = this.lo.length / this.words;
    for (let e = 0; e < count; e++) {
      const base = e * this.words;
      let c = 0;
      for (; c < n; c++) {
        const o = this.offs[c];
        if (this.widths[c] === 1) {
          const x = key[o];
          if (x < this.lo[base + o] || x > this.hi[base + o]) break;
        } else if (cmpAt(key, o, this.lo, base + o) < 0 || cmpAt(key, o, this.hi, base + o) > 0) break;
      }
      if (c === n) return !this.inv;
    }
    return this.inv;
  }
}

/** Four words of a against four of b, as unsigned big-endian numbers. */
function cmpAt(a: Uint32Array, at: number, b: Uint32Array, bt: number): number {
  for (let w = 0; w < 4; w++) if (a[at + w] !== b[bt + w]) return a[at + w] < b[bt + w] ? -1 : 1;
  return 0;
}

export const nftConcat: MatchModule<ConcatState> = {
  name: 'nft-concat',
  options: [],
  create: () => ({ fields: [], elems: [], inv: false, text: '' }),
  parse() {},
  finalize() {},
  familyOf: (s) => s.fields.map(fieldFamily).find((f) => f !== 0) ?? 0,
  save: (s) => ['--nft', JSON.stringify(`${s.fields.join(' . ')} ${s.inv ? '!= ' : ''}${s.text}`)],
  compile(s) {
    const widths = Int32Array.from(s.fields.map((f) => LOOKUP_FIELDS[f]));
    const offs = new Int32Array(widths.length);
    for (let c = 1; c < widths.length; c++) offs[c] = offs[c - 1] + widths[c - 1];
    const words = offs[widths.length - 1] + widths[widths.length - 1];
    const lo = new Uint32Array(s.elems.length * words);
    const hi = new Uint32Array(s.elems.length * words);
    s.elems.forEach((el, e) =>
      el.forEach(([l, h], c) => {
        lo.set(l, e * words + offs[c]);
        hi.set(h, e * words + offs[c]);
      }),
    );
    return new ConcatLookup(Int32Array.from(s.fields.map(fieldId)), offs, widths, words, lo, hi, s.inv);
  },
};
