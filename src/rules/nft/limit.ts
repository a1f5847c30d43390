/** The limit statement (packets per unit): -m limit at its place in the rule. */
import { addIptablesMatch, type RuleBuild } from './build';
import { isObject, NftError } from './path';

const UNITS = new Set(['second', 'minute', 'hour', 'day']);

export function limitMatch(b: RuleBuild, v: unknown, path: string): void {
  if (!isObject(v)) throw new NftError(path, 'limit takes { rate, per, burst }');
  if (v.inv === true) throw new NftError(`${path}.limit.inv`, 'limit over is not supported');
  if (v.rate_unit !== undefined && v.rate_unit !== 'packets') throw new NftError(`${path}.limit.rate_unit`, 'byte rates are not supported');
  const per = v.per ?? 'second';
  if (typeof v.rate !== 'number' || typeof per !== 'string' || !UNITS.has(per)) throw new NftError(`${path}.limit`, `unsupported limit ${JSON.stringify(v)}`);
  // nft_limit_init: a bucket of rate + burst packets (burst 0 means 5), refilled at the rate;
  // xt_limit's bucket holds --limit-burst packets, refilled at the same rate
  const burst = typeof v.burst === 'number' && v.burst > 0 ? v.burst : 5;
  const opts: [string, string[], boolean][] = [
    ['limit', [`${v.rate}/${per}`], false],
    ['limit-burst', [String(v.rate + burst)], false],
  ];
  addIptablesMatch(b, 'limit', opts, `${path}.limit`);
  b.impure = true;
}
