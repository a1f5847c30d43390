/** The log statement: -j LOG with the same prefix, level and flags (nf_log_syslog writes both). */
import type { ParsedTarget } from '../types';
import { iptablesTarget, type RuleBuild } from './build';
import { isObject, NftError } from './path';

const FLAGS: Record<string, string[]> = {
  'tcp sequence': ['log-tcp-sequence'],
  'tcp options': ['log-tcp-options'],
  'ip options': ['log-ip-options'],
  skuid: ['log-uid'],
  ether: ['log-macdecode'],
  all: ['log-tcp-sequence', 'log-tcp-options', 'log-ip-options', 'log-uid', 'log-macdecode'],
};

export function logTarget(b: RuleBuild, v: unknown, path: string): ParsedTarget {
  const o = v === null ? {} : v;
  if (!isObject(o)) throw new NftError(path, 'log takes { prefix, level, flags }');
  const opts: [string, string[]][] = [];
  for (const [k, x] of Object.entries(o)) {
    if (k === 'prefix' && typeof x === 'string') opts.push(['log-prefix', [x]]);
    else if (k === 'level' && typeof x === 'string' && x !== 'audit') opts.push(['log-level', [x]]);
    else if (k === 'flags') {
      const list = Array.isArray(x) ? x : [x];
      for (const f of list) {
        if (typeof f !== 'string' || !FLAGS[f]) throw new NftError(`${path}.log.flags`, `unsupported log flag ${JSON.stringify(f)}`);
        for (const opt of FLAGS[f]) if (!opts.some((p) => p[0] === opt)) opts.push([opt, []]);
      }
    } else
      throw new NftError(
        `${path}.log.${k}`,
        `unsupported log ${k === 'group' || k === 'snaplen' || k === 'queue-threshold' ? 'to a netlink group (nflog)' : `attribute "${k}"`}`,
      );
  }
  return iptablesTarget(b, 'LOG', opts, `${path}.log`);
}
