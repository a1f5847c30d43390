/**
 * Entries and expectations read from a state file are data from outside the daemon: only what
 * some packet sequence could have produced here is restored, and no longer than its state
 * allows under the current tunables. A forged file can then neither invent an entry no tracker
 * makes (an ASSURED ICMP entry, a TCP state that does not exist, unknown status bits, an IPv4
 * tuple with IPv6 address words) nor keep one alive beyond its state's timeout (an ASSURED UDP
 * entry with 10^12 ms left lives at most nf_conntrack_udp_timeout_stream).
 */
import type { Conntrack } from './core';
import type { ConntrackEntryData } from './ops';
import { IPS_ASSURED, IPS_CONFIRMED, IPS_DST_NAT_DONE, IPS_EXPECTED, IPS_HELPER, IPS_NAT_MASK, IPS_SEEN_REPLY, IPS_SRC_NAT_DONE } from './constants';
import { IPS_SEQ_ADJUST } from './seqadj';
import { T_DST, T_META, T_SRC, TUPLE_WORDS } from './layout';

/** the status bits an entry of this implementation can carry when it is saved */
const SAVED_STATUS =
  IPS_EXPECTED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED | IPS_HELPER | IPS_NAT_MASK | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE | IPS_SEQ_ADJUST;

const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** The tuple of TUPLE_WORDS u32 words (tuple.ts layout) a tracker could have built, or a reason it could not. */
export function checkTuple(words: unknown): Uint32Array | string {
  if (!Array.isArray(words) || words.length !== TUPLE_WORDS || !words.every(isU32)) return `a tuple is ${TUPLE_WORDS} unsigned 32-bit words`;
  const t = Uint32Array.from(words as number[]);
  const family = t[T_META] >>> 8;
  if (family !== 4 && family !== 6) return 'the tuple is neither IPv4 nor IPv6';
  if (family === 4) {
    for (let i = 1; i < 4; i++) if (t[T_SRC + i] !== 0 || t[T_DST + i] !== 0) return 'an IPv4 tuple with IPv6 address words';
  }
  return t;
}

/**
 * The entry as it may be restored `elapsedMs` after it was saved (the timeout less that, and no
 * longer than its state allows; its age plus that), or why it is refused. A timeout of 0 or less
 * means it has expired.
 */
export function checkRestoredEntry(ct: Conntrack, d: unknown, elapsedMs: number): ConntrackEntryData | string {
  if (!d || typeof d !== 'object' || Array.isArray(d)) return 'not an entry';
  const r = d as Record<string, unknown>;
  const t = checkTuple(r.tuple);
  if (typeof t === 'string') return t;
  const { status, timeoutMs, ageMs, mark, helper, proto } = r;
  if (!isU32(status)) return 'bad status';
  if (status & ~SAVED_STATUS) return `status bits 0x${(status & ~SAVED_STATUS).toString(16)} no entry carries`;
  if (status & IPS_ASSURED && !(status & IPS_SEEN_REPLY)) return 'ASSURED without SEEN_REPLY';
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs)) return 'the timeout is not a finite number';
  if (typeof ageMs !== 'number' || !Number.isFinite(ageMs) || ageMs < 0) return 'the age is not a finite number of ms';
  if (!isU32(mark)) return 'bad mark';
  if (typeof helper !== 'string') return 'bad helper';
  const l4 = t[T_META] & 0xff;
  if (helper !== '') {
    const id = ct.helperId(helper);
    if (id === 0 || ct.helper(id)?.protonum !== l4) return `no helper ${JSON.stringify(helper).slice(0, 40)} for protocol ${l4}`;
  }
  if (!Array.isArray(proto)) return 'bad protocol state';
  // a NAT binding: the REPLY tuple of the same family and protocol; seqadj offsets
  let nat: { reply: number[]; masq: number } | undefined;
  if (status & IPS_NAT_MASK) {
    const rt = checkTuple(r.reply);
    if (typeof rt === 'string') return `NAT reply: ${rt}`;
    if (rt[T_META] !== t[T_META]) return 'the NAT reply tuple is of another family or protocol';
    if (r.masq !== undefined && !isU32(r.masq)) return 'bad masquerade interface';
    nat = { reply: Array.from(rt), masq: (r.masq as number | undefined) ?? 0 };
  } else if (r.reply !== undefined) return 'a reply tuple without a NAT status';
  let seqadj: number[] | undefined;
  if (status & IPS_SEQ_ADJUST) {
    const q = r.seqadj;
    if (!Array.isArray(q) || q.length !== 6 || !q.every((v, i) => (i % 3 === 0 ? isU32(v) : Number.isInteger(v) && Math.abs(v as number) <= 0x7fffffff)))
      return 'bad sequence adjustment';
    seqadj = q as number[];
  }
  const limitSec = ct.tracker(l4).restoreLimit(ct.tun, t, status, proto);
  if (limitSec < 0) return `a ${ct.tracker(l4).name} entry no packets could have produced`;
  return {
    tuple: Array.from(t),
    status,
    timeoutMs: Math.min(timeoutMs - elapsedMs, limitSec * 1000),
    ageMs: ageMs + elapsedMs,
    mark,
    helper,
    proto: proto as number[],
    ...(nat ?? {}),
    ...(seqadj ? { seqadj } : {}),
  };
}
