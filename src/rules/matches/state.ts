/** -m state: libxt_conntrack.c's state alias (xt_conntrack with only a state mask), same result as xt_state.c. */
import type { MatchModule } from '../types';
import { conntrackMatch, formatStates, parseStateList } from './conntrack';

export interface StateState {
  mask: number; // -1 = not given
  inv: boolean;
}

export const stateMatch: MatchModule<StateState> = {
  name: 'state',
  options: [{ name: 'state', invertible: true, args: 1 }],
  create: () => ({ mask: -1, inv: false }),
  parse(s, _opt, args, inv, optTok, env) {
    if (s.mask >= 0) return env.error(optTok, '--state given twice');
    s.mask = parseStateList(args[0], env, false);
    s.inv = inv;
  },
  finalize(s, _rule, at, env) {
    if (s.mask < 0) env.error(at, 'state match needs --state');
  },
  familyOf: () => 0,
  save(s) {
    return [...(s.inv ? ['!'] : []), '--state', formatStates(s.mask)];
  },
  compile(s, env) {
    // Modern iptables implements -m state as an alias of xt_conntrack (state_mask + invert flag).
    return conntrackMatch.compile({ ...conntrackMatch.create(), state: s.mask, stateInv: s.inv }, env);
  },
};
