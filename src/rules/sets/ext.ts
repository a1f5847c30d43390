/**
 * The extensions every set type keeps per element (ip_set_core.c): the timeout, the
 * counters and the comment, as the kernel tests them for a packet (ip_set_match_extensions),
 * writes them on an add (mtype_add's overwrite_extensions) and prints them (`ipset save`).
 */
import type { SetStore } from './store';
import { MAX_COMMENT } from './store';
import { counterMatches, FLAG_MATCH_COUNTERS, FLAG_SKIP_COUNTER_UPDATE, NOMATCH, type AdtOpt, type CreateOpts, type UserExt } from './set';

export const ADD_EXISTS = -1;
export const ADD_FULL = -2;

export function commentBytes(s: string | null): Uint8Array | null {
  if (s === null || s === '') return null;
  const b = Buffer.from(s, 'utf8');
  return b.length > MAX_COMMENT ? b.subarray(0, MAX_COMMENT) : b;
}

/** The extension words of a set's header (after the type's own options). */
export function formatExt(o: CreateOpts): string {
  return `${o.timeout ? ` timeout ${o.timeout}` : ''}${o.counters ? ' counters' : ''}${o.comment ? ' comment' : ''}`;
}

/** A packet hit entry e: expired → 0; counters updated and compared; nomatch → NOMATCH; else 1. Under the lock. */
export function decide(s: SetStore, e: number, o: AdtOpt, now: number, bytes: number, counters: boolean): number {
  if (s.expired(e, now)) return 0;
  if (counters) {
    if ((o.cmdflags & FLAG_SKIP_COUNTER_UPDATE) === 0) s.count1(e, bytes);
    if ((o.cmdflags & FLAG_MATCH_COUNTERS) !== 0 && !(counterMatches(s.packets(e), o.packetsOp, o.packets) && counterMatches(s.bytes(e), o.bytesOp, o.bytes)))
      return 0;
  }
  return s.nomatch(e) ? NOMATCH : 1;
}

export interface AddArgs {
  nomatch: boolean;
  /** seconds (0 = permanent) */
  timeout: number;
  /** -1 = keep what the element has (0 for a new one) */
  packets: number;
  bytes: number;
  comment: Uint8Array | null;
  exist: boolean;
}

/**
 * mtype_add for one key (under the lock): an element already there (and not expired) is
 * refused without exist, else its extensions are overwritten; a full set first loses its
 * expired elements (set.expireLocked, a method: no closure per packet); cidr is the key's net prefix (-1 = none).
 */
export function addEntry(
  s: SetStore,
  key: Int32Array,
  cidr: number,
  opts: CreateOpts,
  a: AddArgs,
  now: number,
  set: { expireLocked(now: number): void },
): number {
  let e = s.find(key);
  if (e >= 0 && !a.exist && !s.expired(e, now)) return ADD_EXISTS;
  if (e < 0) {
    if (s.count >= opts.maxelem && opts.timeout) set.expireLocked(now);
    if (s.count >= opts.maxelem) return ADD_FULL;
    e = s.insert(key, cidr);
  }
  s.setExt(e, a.nomatch, opts.timeout ? a.timeout : 0, now, opts.counters ? a.packets : -1, opts.counters ? a.bytes : -1, a.comment);
  return 0;
}

/** What `ipset save` prints after an element: timeout, nomatch, counters, comment. */
export function extText(s: SetStore, e: number, opts: CreateOpts, now: number): string {
  let line = '';
  if (opts.timeout) line += ` timeout ${s.timeLeft(e, now)}`;
  if (s.nomatch(e)) line += ' nomatch';
  if (opts.counters) line += ` packets ${s.packets(e)} bytes ${s.bytes(e)}`;
  const c = s.comment(e);
  if (c) line += ` comment "${Buffer.from(c).toString('utf8')}"`;
  return line;
}

/** The AddArgs of an `ipset add` with these extensions (the set's default timeout when none is given). */
export function userArgs(ext: UserExt, exist: boolean, opts: CreateOpts): AddArgs {
  return {
    nomatch: ext.nomatch,
    timeout: ext.timeout >= 0 ? ext.timeout : opts.timeout,
    packets: ext.packets,
    bytes: ext.bytes,
    comment: commentBytes(ext.comment),
    exist,
  };
}
