/** Shared helpers of the rules tests (not a test file itself). */
import { PacketContext } from '../../../src/conntrack/context';
import { parsePacket } from '../../../src/packet/parse';
import { NF_INET_FORWARD } from '../../../src/queue/layout';
import { loadRules, formatError, formatRuleSet } from '../../../src/rules/index';
import type { RuleEngine } from '../../../src/rules/eval';
import { CTSTATE_NEW, IP_CT_NEW } from '../../../src/conntrack/constants';

export const IFNAMES: Record<number, string> = { 1: 'lo', 2: 'g0', 3: 'g1', 4: 'eth0', 5: 'eth1', 70000: 'veth-big' };

export interface CtxOpts {
  hook?: number;
  indev?: number;
  outdev?: number;
  ctstate?: number;
  ctinfo?: number;
  ctstatus?: number;
  masterHelper?: number;
  mark?: number;
  entry?: number;
  pktFlags?: number;
}

/** A context for a built packet (parsed with the real parser), forwarded g0 → g1 and NEW by default. */
export function ctxFor(pkt: Uint8Array, o: CtxOpts = {}): PacketContext {
  const ctx = new PacketContext();
  ctx.reset();
  parsePacket(pkt, 0, pkt.length, ctx.view);
  ctx.family = pkt[0] >>> 4 === 6 ? 6 : 4;
  ctx.hook = o.hook ?? NF_INET_FORWARD;
  ctx.indev = o.indev ?? 2;
  ctx.outdev = o.outdev ?? 3;
  ctx.length = pkt.length;
  ctx.mark = o.mark ?? 0;
  ctx.pktFlags = o.pktFlags ?? 0;
  ctx.entry = o.entry ?? 0;
  ctx.ctinfo = o.ctinfo ?? IP_CT_NEW;
  ctx.ctstate = o.ctstate ?? CTSTATE_NEW;
  ctx.ctstatus = o.ctstatus ?? 0;
  ctx.masterHelper = o.masterHelper ?? 0;
  return ctx;
}

export interface TestEngine {
  engine: RuleEngine;
  logs: [string, number][];
  rejects: number[];
  gen: { value: number };
}

/** name → index over an index → name table (0: none) */
const ifindexIn = (names: Record<number, string>) => (n: string) => Number(Object.keys(names).find((i) => names[Number(i)] === n) ?? 0);

export const helperId = (n: string) => (n === 'ftp' ? 1 : n === 'sip' ? 2 : 0);

/** Loads rule text (throws with the formatted errors when invalid). */
export function engineFor(text: string, names: Record<number, string> = IFNAMES): TestEngine {
  const logs: [string, number][] = [];
  const rejects: number[] = [];
  const gen = { value: 0 };
  const r = loadRules(text, 't.rules', {
    helperId,
    ifindex: ifindexIn(names),
    deps: {
      ifname: (i) => names[i],
      log: (l, lv) => logs.push([l, lv]),
      reject: (k) => rejects.push(k),
      linkGeneration: () => gen.value,
    },
  });
  if (!r.engine) throw new Error(r.errors.map(formatError).join('\n'));
  return { engine: r.engine, logs, rejects, gen };
}

/** A filter table with FORWARD policy DROP holding the given rules (one per line, without "-A FORWARD"). */
export function forward(...rules: string[]): string {
  return ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ...rules.map((r) => `-A FORWARD ${r}`), 'COMMIT', ''].join('\n');
}

/** Parse errors of a text, formatted. */
export function errorsOf(text: string, file = 'e.rules'): string[] {
  return loadRules(text, file, { helperId, ifindex: ifindexIn(IFNAMES) }).errors.map(formatError);
}

/** The `-A CHAIN …` line iptables-save would print for one filter rule, after a parse → format → parse round trip. */
export function savedRule(rule: string, chain = 'FORWARD'): string {
  const text0 = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', `-A ${chain} ${rule}`, 'COMMIT', ''].join('\n');
  const first = loadRules(text0, 's.rules', { helperId });
  if (first.errors.length) throw new Error(first.errors.map(formatError).join('\n'));
  const text = formatRuleSet(first.set, { comments: false });
  const again = loadRules(text, 's2.rules', { helperId });
  if (again.errors.length) throw new Error(again.errors.map(formatError).join('\n'));
  if (formatRuleSet(again.set, { comments: false }) !== text) throw new Error(`formatting is not stable:\n${text}`);
  return text.split('\n').find((l) => l.startsWith(`-A ${chain}`))!;
}
