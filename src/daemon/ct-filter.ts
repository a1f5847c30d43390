/**
 * The filters of `conntrack -L/-D` (addresses, ports, protocol, mark), compiled into a
 * predicate over the entries of one table.
 */
import * as net from 'node:net';
import type { Conntrack } from '../conntrack/core';
import { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/view';
import { parseAddr as parseAddrText } from '../packet/format';
import { prefixMask } from '../rules/addr';

/** Filters of conntrack -L / -D, as conntrack-tools applies them (ORIG tuple unless reply*). */
export interface CtFilter {
  family?: number; // 4 | 6
  proto?: number;
  src?: string; // ORIG source, ADDR or ADDR/PREFIX
  dst?: string; // ORIG destination
  replySrc?: string;
  replyDst?: string;
  sport?: number; // ORIG source port
  dport?: number; // ORIG destination port
  /** entries whose mark & markMask (default all ones) == mark, as conntrack-tools' mark_cmp */
  mark?: number;
  markMask?: number;
}

interface AddrMatch {
  family: number;
  words: Uint32Array;
  mask: Uint32Array;
}

/** Parses ADDR or ADDR/PREFIX (addresses as inet_pton reads them) into words in network order and a mask. */
export function parseAddr(text: string): AddrMatch {
  const slash = text.indexOf('/');
  const a = slash >= 0 ? text.slice(0, slash) : text;
  const parsed = net.isIP(a) === 0 ? null : parseAddrText(a);
  if (!parsed) throw new Error(`bad address '${text}'`);
  const bits = parsed.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d+$/.test(p) || Number(p) > bits) throw new Error(`bad prefix length in '${text}'`);
    prefix = Number(p);
  }
  return { family: parsed.family, words: parsed.words, mask: Uint32Array.from(prefixMask(parsed.family, prefix)) };
}

const scratch = new Uint32Array(4);

function addrMatches(ct: Conntrack, e: number, dir: number, which: number, m: AddrMatch): boolean {
  if (ct.family(e) !== m.family) return false;
  ct.tupleAddr(e, dir, which, scratch);
  for (let i = 0; i < 4; i++) if (((scratch[i] ^ m.words[i]) & m.mask[i]) !== 0) return false;
  return true;
}

function hasPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === 132 || proto === 33;
}

/** Compiles a CtFilter into a predicate over entry ids; throws on bad arguments. */
export function compileFilter(ct: Conntrack, f: CtFilter = {}): (e: number) => boolean {
  if (f === null || typeof f !== 'object') throw new Error('filter must be an object');
  const num = (v: unknown, name: string, max: number): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new Error(`bad ${name}: ${JSON.stringify(v)}`);
    return v;
  };
  const addr = (v: unknown, name: string): AddrMatch | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new Error(`bad ${name}: ${JSON.stringify(v)}`);
    return parseAddr(v);
  };
  const family = num(f.family, 'family', 6);
  if (family !== undefined && family !== 4 && family !== 6) throw new Error(`bad family: ${family}`);
  const proto = num(f.proto, 'protocol', 255);
  const sport = num(f.sport, 'source port', 65535);
  const dport = num(f.dport, 'destination port', 65535);
  const mark = num(f.mark, 'mark', 0xffffffff);
  const markMask = num(f.markMask, 'mark mask', 0xffffffff) ?? 0xffffffff;
  const src = addr(f.src, 'source address');
  const dst = addr(f.dst, 'destination address');
  const rsrc = addr(f.replySrc, 'reply source address');
  const rdst = addr(f.replyDst, 'reply destination address');
  return (e: number) => {
    if (family !== undefined && ct.family(e) !== family) return false;
    const p = ct.proto(e);
    if (proto !== undefined && p !== proto) return false;
    if (src && !addrMatches(ct, e, 0, 0, src)) return false;
    if (dst && !addrMatches(ct, e, 0, 1, dst)) return false;
    if (rsrc && !addrMatches(ct, e, 1, 0, rsrc)) return false;
    if (rdst && !addrMatches(ct, e, 1, 1, rdst)) return false;
    if (sport !== undefined || dport !== undefined) {
      if (!hasPorts(p)) return false;
      const w = ct.portsWord(e, 0);
      if (sport !== undefined && w >>> 16 !== sport) return false;
      if (dport !== undefined && (w & 0xffff) !== dport) return false;
    }
    if (mark !== undefined && (ct.mark(e) & markMask) >>> 0 !== mark) return false;
    return true;
  };
}
