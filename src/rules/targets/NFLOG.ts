/**
 * -j NFLOG: libxt_NFLOG.c (--nflog-group N, --nflog-prefix TEXT, --nflog-size N, --nflog-range N
 * — which never had an effect —, --nflog-threshold N) and xt_NFLOG.c: non-terminal, the packet
 * and prefix go to the readers of the group. nfqwall cannot inject into the kernel's
 * nfnetlink_log, so the readers are `nfqwall nflog --group N` (text, or pcap with the kernel's
 * NFLOG link type for `tcpdump -r -`), through this thread's ring (src/rules/nflog-ring.ts).
 * With no reader for the group nothing is copied. --nflog-size N copies at most N bytes (the
 * kernel's XT_NFLOG_F_COPY_LEN); without it the whole packet as the queue delivered it (its
 * copy range). --nflog-threshold batches messages in the kernel: no effect on what is delivered.
 */
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { quoteArg } from '../matches/util';
import { nflogBus } from '../nflog-ring';
import { wallClock } from '../wallclock';

/** sizeof(xt_nflog_info.prefix) - 1: xtopt_parse_string cuts a longer prefix */
export const NFLOG_PREFIX_MAX = 63;
const DEFAULT_THRESHOLD = 1; // XT_NFLOG_DEFAULT_THRESHOLD

export interface NflogState {
  group: number;
  prefix: string;
  len: number;
  /** --nflog-size given (XT_NFLOG_F_COPY_LEN) */
  copyLen: boolean;
  threshold: number;
  seen: string[];
}

/** xtables_strtoui: base 0 (0x… hex, 0… octal), within 0..max; -1 when not. */
function uint(t: string, max: number): number {
  const n = /^0[xX][0-9a-fA-F]+$/.test(t) ? parseInt(t.slice(2), 16) : /^0[0-7]*$/.test(t) ? parseInt(t, 8) || 0 : /^[1-9][0-9]*$/.test(t) ? Number(t) : -1;
  return n <= max ? n : -1;
}

export const nflogTarget: TargetModule<NflogState> = {
  name: 'NFLOG',
  tables: ['raw', 'mangle', 'nat', 'filter'],
  options: [
    { name: 'nflog-group', invertible: false, args: 1 },
    { name: 'nflog-prefix', invertible: false, args: 1 },
    { name: 'nflog-range', invertible: false, args: 1 },
    { name: 'nflog-size', invertible: false, args: 1 },
    { name: 'nflog-threshold', invertible: false, args: 1 },
  ],
  create: () => ({ group: 0, prefix: '', len: 0, copyLen: false, threshold: DEFAULT_THRESHOLD, seen: [] }),
  parse(s, opt, args, _inv, optTok, env) {
    if (s.seen.includes(opt)) return env.error(optTok, `NFLOG: option "--${opt}" can only be used once`);
    const other = opt === 'nflog-size' ? 'nflog-range' : opt === 'nflog-range' ? 'nflog-size' : '';
    if (other && s.seen.includes(other)) return env.error(optTok, `NFLOG: option "--${opt}" cannot be used together with "--${other}"`);
    s.seen.push(opt);
    const a = args[0];
    const t = a.text;
    switch (opt) {
      case 'nflog-prefix': {
        if (t === '') return env.error(a, 'NFLOG: --nflog-prefix must have a minimum length of 1 characters');
        if (t.includes('\n')) return env.error(a, 'Newlines not allowed in --log-prefix');
        const b = Buffer.from(t);
        s.prefix = b.length > NFLOG_PREFIX_MAX ? b.subarray(0, NFLOG_PREFIX_MAX).toString() : t;
        return;
      }
      case 'nflog-group':
      case 'nflog-threshold': {
        const n = uint(t, 0xffff);
        if (n < 0) return env.error(a, `NFLOG: bad value for option "--${opt}" ("${t}"), 0..65535`);
        if (opt === 'nflog-group') s.group = n;
        else s.threshold = n;
        return;
      }
      default: {
        const n = uint(t, 0xffffffff);
        if (n < 0) return env.error(a, `NFLOG: bad value for option "--${opt}" ("${t}"), 0..4294967295`);
        s.len = n;
        s.copyLen = opt === 'nflog-size';
      }
    }
  },
  finalize() {},
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.prefix !== '') out.push('--nflog-prefix', quoteArg(s.prefix));
    if (s.group) out.push('--nflog-group', String(s.group));
    if (s.copyLen) out.push('--nflog-size', String(s.len));
    else if (s.len) out.push('--nflog-range', String(s.len));
    if (s.threshold !== DEFAULT_THRESHOLD) out.push('--nflog-threshold', String(s.threshold));
    return out;
  },
  compile: (s) => new NflogAction(s.group, Buffer.from(s.prefix), s.copyLen ? s.len : -1),
};

class NflogAction implements CompiledTarget {
  private readonly clock = wallClock.v;
  constructor(
    private readonly group: number,
    private readonly prefix: Uint8Array,
    /** bytes to copy at most, -1: all */
    private readonly size: number,
  ) {}

  run(ctx: PacketContext, now: number): number {
    const l = nflogBus.listeners;
    const ring = nflogBus.ring;
    if (l === null || ring === null || l[this.group] === 0) return XT_CONTINUE;
    const v = ctx.view;
    const copy = this.size >= 0 && this.size < v.len ? this.size : v.len;
    ring.push(this.group, ctx.family, ctx.hook, ctx.indev, ctx.outdev, ctx.length, now + this.clock[0], ctx.mark, this.prefix, v.buf, v.off, copy);
    return XT_CONTINUE;
  }
}
