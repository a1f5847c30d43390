/**
 * The NAT statements of nat chains onto the iptables path's NAT targets (nft_nat.c /
 * nft_masq.c / nft_redir.c fill the same nf_nat_range2 as xt_nat / xt_MASQUERADE / xt_REDIRECT):
 *   snat|dnat [ip|ip6] to ADDR[-ADDR][:PORT[-PORT]] [random|fully-random|persistent]
 *                                  SNAT --to-source / DNAT --to-destination
 *   masquerade [to :PORT[-PORT]] [random|fully-random]    MASQUERADE --to-ports
 *   redirect [to :PORT[-PORT]] [random]                    REDIRECT --to-ports
 * A prefix as the address is its range of addresses, as nft loads it; maps, netmap and
 * concatenated addresses are refused.
 */
import type { ParsedTarget } from '../types';
import { iptablesTarget, requireFamily, type RuleBuild } from './build';
import { isObject, kindOf, NftError } from './path';
import { element } from './values';
import { formatAddr } from '../addr';

const FLAGS: Record<string, string> = { random: 'random', 'fully-random': 'random-fully', persistent: 'persistent' };

export const NAT_STATEMENTS = new Set(['snat', 'dnat', 'masquerade', 'redirect']);

/** PORT or { range: [LO, HI] } as iptables' PORT[-PORT]. */
function ports(v: unknown, path: string): string {
  const [lo, hi] = element('port', v, path);
  return lo[0] === hi[0] ? String(lo[0]) : `${lo[0]}-${hi[0]}`;
}

export function natTarget(b: RuleBuild, kind: string, v: unknown, path: string): ParsedTarget {
  const at = `${path}.${kind}`;
  const o = v === null ? {} : v;
  if (!isObject(o)) throw new NftError(at, `${kind} takes { addr, port, flags }`);
  for (const k of Object.keys(o)) if (!['addr', 'port', 'family', 'flags'].includes(k)) throw new NftError(`${at}.${k}`, `${kind} ${k} is not supported`);
  const flags = o.flags === undefined ? [] : Array.isArray(o.flags) ? o.flags : [o.flags];
  const opts: [string, string[]][] = [];
  for (const f of flags) {
    const opt = typeof f === 'string' ? FLAGS[f] : undefined;
    if (!opt || (kind === 'redirect' && opt !== 'random') || (kind === 'masquerade' && opt === 'persistent'))
      throw new NftError(`${at}.flags`, `${kind} flag ${JSON.stringify(f)} is not supported`);
    opts.push([opt, []]);
  }
  const port = o.port === undefined ? null : ports(o.port, `${at}.port`);
  if (kind === 'masquerade' || kind === 'redirect') {
    if (o.addr !== undefined) throw new NftError(`${at}.addr`, `${kind} takes no address`);
    const name = kind === 'masquerade' ? 'MASQUERADE' : 'REDIRECT';
    return iptablesTarget(b, name, [...(port ? ([['to-ports', [port]]] as [string, string[]][]) : []), ...opts], at);
  }
  if (o.addr === undefined) throw new NftError(at, `${kind} without an address is not supported`);
  const fam = o.family === 'ip6' ? 6 : o.family === 'ip' ? 4 : b.rule.family !== 0 ? b.rule.family : typeof o.addr === 'string' && o.addr.includes(':') ? 6 : 4;
  if (kindOf(o.addr) === 'map' || kindOf(o.addr) === 'concat' || (typeof o.addr === 'string' && o.addr.startsWith('@')))
    throw new NftError(`${at}.addr`, `${kind} to an address from a map or a concatenation is not supported`);
  if (b.impure) throw new NftError(at, `${kind} after a limit is not supported`);
  requireFamily(b, fam, at);
  const [lo, hi] = element(fam === 6 ? 'addr6' : 'addr4', o.addr, `${at}.addr`);
  const a = formatAddr(fam, fam === 4 ? [lo[0], 0, 0, 0] : lo);
  const z = formatAddr(fam, fam === 4 ? [hi[0], 0, 0, 0] : hi);
  const addrs = a === z ? a : `${a}-${z}`;
  const to = port === null ? addrs : fam === 6 ? `[${addrs}]:${port}` : `${addrs}:${port}`;
  return iptablesTarget(b, kind === 'snat' ? 'SNAT' : 'DNAT', [[kind === 'snat' ? 'to-source' : 'to-destination', [to]], ...opts], at);
}
