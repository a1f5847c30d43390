/**
 * -j CT (libxt_CT.c / xt_CT.c) and -j NOTRACK, raw table only. Non-terminal like the
 * kernel's CT target (XT_CONTINUE): --notrack marks the packet untracked, --helper NAME
 * attaches a helper template to the connection conntrack will create.
 */
import type { TargetModule } from '../types';
import { quoteArg } from '../matches/util';

export interface CtState {
  notrack: boolean;
  helper: string | null;
}

export const ctTarget: TargetModule<CtState> = {
  name: 'CT',
  tables: ['raw'],
  options: [
    { name: 'notrack', invertible: false, args: 0 },
    { name: 'helper', invertible: false, args: 1 },
  ],
  unsupported: ['ctevents', 'expevents', 'zone', 'zone-orig', 'zone-reply', 'timeout', 'notrack-zone'],
  create: () => ({ notrack: false, helper: null }),
  parse(s, opt, args, _inv, optTok, env) {
    if (opt === 'notrack') {
      if (s.notrack) return env.error(optTok, '--notrack given twice');
      s.notrack = true;
    } else {
      if (s.helper !== null) return env.error(optTok, '--helper given twice');
      const n = args[0].text;
      if (n === '' || n.length > 15) return env.error(args[0], `bad helper name "${n}"`);
      if (env.helperId && env.helperId(n) === 0) return env.error(args[0], `no such helper "${n}"`);
      s.helper = n;
    }
  },
  finalize(s, _rule, at, env) {
    if (s.notrack && s.helper !== null) env.error(at, 'CT --notrack cannot be combined with --helper');
  },
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.notrack) out.push('--notrack');
    if (s.helper !== null) out.push('--helper', quoteArg(s.helper));
    return out;
  },
};

export const notrackTarget: TargetModule<Record<string, never>> = {
  name: 'NOTRACK',
  tables: ['raw'],
  options: [],
  create: () => ({}),
  parse() {},
  finalize() {},
  familyOf: () => 0,
  save: () => [],
};
