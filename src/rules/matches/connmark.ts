/**
 * -m connmark: libxt_connmark.c (--mark VALUE[/MASK], `!`), xt_connmark.c connmark_mt:
 * no conntrack entry (INVALID, UNTRACKED) never matches, negated or not; otherwise
 * ((ct->mark & mask) == value) ^ invert. The mark is the entry's own (`mark=` in
 * `conntrack -L`), which a new expected connection takes from its master.
 */
import type { CompiledMatch, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { CTSTATE_INVALID, CTSTATE_UNTRACKED } from '../../conntrack/constants';
import { markMatch, type MarkState } from './mark';

export const connmarkMatch: MatchModule<MarkState> = {
  ...markMatch,
  name: 'connmark',
  compile(s) {
    return new ConnmarkMatch(s.value, s.mask, s.inv);
  },
};

class ConnmarkMatch implements CompiledMatch {
  constructor(
    private readonly value: number,
    private readonly mask: number,
    private readonly inv: boolean,
  ) {}
  match(ctx: PacketContext): boolean {
    if ((ctx.ctstate & (CTSTATE_INVALID | CTSTATE_UNTRACKED)) !== 0) return false;
    return ((ctx.ctmark & this.mask) >>> 0 === this.value) !== this.inv;
  }
}
