/**
 * -j DSCP (libxt_DSCP.c, xt_DSCP.c dscp_tg / dscp_tg6): --set-dscp N (0-63) or
 * --set-dscp-class NAME (libxt_dscp_helper.c's classes), saved as --set-dscp 0xNN. The two
 * ECN bits stay; an IPv4 header checksum is updated as ipv4_change_dsfield does it. mangle
 * table only. Written only when the DSCP differs, as the kernel.
 */
import type { PacketContext } from '../../conntrack/context';
import { NF_DROP } from '../../queue/layout';
import { parseUint } from '../matches/util';
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../types';
import { exclusive } from './mark-ops';
import { canRewrite, rewritten } from './rewrite';

/** libxt_dscp_helper.c ds_classes (names compared without case) */
const CLASSES: Record<string, number> = {
  CS0: 0x00,
  CS1: 0x08,
  CS2: 0x10,
  CS3: 0x18,
  CS4: 0x20,
  CS5: 0x28,
  CS6: 0x30,
  CS7: 0x38,
  BE: 0x00,
  AF11: 0x0a,
  AF12: 0x0c,
  AF13: 0x0e,
  AF21: 0x12,
  AF22: 0x14,
  AF23: 0x16,
  AF31: 0x1a,
  AF32: 0x1c,
  AF33: 0x1e,
  AF41: 0x22,
  AF42: 0x24,
  AF43: 0x26,
  EF: 0x2e,
};

const OPTS = ['set-dscp', 'set-dscp-class'];

export interface DscpState {
  op: string | null;
  dscp: number;
}

export const dscpTarget: TargetModule<DscpState> = {
  name: 'DSCP',
  tables: ['mangle'],
  options: OPTS.map((name) => ({ name, invertible: false, args: 1 })),
  create: () => ({ op: null, dscp: 0 }),
  parse(s, opt, args, _inv, optTok, env) {
    const clash = exclusive('DSCP', s.op, opt, OPTS);
    if (clash) return env.error(optTok, clash);
    const t = args[0].text;
    const d = opt === 'set-dscp' ? parseUint(t, 63) : (CLASSES[t.toUpperCase()] ?? -1);
    if (d < 0) return env.error(args[0], opt === 'set-dscp' ? `DSCP: bad value for option "--set-dscp", or out of range (0-63)` : `Invalid DSCP value \`${t}'`);
    s.op = opt;
    s.dscp = d;
  },
  finalize(s, _rule, at, env) {
    if (s.op === null) env.error(at, 'DSCP target: Parameter --set-dscp is required');
  },
  familyOf: () => 0,
  save: (s) => ['--set-dscp', `0x${s.dscp.toString(16).padStart(2, '0')}`],
  compile: (s) => new DscpAction(s.dscp),
};

class DscpAction implements CompiledTarget {
  constructor(private readonly dscp: number) {}
  run(ctx: PacketContext): number {
    const v = ctx.view;
    const tos = v.tos;
    if (tos >>> 2 === this.dscp) return XT_CONTINUE;
    if (!canRewrite(ctx)) return NF_DROP;
    const ds = (tos & 3) | (this.dscp << 2);
    const buf = v.buf;
    const o = v.off;
    if (v.ipVersion === 4) {
      // ipv4_change_dsfield, its own arithmetic (include/net/dsfield.h)
      let check = (buf[o + 10] << 8) | buf[o + 11];
      check += tos;
      if ((check + 1) >>> 16 !== 0) check = (check + 1) & 0xffff;
      check -= ds;
      check += check >> 16;
      buf[o + 10] = (check >>> 8) & 0xff;
      buf[o + 11] = check & 0xff;
      buf[o + 1] = ds;
    } else {
      // the traffic class is bits 4-11 of the first 16-bit word (ipv6_change_dsfield)
      buf[o] = (buf[o] & 0xf0) | (ds >>> 4);
      buf[o + 1] = (buf[o + 1] & 0x0f) | ((ds & 0x0f) << 4);
    }
    v.tos = ds;
    rewritten(ctx);
    return XT_CONTINUE;
  }
}
