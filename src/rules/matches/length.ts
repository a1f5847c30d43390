/**
 * -m length: libxt_length.c (--length N[:M], `!`) and xt_length.c: the IPv4 total length, or
 * the IPv6 payload length plus the 40-byte header, of the packet as the queue delivered it.
 */
import type { CompiledMatch, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';

export interface LengthState {
  min: number;
  max: number;
  inv: boolean;
  set: boolean;
}

export const lengthMatch: MatchModule<LengthState> = {
  name: 'length',
  options: [{ name: 'length', invertible: true, args: 1 }],
  create: () => ({ min: 0, max: 65535, inv: false, set: false }),
  parse(s, _opt, args, inv, optTok, env) {
    if (s.set) return env.error(optTok, '--length given twice');
    const m = /^([0-9]*)(?::([0-9]*))?$/.exec(args[0].text);
    const lo = m && m[1] !== '' ? Number(m[1]) : m && m[2] !== undefined ? 0 : NaN;
    const hi = m && m[2] !== undefined ? (m[2] === '' ? 65535 : Number(m[2])) : lo;
    if (!m || Number.isNaN(lo) || lo > 65535 || hi > 65535) return env.error(args[0], `bad --length "${args[0].text}" (N or N:M, 0..65535)`);
    if (lo > hi) return env.error(args[0], `bad --length "${args[0].text}" (range out of order)`);
    s.min = lo;
    s.max = hi;
    s.inv = inv;
    s.set = true;
  },
  finalize(s, _rule, at, env) {
    if (!s.set) env.error(at, 'length match needs --length');
  },
  familyOf: () => 0,
  save(s) {
    return [...(s.inv ? ['!'] : []), '--length', s.min === s.max ? String(s.min) : `${s.min}:${s.max}`];
  },
  compile(s) {
    return new LengthMatch(s.min, s.max, s.inv);
  },
};

class LengthMatch implements CompiledMatch {
  constructor(
    private readonly min: number,
    private readonly max: number,
    private readonly inv: boolean,
  ) {}
  match(ctx: PacketContext): boolean {
    const len = ctx.view.ipTotalLen;
    return (len >= this.min && len <= this.max) !== this.inv;
  }
}
