/** The comparison operators of an nft `match` and what they mean for a lookup over ranges. */
import { NftError } from './path';
import { isSingle, ranges, scalar, type Range, type SetDirectory, type ValueKind } from './values';

export type MatchOp = '==' | '!=' | 'in' | '<' | '>' | '<=' | '>=';

const OPS = new Set(['==', '!=', 'in', '<', '>', '<=', '>=']);

export function matchOp(op: unknown, path: string): MatchOp {
  if (typeof op === 'string' && OPS.has(op)) return op as MatchOp;
  throw new NftError(`${path}.op`, `unsupported operator ${JSON.stringify(op)}`);
}

/** The ranges a comparison accepts and whether they are negated, for one-word kinds of values up to max. */
export function opRanges(kind: ValueKind, op: MatchOp, right: unknown, path: string, sets: SetDirectory, max: number): { ranges: Range[]; inv: boolean } {
  if (op === '==' || op === 'in') return { ranges: ranges(kind, right, path, sets), inv: false };
  if (op === '!=') return { ranges: ranges(kind, right, path, sets), inv: true };
  if (!isSingle(right) || kind === 'addr6') throw new NftError(path, `"${op}" needs one value`);
  const v = scalar(kind, right, path)[0];
  const r = (lo: number, hi: number): { ranges: Range[]; inv: boolean } => ({ ranges: lo <= hi ? [[[lo], [hi]]] : [], inv: false });
  switch (op) {
    case '<':
      return r(0, v - 1);
    case '<=':
      return r(0, v);
    case '>':
      return r(v + 1, max);
    default:
      return r(v, max);
  }
}
