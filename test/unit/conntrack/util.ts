/** Shared helpers for the conntrack unit tests (not a test file itself). */
import { Conntrack } from '../../../src/conntrack/core';
import type { ConntrackOptions } from '../../../src/conntrack/entries';
import { defaultTunables, type TunableValues } from '../../../src/conntrack/sysctl';
import { parsePacket } from '../../../src/packet/parse';
import { PacketContext } from '../../../src/conntrack/context';
import { NF_INET_FORWARD } from '../../../src/queue/layout';

export const MB = 1024 * 1024;

export function tunables(over: Partial<TunableValues> = {}): TunableValues {
  const t = defaultTunables(2048 * MB); // 65536 buckets
  t.nf_conntrack_buckets = 1024;
  t.nf_conntrack_max = 1024;
  return Object.assign(t, over);
}

export interface Logged {
  level: string;
  msg: string;
}

export function makeCt(over: Partial<TunableValues> = {}, opts: ConntrackOptions = {}): { ct: Conntrack; logs: Logged[] } {
  const logs: Logged[] = [];
  const log = {
    warn: (msg: string) => logs.push({ level: 'warn', msg }),
    info: (msg: string) => logs.push({ level: 'info', msg }),
    debug: (msg: string) => logs.push({ level: 'debug', msg }),
  };
  const ct = new Conntrack(tunables(over), { log, ...opts });
  return { ct, logs };
}

/** A fixed "random" source (same key every time). */
export function fixedRandom(seed = 1): (b: Uint8Array) => void {
  return (b) => {
    for (let i = 0; i < b.length; i++) b[i] = (seed * 31 + i * 17) & 0xff;
  };
}

export interface PktOpts {
  hook?: number;
  pktFlags?: number;
  notrack?: number;
  helper?: number;
}

/** Parse bytes into a fresh context the way the pipeline does. */
export function ctxOf(bytes: Uint8Array, o: PktOpts = {}): PacketContext {
  const ctx = new PacketContext();
  ctx.reset();
  parsePacket(bytes, 0, bytes.length, ctx.view);
  ctx.family = ctx.view.ipVersion;
  ctx.hook = o.hook ?? NF_INET_FORWARD;
  ctx.pktFlags = o.pktFlags ?? 0;
  ctx.notrack = o.notrack ?? 0;
  ctx.helper = o.helper ?? 0;
  ctx.length = bytes.length;
  return ctx;
}

/** Run a packet through in() and, if the "rules" accept, confirm(). Returns ctx; ctx.queue holds the final verdict. */
export function pass(ct: Conntrack, bytes: Uint8Array, now: number, o: PktOpts & { drop?: boolean } = {}): PacketContext {
  const ctx = ctxOf(bytes, o);
  let verdict = ct.in(ctx, now);
  if (verdict === 1) {
    if (o.drop) {
      ct.abort(ctx);
      verdict = 0;
    } else verdict = ct.confirm(ctx, now);
  }
  ctx.queue = verdict; // test convenience: the verdict
  return ctx;
}
