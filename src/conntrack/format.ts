/**
 * Listing formats (§10): conntrack-tools' `conntrack -L` (default and
 * `-o extended`), /proc/net/nf_conntrack, `conntrack -L expect`,
 * /proc/net/nf_conntrack_expect, `conntrack -S`, /proc/net/stat/nf_conntrack and
 * the summary lines conntrack prints on stderr. Not hot path (strings).
 */
import { addrToString } from '../packet/format';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/view';
import { hasPorts } from './tuple';
import { IPS_ASSURED, IPS_SEEN_REPLY } from './constants';
import type { Conntrack } from './core';
import { CPU_LINE_STATS, type ConntrackStats } from './stats';
import { EXP_MASK_SRC_ADDR, EXP_MASK_SRC_PORT, NF_CT_EXPECT_INACTIVE, NF_CT_EXPECT_PERMANENT, NF_CT_EXPECT_USERSPACE } from './expect';
import { T_DST, T_META, T_PORTS, T_SRC, TUPLE_WORDS } from './layout';

export const CONNTRACK_VERSION = 'conntrack v1.4.8 (conntrack-tools)';

/** l4proto names as conntrack-tools (libnetfilter_conntrack's proto2str) prints them. */
export function l4Name(proto: number): string {
  switch (proto) {
    case IPPROTO_TCP:
      return 'tcp';
    case IPPROTO_UDP:
      return 'udp';
    case IPPROTO_UDPLITE:
      return 'udplite';
    case IPPROTO_ICMP:
      return 'icmp';
    case IPPROTO_ICMPV6:
      return 'icmpv6';
    case IPPROTO_SCTP:
      return 'sctp';
    case 33:
      return 'dccp';
    case 47:
      return 'gre';
    default:
      return 'unknown';
  }
}

function l3(family: number): { name: string; num: number } {
  return family === 6 ? { name: 'ipv6', num: 10 } : { name: 'ipv4', num: 2 };
}

function pad8(s: string): string {
  return s.length >= 8 ? s : s + ' '.repeat(8 - s.length);
}

function l4Part(proto: number, ports: number): string {
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    return `type=${(ports >>> 8) & 0xff} code=${ports & 0xff} id=${ports >>> 16} `;
  }
  if (hasPorts(proto)) {
    return `sport=${ports >>> 16} dport=${ports & 0xffff} `;
  }
  return '';
}

const scratchA = new Uint32Array(4);
const scratchB = new Uint32Array(4);

function tuplePart(ct: Conntrack, e: number, dir: number): string {
  ct.tupleAddr(e, dir, 0, scratchA);
  ct.tupleAddr(e, dir, 1, scratchB);
  const fam = ct.family(e);
  return `src=${addrToString(fam, scratchA)} dst=${addrToString(fam, scratchB)} ` + l4Part(ct.proto(e), ct.portsWord(e, dir));
}

/** Remaining whole seconds, never negative. */
export function secondsLeft(ct: Conntrack, e: number, now: number): number {
  const s = Math.floor(ct.timeoutLeft(e, now));
  return s > 0 ? s : 0;
}

/** One `conntrack -L` line (no newline); `extended` = `-o extended`. */
export function formatConntrack(ct: Conntrack, e: number, now: number, extended = false): string {
  const proto = ct.proto(e);
  const st = ct.status(e);
  let s = '';
  if (extended) {
    const l = l3(ct.family(e));
    s += `${pad8(l.name)} ${l.num} `;
  }
  s += `${pad8(l4Name(proto))} ${proto} ${secondsLeft(ct, e, now)} `;
  const state = ct.tracker(proto).stateName(e);
  if (state) s += `${state} `;
  s += tuplePart(ct, e, 0);
  if ((st & IPS_SEEN_REPLY) === 0) s += '[UNREPLIED] ';
  s += tuplePart(ct, e, 1);
  if (st & IPS_ASSURED) s += '[ASSURED] ';
  s += `mark=${ct.mark(e)} `;
  const helper = ct.helperName(e);
  if (helper) s += `helper=${helper} `;
  s += 'use=1';
  return s;
}

/** One /proc/net/nf_conntrack line (no newline). */
export function formatProcConntrack(ct: Conntrack, e: number, now: number): string {
  const proto = ct.proto(e);
  const st = ct.status(e);
  const l = l3(ct.family(e));
  // the kernel prints its tracker's name: protocols tracked generically are 'unknown'
  let s = `${pad8(l.name)} ${l.num} ${pad8(ct.tracker(proto).name)} ${proto} ${secondsLeft(ct, e, now)} `;
  const state = ct.tracker(proto).stateName(e);
  if (state) s += `${state} `;
  s += tuplePart(ct, e, 0);
  if ((st & IPS_SEEN_REPLY) === 0) s += '[UNREPLIED] ';
  s += tuplePart(ct, e, 1);
  if (st & IPS_ASSURED) s += '[ASSURED] ';
  s += `mark=${ct.mark(e)} zone=0 use=2`;
  return s;
}

function expSeconds(ct: Conntrack, x: number, now: number): number {
  const s = Math.floor((ct.expectations.timeout[x] - now) / 1000);
  return s > 0 ? s : 0;
}

