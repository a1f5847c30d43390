/** -m helper: libxt_helper.c, xt_helper.c helper_mt (helper of the connection's master). */
import type { CompiledMatch, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { quoteArg } from './util';

export interface HelperState {
  name: string | null;
  inv: boolean;
}

export const helperMatch: MatchModule<HelperState> = {
  name: 'helper',
  options: [{ name: 'helper', invertible: true, args: 1 }],
  create: () => ({ name: null, inv: false }),
  parse(s, _opt, args, inv, optTok, env) {
    if (s.name !== null) return env.error(optTok, '--helper given twice');
    const n = args[0].text;
    if (n.length > 29) return env.error(args[0], `helper name "${n}" is too long`);
    if (n !== '' && env.helperId && env.helperId(n) === 0) return env.error(args[0], `unknown helper "${n}"`);
    s.name = n;
    s.inv = inv;
  },
  finalize(s, _rule, at, env) {
    if (s.name === null) env.error(at, 'helper match needs --helper');
  },
  familyOf: () => 0,
  save(s) {
    return [...(s.inv ? ['!'] : []), '--helper', quoteArg(s.name ?? '')];
  },
  compile(s, env) {
    const id = s.name ? env.helperId(s.name) : 0;
    // An empty name matches any helper (helper_mt); an unknown name never matches.
    return new HelperMatch(s.name === '' ? 0 : id > 0 ? id : -1, s.inv);
  },
};

class HelperMatch implements CompiledMatch {
  /** id: 0 = any helper, -1 = a name that resolves to nothing */
  constructor(
    private readonly id: number,
    private readonly inv: boolean,
  ) {}
  match(ctx: PacketContext): boolean {
    const h = ctx.masterHelper;
    if (h === 0) return this.inv; // no conntrack, no master, or master without helper
    if (this.id === 0) return !this.inv;
    return (h === this.id) !== this.inv;
  }
}
