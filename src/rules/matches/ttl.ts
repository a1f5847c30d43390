/**
 * -m ttl (IPv4): libxt_ttl.c (--ttl-eq N, ! --ttl-eq N, --ttl-lt N, --ttl-gt N) and
 * ipt_ttl.c / xt_hl.c ttl_mt on the TTL of the packet as the queue has it (in FORWARD already
 * decremented, as the kernel's hook sees it). `hopLimitMatch` builds -m hl (IPv6) the same way.
 */
import type { CompiledMatch, Family, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';

const EQ = 0;
const NE = 1;
const LT = 2;
const GT = 3;

export interface TtlState {
  mode: number;
  value: number;
  set: boolean;
}

/** The match over the IPv4 TTL (`ttl`, family 4) or the IPv6 hop limit (`hl`, family 6). */
export function hopLimitMatch(name: 'ttl' | 'hl', family: Family): MatchModule<TtlState> {
  const opts = ['eq', 'lt', 'gt'].map((m) => `${name}-${m}`);
  return {
    name,
    family,
    options: opts.map((o, i) => ({ name: o, invertible: i === 0, args: 1 as const })),
    create: () => ({ mode: EQ, value: 0, set: false }),
    parse(s, opt, args, inv, optTok, env) {
      if (s.set) return env.error(optTok, `only one of ${opts.map((o) => `--${o}`).join(', ')} is allowed`);
      const t = args[0].text;
      if (!/^[0-9]+$/.test(t) || Number(t) > 255) return env.error(args[0], `bad value for option "--${opt}", or out of range (0-255)`);
      s.value = Number(t);
      s.mode = opt.endsWith('-eq') ? (inv ? NE : EQ) : opt.endsWith('-lt') ? LT : GT;
      s.set = true;
    },
    finalize(s, _rule, at, env) {
      if (!s.set) env.error(at, `${name} match needs one of ${opts.map((o) => `--${o}`).join(', ')}`);
    },
    familyOf: () => family,
    save(s) {
      const mode = s.mode === NE ? ['!', `--${name}-eq`] : [`--${name}-${['eq', 'eq', 'lt', 'gt'][s.mode]}`];
      return [...mode, String(s.value)];
    },
    compile(s) {
      return new TtlMatch(s.mode, s.value);
    },
  };
}

class TtlMatch implements CompiledMatch {
  constructor(
    private readonly mode: number,
    private readonly value: number,
  ) {}
  match(ctx: PacketContext): boolean {
    const t = ctx.view.ttl;
    const m = this.mode;
    return m === EQ ? t === this.value : m === NE ? t !== this.value : m === LT ? t < this.value : t > this.value;
  }
}

export const ttlMatch = hopLimitMatch('ttl', 4);