function expFlags(flags: number): string {
  const f: string[] = [];
  if (flags & NF_CT_EXPECT_PERMANENT) f.push('PERMANENT');
  if (flags & NF_CT_EXPECT_INACTIVE) f.push('INACTIVE');
  if (flags & NF_CT_EXPECT_USERSPACE) f.push('USERSPACE');
  return f.join(',');
}

/** One `conntrack -L expect` line for expectation x (no newline). */
export function formatExpect(ct: Conntrack, x: number, now: number): string {
  const X = ct.expectations;
  const b = x * TUPLE_WORDS;
  const t = X.tuples;
  const fam = t[b + T_META] >>> 8;
  const proto = t[b + T_META] & 0xff;
  const m = X.mask[x];
  const words = (o: number) => t.subarray(b + o, b + o + 4);
  const ones = new Uint32Array([0xffffffff, fam === 6 ? 0xffffffff : 0, fam === 6 ? 0xffffffff : 0, fam === 6 ? 0xffffffff : 0]);
  const zero = new Uint32Array(4);
  const ports = t[b + T_PORTS];
  const maskPorts = (((m & EXP_MASK_SRC_PORT ? 0xffff : 0) << 16) | 0xffff) >>> 0;
  let s = `${expSeconds(ct, x, now)} proto=${proto} `;
  s += `src=${addrToString(fam, words(T_SRC))} dst=${addrToString(fam, words(T_DST))} ` + l4Part(proto, ports);
  s += `mask-src=${addrToString(fam, m & EXP_MASK_SRC_ADDR ? ones : zero)} mask-dst=${addrToString(fam, ones)} ` + l4Part(proto, maskPorts);
  const master = X.master[x];
  s +=
    `master-src=${addrToString(fam, sub(ct, master, 0))} master-dst=${addrToString(fam, sub(ct, master, 1))} ` +
    l4Part(ct.proto(master), ct.portsWord(master, 0));
  const fl = expFlags(X.flags[x]);
  if (fl) s += fl + ' ';
  s += `class=${X.cls[x]} `;
  const helper = ct.helperName(master);
  if (helper) s += `helper=${helper} `;
  return s.endsWith(' ') ? s.slice(0, -1) : s;
}

function sub(ct: Conntrack, e: number, which: number): Uint32Array {
  const out = new Uint32Array(4);
  ct.tupleAddr(e, 0, which, out);
  return out;
}

/** One /proc/net/nf_conntrack_expect line (no newline). */
export function formatProcExpect(ct: Conntrack, x: number, now: number): string {
  const X = ct.expectations;
  const b = x * TUPLE_WORDS;
  const t = X.tuples;
  const fam = t[b + T_META] >>> 8;
  const proto = t[b + T_META] & 0xff;
  let s = `${expSeconds(ct, x, now)} l3proto = ${l3(fam).num} proto=${proto} `;
  s += `src=${addrToString(fam, t.subarray(b + T_SRC, b + T_SRC + 4))} dst=${addrToString(fam, t.subarray(b + T_DST, b + T_DST + 4))} `;
  s += l4Part(proto, t[b + T_PORTS]);
  const flags = X.flags[x];
  s += expFlags(flags);
  const helper = ct.helperName(X.master[x]);
  if (helper) s += `${flags ? ' ' : ''}${helper}`;
  return s;
}

/** One `conntrack -S` line (`cpu=N` as conntrack-tools prints each per-cpu line; ends with a space, no newline). */
export function formatStats(stats: ConntrackStats, cpu = 0): string {
  let s = `cpu=${String(cpu).padEnd(4)}\t`;
  for (const f of CPU_LINE_STATS) s += `${f}=${stats[f]} `;
  return s;
}

/** /proc/net/stat/nf_conntrack: header line and the cpu line (each with a newline). */
export function formatProcStats(stats: ConntrackStats, count: number): string {
  const h = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
  const header =
    'entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n';
  const line =
    `${h(count)}  ${h(stats.clash_resolve)} ${h(stats.found)} ${h(0)} ${h(stats.invalid)} ${h(0)} ${h(0)} ${h(stats.chaintoolong)} ` +
    `${h(stats.insert)} ${h(stats.insert_failed)} ${h(stats.drop)} ${h(stats.early_drop)} ${h(stats.error)}  ` +
    `${h(stats.expect_new)} ${h(stats.expect_create)} ${h(stats.expect_delete)} ${h(stats.search_restart)}\n`;
  return header + line;
}

/** conntrack's summary lines on stderr. */
export const summary = {
  shown: (n: number) => `${CONNTRACK_VERSION}: ${n} flow entries have been shown.`,
  deleted: (n: number) => `${CONNTRACK_VERSION}: ${n} flow entries have been deleted.`,
  flushed: () => `${CONNTRACK_VERSION}: connection tracking table has been emptied.`,
  expectShown: (n: number) => `${CONNTRACK_VERSION}: ${n} expectations have been shown.`,
  expectFlushed: () => `${CONNTRACK_VERSION}: expectation table has been emptied.`,
};
