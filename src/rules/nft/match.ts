/** The `match` expression: { match: { op, left, right } }, left a payload, meta or ct load, maybe under `&`. */
import type { RuleBuild } from './build';
import { concatMatch } from './concat';
import { ctMatch } from './ct';
import { metaMatch } from './meta';
import { matchOp } from './ops';
import { isObject, kindOf, NftError } from './path';
import { payloadMatch } from './payload';
import { scalar } from './values';

/** left, or the load under { "&": [LOAD, MASK] } with the mask as a number. */
function unmask(left: unknown, path: string): { load: unknown; mask: number | null; path: string } {
  if (kindOf(left) !== '&') return { load: left, mask: null, path };
  const a = (left as { '&': unknown })['&'];
  if (!Array.isArray(a) || a.length !== 2) throw new NftError(`${path}["&"]`, 'a mask is [EXPRESSION, VALUE]');
  const inner = a[0];
  const kind =
    kindOf(inner) === 'payload' && isObject((inner as { payload: unknown }).payload) && (inner as { payload: { field?: unknown } }).payload.field === 'flags'
      ? 'tcpflags'
      : 'mark';
  return { load: inner, mask: scalar(kind, a[1], `${path}["&"][1]`)[0], path: `${path}["&"][0]` };
}

export function matchExpr(b: RuleBuild, m: unknown, path: string): void {
  if (!isObject(m)) throw new NftError(path, 'a match is { op, left, right }');
  const op = matchOp(m.op, path);
  if (kindOf(m.left) === 'concat') return concatMatch(b, op, (m.left as { concat: unknown }).concat, m.right, path);
  const { load, mask } = unmask(m.left, `${path}.left`);
  const kind = kindOf(load);
  const body = kind ? (load as Record<string, unknown>)[kind] : null;
  if (kind === 'payload' && isObject(body)) return payloadMatch(b, op, body, mask, m.right, path);
  if (kind === 'meta' && isObject(body) && typeof body.key === 'string') return metaMatch(b, op, body.key, mask, m.right, path);
  if (kind === 'ct' && isObject(body) && typeof body.key === 'string') {
    if (body.dir !== undefined || body.family !== undefined) throw new NftError(`${path}.left`, 'ct keys with a direction or family are not supported');
    return ctMatch(b, op, body.key, mask, m.right, path);
  }
  throw new NftError(`${path}.left`, `unsupported expression "${kind ?? JSON.stringify(m.left)}"`);
}
