/** -m icmp: libxt_icmp.c (names as `iptables -p icmp -h` lists them), xt_icmp semantics (icmp_match). */
import type { CompiledMatch, MatchModule, MatchRuntime, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { l4HeaderReadable } from './util';

/** [name, type, code_min, code_max] */
export type IcmpName = readonly [string, number, number, number];

export const ICMP_NAMES: readonly IcmpName[] = [
  ['any', 0xff, 0, 0xff],
  ['echo-reply', 0, 0, 0xff],
  ['pong', 0, 0, 0xff],
  ['destination-unreachable', 3, 0, 0xff],
  ['network-unreachable', 3, 0, 0],
  ['host-unreachable', 3, 1, 1],
  ['protocol-unreachable', 3, 2, 2],
  ['port-unreachable', 3, 3, 3],
  ['fragmentation-needed', 3, 4, 4],
  ['source-route-failed', 3, 5, 5],
  ['network-unknown', 3, 6, 6],
  ['host-unknown', 3, 7, 7],
  ['network-prohibited', 3, 9, 9],
  ['host-prohibited', 3, 10, 10],
  ['TOS-network-unreachable', 3, 11, 11],
  ['TOS-host-unreachable', 3, 12, 12],
  ['communication-prohibited', 3, 13, 13],
  ['host-precedence-violation', 3, 14, 14],
  ['precedence-cutoff', 3, 15, 15],
  ['source-quench', 4, 0, 0xff],
  ['redirect', 5, 0, 0xff],
  ['network-redirect', 5, 0, 0],
  ['host-redirect', 5, 1, 1],
  ['TOS-network-redirect', 5, 2, 2],
  ['TOS-host-redirect', 5, 3, 3],
  ['echo-request', 8, 0, 0xff],
  ['ping', 8, 0, 0xff],
  ['router-advertisement', 9, 0, 0xff],
  ['router-solicitation', 10, 0, 0xff],
  ['time-exceeded', 11, 0, 0xff],
  ['ttl-exceeded', 11, 0, 0xff],
  ['ttl-zero-during-transit', 11, 0, 0],
  ['ttl-zero-during-reassembly', 11, 1, 1],
  ['parameter-problem', 12, 0, 0xff],
  ['ip-header-bad', 12, 0, 0],
  ['required-option-missing', 12, 1, 1],
  ['timestamp-request', 13, 0, 0xff],
  ['timestamp-reply', 14, 0, 0xff],
  ['address-mask-request', 17, 0, 0xff],
  ['address-mask-reply', 18, 0, 0xff],
];

export interface IcmpTypeState {
  type: number; // -1 = not given; 0xff = any
  codeMin: number;
  codeMax: number;
  inv: boolean;
}

/** Parses NAME or TYPE[/CODE] against a name table. Returns false after reporting. */
export function parseIcmpType(s: IcmpTypeState, tok: Token, env: ParseEnv, names: readonly IcmpName[], family: string): boolean {
  const t = tok.text;
  const byName = names.find(([n]) => n.toLowerCase() === t.toLowerCase());
  if (byName) {
    s.type = byName[1];
    s.codeMin = byName[2];
    s.codeMax = byName[3];
    return true;
  }
  const m = /^([0-9]{1,3})(?:\/([0-9]{1,3}))?$/.exec(t);
  if (!m || Number(m[1]) > 255 || (m[2] !== undefined && Number(m[2]) > 255)) {
    env.error(tok, `unknown ${family} type "${t}"`);
    return false;
  }
  s.type = Number(m[1]);
  if (m[2] === undefined) {
    s.codeMin = 0;
    s.codeMax = 0xff;
  } else {
    s.codeMin = s.codeMax = Number(m[2]);
  }
  return true;
}

/** iptables-save spelling: numbers, `TYPE/CODE` when a code is fixed. */
export function saveIcmpType(s: IcmpTypeState, opt: string, anyName: boolean): string[] {
  const inv = s.inv ? ['!'] : [];
  if (anyName && s.type === 0xff) return [...inv, opt, 'any'];
  const code = s.codeMin !== 0 || s.codeMax !== 0xff ? `/${s.codeMin}` : '';
  return [...inv, opt, `${s.type}${code}`];
}

export const icmpMatch: MatchModule<IcmpTypeState> = {
  name: 'icmp',
  proto: 1,
  family: 4,
  options: [{ name: 'icmp-type', invertible: true, args: 1 }],
  create: () => ({ type: -1, codeMin: 0, codeMax: 0xff, inv: false }),
  parse(s, _opt, args, inv, optTok, env) {
    if (s.type >= 0) return env.error(optTok, '--icmp-type given twice');
    if (parseIcmpType(s, args[0], env, ICMP_NAMES, 'ICMP')) s.inv = inv;
  },
  finalize(s) {
    // libxt_icmp's default when only -m icmp is given: any type.
    if (s.type < 0) s.type = 0xff;
  },
  familyOf: () => 4,
  save(s) {
    return saveIcmpType(s, '--icmp-type', true);
  },
  compile(s, env) {
    return new IcmpMatch(s, env.runtime);
  },
};

/** icmp_match / icmp6_match: fragment → no, short header → hotdrop, type 0xff = any. */
export class IcmpMatch implements CompiledMatch {
  /** 0xff = any; 0x100 | t = exactly t (no wildcard) */
  private readonly type: number;
  private readonly cmin: number;
  private readonly cmax: number;
  private readonly inv: boolean;
  /** anyWildcard: type 0xff means any type (IPv4 icmp_type_code_match only). */
  constructor(
    s: IcmpTypeState,
    private readonly rt: MatchRuntime,
    anyWildcard = true,
  ) {
    this.type = anyWildcard ? s.type : s.type | 0x100;
    this.cmin = s.codeMin;
    this.cmax = s.codeMax;
    this.inv = s.inv;
  }
  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    if (v.fragOffset !== 0) return false;
    if (!l4HeaderReadable(v)) {
      this.rt.hotdrop = 1;
      return false;
    }
    const m = this.type === 0xff || ((this.type & 0xff) === v.icmpType && v.icmpCode >= this.cmin && v.icmpCode <= this.cmax);
    return m !== this.inv;
  }
}
