/**
 * -m conntrack: libxt_conntrack.c options (--ctstate, --ctproto, --ctstatus, --ctdir),
 * xt_conntrack.c conntrack_mt semantics.
 */
import type { CompiledMatch, MatchModule, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import {
  CTSTATE_DNAT,
  CTSTATE_ESTABLISHED,
  CTSTATE_INVALID,
  CTSTATE_NEW,
  CTSTATE_RELATED,
  CTSTATE_SNAT,
  CTSTATE_UNTRACKED,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_EXPECTED,
  IPS_SEEN_REPLY,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_RELATED,
  IP_CT_RELATED_REPLY,
} from '../../conntrack/constants';
import { parseProto } from './basic';
import { splitList } from './util';

/** IPS_SRC_NAT / IPS_DST_NAT (nf_conntrack_common.h), for the SNAT / DNAT pseudo states. */
const IPS_SRC_NAT = 1 << 4;
const IPS_DST_NAT = 1 << 5;

/** Order iptables-save prints states in (conntrack_dump_states / state_print_state). */
export const CTSTATE_NAMES: readonly [string, number][] = [
  ['INVALID', CTSTATE_INVALID],
  ['NEW', CTSTATE_NEW],
  ['RELATED', CTSTATE_RELATED],
  ['ESTABLISHED', CTSTATE_ESTABLISHED],
  ['UNTRACKED', CTSTATE_UNTRACKED],
  ['SNAT', CTSTATE_SNAT],
  ['DNAT', CTSTATE_DNAT],
];

export const CTSTATUS_NAMES: readonly [string, number][] = [
  ['EXPECTED', IPS_EXPECTED],
  ['SEEN_REPLY', IPS_SEEN_REPLY],
  ['ASSURED', IPS_ASSURED],
  ['CONFIRMED', IPS_CONFIRMED],
];

export function parseStateList(tok: Token, env: ParseEnv, allowNat: boolean): number {
  const parts = splitList(tok, tok.text, env, 'state');
  if (!parts) return -1;
  let mask = 0;
  for (const p of parts) {
    const e = CTSTATE_NAMES.find(([n]) => n === p.toUpperCase());
    if (!e || (!allowNat && (e[1] === CTSTATE_SNAT || e[1] === CTSTATE_DNAT))) {
      env.error(tok, `unknown state "${p}"`);
      return -1;
    }
    mask |= e[1];
  }
  return mask;
}

export function formatStates(mask: number): string {
  return CTSTATE_NAMES.filter(([, b]) => mask & b)
    .map(([n]) => n)
    .join(',');
}

export interface ConntrackState {
  state: number; // -1 = not given
  stateInv: boolean;
  proto: number; // -1 = not given
  protoInv: boolean;
  status: number; // -1 = not given
  statusInv: boolean;
  dir: 'ORIGINAL' | 'REPLY' | null;
}

export const conntrackMatch: MatchModule<ConntrackState> = {
  name: 'conntrack',
  options: [
    { name: 'ctstate', invertible: true, args: 1 },
    { name: 'ctproto', invertible: true, args: 1 },
    { name: 'ctstatus', invertible: true, args: 1 },
    { name: 'ctdir', invertible: false, args: 1 },
  ],
  unsupported: ['ctorigsrc', 'ctorigdst', 'ctreplsrc', 'ctrepldst', 'ctorigsrcport', 'ctorigdstport', 'ctreplsrcport', 'ctrepldstport', 'ctexpire'],
  create: () => ({ state: -1, stateInv: false, proto: -1, protoInv: false, status: -1, statusInv: false, dir: null }),
  parse(s, opt, args, inv, optTok, env) {
    const a = args[0];
    switch (opt) {
      case 'ctstate':
        if (s.state >= 0) return env.error(optTok, '--ctstate given twice');
        s.state = parseStateList(a, env, true);
        s.stateInv = inv;
        return;
      case 'ctproto': {
        const p = parseProto(a.text);
        if (p < 0) return env.error(a, `unknown protocol "${a.text}"`);
        if (p === 0) return env.error(a, 'rule would never match protocol (--ctproto 0)');
        s.proto = p;
        s.protoInv = inv;
        return;
      }
      case 'ctstatus': {
        const parts = splitList(a, a.text, env, 'status');
        if (!parts) return;
        let m = 0;
        for (const p of parts) {
          if (p.toUpperCase() === 'NONE') continue;
          const e = CTSTATUS_NAMES.find(([n]) => n === p.toUpperCase());
          if (!e) return env.error(a, `unknown ctstatus "${p}"`);
          m |= e[1];
        }
        s.status = m;
        s.statusInv = inv;
        return;
      }
      case 'ctdir': {
        const d = a.text.toUpperCase();
        if (d !== 'ORIGINAL' && d !== 'REPLY') return env.error(a, `bad --ctdir "${a.text}" (ORIGINAL or REPLY)`);
        s.dir = d;
        return;
      }
    }
  },
  finalize(s, _rule, at, env) {
    if (s.state < 0 && s.proto < 0 && s.status < 0 && !s.dir) env.error(at, 'conntrack match needs at least one option');
  },
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.state >= 0) out.push(...(s.stateInv ? ['!'] : []), '--ctstate', formatStates(s.state));
    if (s.proto >= 0) out.push(...(s.protoInv ? ['!'] : []), '--ctproto', String(s.proto));
    if (s.status >= 0) {
      const names = CTSTATUS_NAMES.filter(([, b]) => s.status & b).map(([n]) => n);
      out.push(...(s.statusInv ? ['!'] : []), '--ctstatus', names.length ? names.join(',') : 'NONE');
    }
    if (s.dir) out.push('--ctdir', s.dir);
    return out;
  },
  compile(s) {
    return new ConntrackMatch(s);
  },
};

