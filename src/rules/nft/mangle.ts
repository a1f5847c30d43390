/**
 * The mangle statement on the marks ({ mangle: { key, value } }): `meta mark set` as -j MARK
 * and `ct mark set` as -j CONNMARK, the same (value, mask) arithmetic new = (old & ~mask) ^ value
 * (nft_meta_set_eval / nft_ct_set_eval after nft_bitwise's (reg & mask) ^ xor):
 *   meta mark set N                       MARK --set-xmark N/0xffffffff
 *   meta mark set meta mark & A | B       MARK --set-xmark B/~(A & ~B)   (also & A, | B, ^ C alone)
 *   meta mark set ct mark [& A]           CONNMARK --restore-mark --ctmask A --nfmask 0xffffffff
 *   ct mark set N, ct mark set ct mark & A | B   CONNMARK --set-xmark
 *   ct mark set meta mark [& A]           CONNMARK --save-mark --nfmask A --ctmask 0xffffffff
 * Without a connection (before conntrack, untracked) ct mark set and a value read from ct mark
 * do nothing, as in nft (NFT_BREAK, or nft_ct_set_eval's ct == NULL) and in CONNMARK.
 */
import type { ParsedTarget } from '../types';
import { iptablesTarget, type RuleBuild } from './build';
import { isObject, kindOf, NftError } from './path';
import { scalar } from './values';

const ALL = 0xffffffff;
const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** Which mark a load is ("meta" or "ct"), or null. */
function markOf(x: unknown): 'meta' | 'ct' | null {
  const k = kindOf(x);
  if (k !== 'meta' && k !== 'ct') return null;
  const body = (x as Record<string, unknown>)[k];
  return isObject(body) && body.key === 'mark' && body.dir === undefined && body.family === undefined ? k : null;
}

/**
 * VALUE as (source mark, keep, xor): new = (source & keep) ^ xor, source null for an immediate
 * (then keep is 0). Forms: N, MARK, MARK & A, MARK | B, MARK ^ C, (MARK & A) | B.
 */
function bitwise(v: unknown, path: string): { src: 'meta' | 'ct' | null; keep: number; xor: number } {
  const num = (x: unknown, p: string) => scalar('mark', x, p)[0];
  if (typeof v === 'number' || typeof v === 'string') return { src: null, keep: 0, xor: num(v, path) };
  const direct = markOf(v);
  if (direct) return { src: direct, keep: ALL, xor: 0 };
  const op = kindOf(v);
  const args = op ? (v as Record<string, unknown>)[op] : null;
  if ((op === '&' || op === '|' || op === '^') && Array.isArray(args) && args.length === 2) {
    const p = `${path}["${op}"]`;
    if (op === '|' && kindOf(args[0]) === '&') {
      const inner = bitwise(args[0], `${p}[0]`);
      if (inner.src !== null && inner.xor === 0) {
        const b = num(args[1], `${p}[1]`);
        return { src: inner.src, keep: (inner.keep & ~b) >>> 0, xor: b };
      }
    }
    const src = markOf(args[0]);
    if (src) {
      const c = num(args[1], `${p}[1]`);
      if (op === '&') return { src, keep: c, xor: 0 };
      if (op === '|') return { src, keep: ~c >>> 0, xor: c };
      return { src, keep: ALL, xor: c };
    }
  }
  throw new NftError(path, 'a mark is set to a number, or to meta mark / ct mark with & | ^ and numbers (other values are not supported)');
}

export function mangleTarget(b: RuleBuild, v: unknown, path: string): ParsedTarget {
  const at = `${path}.mangle`;
  if (!isObject(v)) throw new NftError(at, 'mangle takes { key, value }');
  const key = markOf(v.key);
  if (!key) throw new NftError(`${at}.key`, 'setting anything but meta mark and ct mark is not supported');
  const { src, keep, xor } = bitwise(v.value, `${at}.value`);
  if (key === 'meta') {
    if (src === 'ct') {
      if (xor !== 0 || keep === 0) throw new NftError(`${at}.value`, 'meta mark set ct mark with | or ^ is not supported');
      return iptablesTarget(
        b,
        'CONNMARK',
        [
          ['restore-mark', []],
          ['nfmask', [hex(ALL)]],
          ['ctmask', [hex(keep)]],
        ],
        at,
      );
    }
    // the packet's own mark (or none): the bits kept are ~mask
    return iptablesTarget(b, 'MARK', [['set-xmark', [`${hex(xor)}/${hex(~keep)}`]]], at);
  }
  if (src === 'meta') {
    if (xor !== 0 || keep === 0) throw new NftError(`${at}.value`, 'ct mark set meta mark with | or ^ is not supported');
    return iptablesTarget(
      b,
      'CONNMARK',
      [
        ['save-mark', []],
        ['nfmask', [hex(keep)]],
        ['ctmask', [hex(ALL)]],
      ],
      at,
    );
  }
  return iptablesTarget(b, 'CONNMARK', [['set-xmark', [`${hex(xor)}/${hex(~keep)}`]]], at);
}
