/**
 * -j TTL (libipt_TTL.c, IPv4) and, through `hopLimitTarget`, -j HL (libip6t_HL.c, IPv6):
 * xt_HL.c ttl_tg / hl_tg. --ttl-set N (0-255), --ttl-inc N / --ttl-dec N (1-255; the result
 * held to 255 and 0); the IPv4 header checksum follows the TTL (csum_replace2), IPv6 has none.
 * mangle table only (the kernel registers both with .table = "mangle"). In FORWARD the packet
 * nfqwall sees has been through ip_forward's decrement already, as the kernel's hook sees it.
 */
import type { PacketContext } from '../../conntrack/context';
import { replaceChecksum16 } from '../../packet/checksum';
import { NF_DROP } from '../../queue/layout';
import { parseUint } from '../matches/util';
import { XT_CONTINUE, type CompiledTarget, type Family, type TargetModule } from '../types';
import { exclusive } from './mark-ops';
import { canRewrite, rewritten } from './rewrite';

const SET = 0;
const INC = 1;
const DEC = 2;

export interface HopLimitState {
  /** the option given (null before) */
  op: string | null;
  mode: number;
  value: number;
}

/** The target over the IPv4 TTL (`TTL`, family 4) or the IPv6 hop limit (`HL`, family 6). */
export function hopLimitTarget(name: 'TTL' | 'HL', family: Family): TargetModule<HopLimitState> {
  const p = name.toLowerCase();
  const opts = [`${p}-set`, `${p}-dec`, `${p}-inc`];
  return {
    name,
    tables: ['mangle'],
    options: opts.map((o) => ({ name: o, invertible: false, args: 1 as const })),
    create: () => ({ op: null, mode: SET, value: 0 }),
    parse(s, opt, args, _inv, optTok, env) {
      const clash = exclusive(name, s.op, opt, opts);
      if (clash) return env.error(optTok, clash);
      const min = opt === opts[0] ? 0 : 1;
      const v = parseUint(args[0].text, 255);
      if (v < min) return env.error(args[0], `${name}: bad value for option "--${opt}", or out of range (${min}-255)`);
      s.op = opt;
      s.mode = opt === opts[0] ? SET : opt === opts[1] ? DEC : INC;
      s.value = v;
    },
    finalize(s, _rule, at, env) {
      if (s.op === null) env.error(at, `${name}: You must specify an action`);
    },
    familyOf: () => family,
    save: (s) => [`--${s.mode === SET ? opts[0] : s.mode === DEC ? opts[1] : opts[2]}`, String(s.value)],
    compile: (s) => new HopLimitAction(s.mode, s.value),
  };
}

export const ttlTarget = hopLimitTarget('TTL', 4);

class HopLimitAction implements CompiledTarget {
  constructor(
    private readonly mode: number,
    private readonly value: number,
  ) {}
  run(ctx: PacketContext): number {
    const v = ctx.view;
    const old = v.ttl;
    let n = this.mode === SET ? this.value : this.mode === INC ? old + this.value : old - this.value;
    if (n > 255) n = 255;
    else if (n < 0) n = 0;
    if (n === old) return XT_CONTINUE;
    if (!canRewrite(ctx)) return NF_DROP;
    const buf = v.buf;
    if (v.ipVersion === 4) {
      buf[v.off + 8] = n;
      replaceChecksum16(buf, v.off + 10, old << 8, n << 8);
    } else {
      buf[v.off + 7] = n;
    }
    v.ttl = n;
    rewritten(ctx);
    return XT_CONTINUE;
  }
}