/** The conntrack-derived bit xt_conntrack / xt_state test for this packet (without SNAT/DNAT). */
export function hasConntrack(ctx: PacketContext): boolean {
  return (ctx.ctstate & (CTSTATE_INVALID | CTSTATE_UNTRACKED)) === 0;
}

/**
 * The entry's protocol (nf_ct_protonum): for an ICMP error attached RELATED to a
 * connection it is the embedded packet's protocol, otherwise the packet's.
 */
export function ctProto(ctx: PacketContext): number {
  const v = ctx.view;
  if ((ctx.ctinfo === IP_CT_RELATED || ctx.ctinfo === IP_CT_RELATED_REPLY) && v.hasInner !== 0 && (v.proto === 1 || v.proto === 58)) return v.innerProto;
  return v.proto;
}

class ConntrackMatch implements CompiledMatch {
  private readonly hasState: boolean;
  private readonly state: number;
  private readonly stateInv: boolean;
  private readonly proto: number;
  private readonly protoInv: boolean;
  private readonly status: number;
  private readonly statusInv: boolean;
  /** -1 none, 0 ORIGINAL, 1 REPLY */
  private readonly dir: number;
  constructor(s: ConntrackState) {
    this.hasState = s.state >= 0;
    this.state = s.state < 0 ? 0 : s.state;
    this.stateInv = s.stateInv;
    this.proto = s.proto;
    this.protoInv = s.protoInv;
    this.status = s.status;
    this.statusInv = s.statusInv;
    this.dir = s.dir === null ? -1 : s.dir === 'REPLY' ? 1 : 0;
  }
  match(ctx: PacketContext): boolean {
    const ct = hasConntrack(ctx);
    if (this.hasState) {
      let bit = ctx.ctstate;
      if (ct) {
        if (ctx.ctstatus & IPS_SRC_NAT) bit |= CTSTATE_SNAT;
        if (ctx.ctstatus & IPS_DST_NAT) bit |= CTSTATE_DNAT;
      }
      if (((this.state & bit) !== 0) === this.stateInv) return false;
    }
    // conntrack_mt: without a conntrack only the state part can decide.
    if (!ct) return this.hasState;
    if (this.proto >= 0 && (ctProto(ctx) === this.proto) === this.protoInv) return false;
    if (this.status >= 0 && ((this.status & ctx.ctstatus) !== 0) === this.statusInv) return false;
    if (this.dir >= 0 && (ctx.ctinfo >= IP_CT_ESTABLISHED_REPLY ? 1 : 0) !== this.dir) return false;
    return true;
  }
}
