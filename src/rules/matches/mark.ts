/**
 * -m mark: libxt_mark.c (--mark VALUE[/MASK], `!`), xt_mark.c mark_mt:
 * ((skb->mark & mask) == value) ^ invert. The packet mark is the one the queue delivered
 * (NFQA_MARK, IX_MARK of the batch row).
 */
import type { CompiledMatch, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { formatMarkMask, parseMarkMask } from './util';

export interface MarkState {
  value: number;
  mask: number;
  inv: boolean;
  set: boolean;
}

export const markMatch: MatchModule<MarkState> = {
  name: 'mark',
  options: [{ name: 'mark', invertible: true, args: 1 }],
  create: () => ({ value: 0, mask: 0xffffffff, inv: false, set: false }),
  parse(s, _opt, args, inv, optTok, env) {
    if (s.set) return env.error(optTok, '--mark given twice');
    const vm = parseMarkMask(args[0], env);
    if (!vm) return;
    [s.value, s.mask] = vm;
    s.inv = inv;
    s.set = true;
  },
  finalize(s, _rule, at, env) {
    if (!s.set) env.error(at, `${at.text} match needs --mark`);
  },
  familyOf: () => 0,
  save(s) {
    return [...(s.inv ? ['!'] : []), '--mark', formatMarkMask(s.value, s.mask)];
  },
  compile(s) {
    return new MarkMatch(s.value, s.mask, s.inv);
  },
};

class MarkMatch implements CompiledMatch {
  constructor(
    private readonly value: number,
    private readonly mask: number,
    private readonly inv: boolean,
  ) {}
  match(ctx: PacketContext): boolean {
    return ((ctx.mark & this.mask) >>> 0 === this.value) !== this.inv;
  }
}
