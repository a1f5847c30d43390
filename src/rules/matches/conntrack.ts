/**
 * -m conntrack: libxt_conntrack.c options (--ctstate, --ctproto, --ctorigsrc/--ctorigdst/
 * --ctreplsrc/--ctrepldst, --ctorigsrcport/… (revision 3: port ranges), --ctstatus, --ctdir),
 * xt_conntrack.c conntrack_mt semantics. The tuple options read the entry's stored tuples: the
 * REPLY tuple is the NAT binding's when the entry is NATed.
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
import { parsePortRange, splitList } from './util';
import { addrToString } from '../../packet/format';
import { inetAton, maskPrefix, parseIp6, parseMask, prefixMask } from '../addr';
import type { Family } from '../types';

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

/** --ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst: an address and mask of one family (XTTYPE_HOSTMASK: not masked). */
export interface CtAddr {
  family: 4 | 6;
  addr: number[];
  mask: number[];
  inv: boolean;
}

/** --ctorigsrcport/…: a port range (revision 3) */
export interface CtPorts {
  lo: number;
  hi: number;
  inv: boolean;
}

/** The tuple options in xt_conntrack's order: which tuple (0 ORIG, 1 REPLY) and side (0 src, 1 dst). */
export const CT_TUPLE_OPTS = [
  ['ctorigsrc', 0, 0],
  ['ctorigdst', 0, 1],
  ['ctreplsrc', 1, 0],
  ['ctrepldst', 1, 1],
] as const;

export interface ConntrackState {
  state: number; // -1 = not given
  stateInv: boolean;
  proto: number; // -1 = not given
  protoInv: boolean;
  /** per CT_TUPLE_OPTS: addresses, then ports (null = not given) */
  addrs: (CtAddr | null)[];
  ports: (CtPorts | null)[];
  status: number; // -1 = not given
  statusInv: boolean;
  dir: 'ORIGINAL' | 'REPLY' | null;
}

/** xtopt_parse_hostmask: ADDR[/PREFIX|/MASK], the address as getaddrinfo reads a number (IPv4: inet_aton). */
function parseHostMask(text: string): CtAddr | string {
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const v4 = inetAton(host);
  const v6 = v4 < 0 ? parseIp6(host) : null;
  if (v4 < 0 && !v6) {
    if (host.includes(':') || /^[0-9.]*$/.test(host)) return `bad address "${host}"`;
    return `host names are not supported ("${host}"): use an address (iptables would resolve the name once, at load time)`;
  }
  const family: 4 | 6 = v4 >= 0 ? 4 : 6;
  const addr = v4 >= 0 ? [v4, 0, 0, 0] : v6!;
  const mask = slash < 0 ? prefixMask(family, family === 4 ? 32 : 128) : parseMask(family, text.slice(slash + 1));
  if (typeof mask === 'string') return mask;
  // iptables 1.8.9 takes a non-prefix mask here but keeps a different one (it saves the address alone)
  if (maskPrefix(family, mask) < 0) return `a mask that is not a prefix ("${text.slice(slash + 1)}") is not supported here: use /LENGTH`;
  return { family, addr, mask, inv: false };
}

/** conntrack_dump_addr, numeric: the address as stored, the prefix as xtables_ip(6)mask_to_numeric ('' when full). */
function formatHostMask(a: CtAddr): string {
  const full = a.family === 4 ? 32 : 128;
  const p = maskPrefix(a.family, a.mask);
  return addrToString(a.family, a.addr) + (p === full ? '' : `/${p}`);
}

export const conntrackMatch: MatchModule<ConntrackState> = {
  name: 'conntrack',
  options: [
    { name: 'ctstate', invertible: true, args: 1 },
    { name: 'ctproto', invertible: true, args: 1 },
    { name: 'ctstatus', invertible: true, args: 1 },
    { name: 'ctdir', invertible: false, args: 1 },
    ...CT_TUPLE_OPTS.map(([n]) => ({ name: n, invertible: true, args: 1 as const })),
    ...CT_TUPLE_OPTS.map(([n]) => ({ name: `${n}port`, invertible: true, args: 1 as const })),
  ],
  unsupported: ['ctexpire'],
  create: () => ({
    state: -1,
    stateInv: false,
    proto: -1,
    protoInv: false,
    addrs: [null, null, null, null],
    ports: [null, null, null, null],
    status: -1,
    statusInv: false,
    dir: null,
  }),
  parse(s, opt, args, inv, optTok, env) {
    const a = args[0];
    const ti = CT_TUPLE_OPTS.findIndex(([n]) => opt === n || opt === `${n}port`);
    if (ti >= 0) {
      if (opt.endsWith('port')) {
        // XTTYPE_PORTRC: numbers or service names, FIRST:LAST
        const r = parsePortRange(a, a.text, env, '');
        if (r) s.ports[ti] = { lo: r[0], hi: r[1], inv };
      } else {
        const h = parseHostMask(a.text);
        if (typeof h === 'string') return env.error(a, h);
        const other = s.addrs.find((x) => x !== null);
        if (other && other.family !== h.family) return env.error(a, 'conntrack mixes IPv4 and IPv6 addresses');
        h.inv = inv;
        s.addrs[ti] = h;
      }
      return;
    }
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
    if (s.state < 0 && s.proto < 0 && s.status < 0 && !s.dir && !s.addrs.some((x) => x) && !s.ports.some((x) => x))
      env.error(at, 'conntrack match needs at least one option');
  },
  familyOf: (s): Family => s.addrs.find((x) => x !== null)?.family ?? 0,
  save(s) {
    const out: string[] = [];
    if (s.state >= 0) out.push(...(s.stateInv ? ['!'] : []), '--ctstate', formatStates(s.state));
    if (s.proto >= 0) out.push(...(s.protoInv ? ['!'] : []), '--ctproto', String(s.proto));
    CT_TUPLE_OPTS.forEach(([n], i) => {
      const x = s.addrs[i];
      if (x) out.push(...(x.inv ? ['!'] : []), `--${n}`, formatHostMask(x));
    });
    CT_TUPLE_OPTS.forEach(([n], i) => {
      const p = s.ports[i];
      if (p) out.push(...(p.inv ? ['!'] : []), `--${n}port`, p.lo === p.hi ? String(p.lo) : `${p.lo}:${p.hi}`);
    });
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
  /** tuple options given, in CT_TUPLE_OPTS order: address (4 words) and mask words per option */
  private readonly addrOn: Uint8Array;
  private readonly addrInv: Uint8Array;
  private readonly addr: Uint32Array;
  private readonly mask: Uint32Array;
  private readonly portOn: Uint8Array;
  private readonly portInv: Uint8Array;
  private readonly portLo: Uint16Array;
  private readonly portHi: Uint16Array;
  private readonly hasTuple: boolean;
  private readonly scratch = new Uint32Array(4);
  constructor(s: ConntrackState) {
    this.addrOn = new Uint8Array(4);
    this.addrInv = new Uint8Array(4);
    this.addr = new Uint32Array(16);
    this.mask = new Uint32Array(16);
    this.portOn = new Uint8Array(4);
    this.portInv = new Uint8Array(4);
    this.portLo = new Uint16Array(4);
    this.portHi = new Uint16Array(4);
    for (let i = 0; i < 4; i++) {
      const a = s.addrs[i];
      if (a) {
        this.addrOn[i] = 1;
        this.addrInv[i] = a.inv ? 1 : 0;
        for (let w = 0; w < 4; w++) {
          this.addr[i * 4 + w] = a.addr[w];
          this.mask[i * 4 + w] = a.mask[w];
        }
      }
      const p = s.ports[i];
      if (p) {
        this.portOn[i] = 1;
        this.portInv[i] = p.inv ? 1 : 0;
        this.portLo[i] = p.lo;
        this.portHi[i] = p.hi;
      }
    }
    this.hasTuple = s.addrs.some((x) => x !== null) || s.ports.some((x) => x !== null);
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
    if (this.hasTuple && !this.tupleMatch(ctx)) return false;
    if (this.proto >= 0 && (ctProto(ctx) === this.proto) === this.protoInv) return false;
    if (this.status >= 0 && ((this.status & ctx.ctstatus) !== 0) === this.statusInv) return false;
    if (this.dir >= 0 && (ctx.ctinfo >= IP_CT_ESTABLISHED_REPLY ? 1 : 0) !== this.dir) return false;
    return true;
  }

  /**
   * conntrack_mt_origsrc … repldst (masked compare of the stored tuple's address) and
   * ct_proto_port_check_v3 (port ranges over src.u.all / dst.u.all: for ICMP the id and
   * type·code). Without an entry (the tracker removed it while accepting the packet) there
   * is no tuple to read: no match.
   */
  private tupleMatch(ctx: PacketContext): boolean {
    const ct = ctx.conntrack;
    const e = ctx.entry;
    if (ct === null || e < 0) return false;
    const t = this.scratch;
    for (let i = 0; i < 4; i++) {
      if (this.addrOn[i] === 0) continue;
      ct.tupleAddr(e, i >> 1, i & 1, t);
      const b = i * 4;
      const eq =
        ((t[0] ^ this.addr[b]) & this.mask[b]) === 0 &&
        ((t[1] ^ this.addr[b + 1]) & this.mask[b + 1]) === 0 &&
        ((t[2] ^ this.addr[b + 2]) & this.mask[b + 2]) === 0 &&
        ((t[3] ^ this.addr[b + 3]) & this.mask[b + 3]) === 0;
      if (eq === (this.addrInv[i] === 1)) return false;
    }
    for (let i = 0; i < 4; i++) {
      if (this.portOn[i] === 0) continue;
      const p = ct.tuplePort(e, i >> 1, i & 1);
      if ((p >= this.portLo[i] && p <= this.portHi[i]) === (this.portInv[i] === 1)) return false;
    }
    return true;
  }
}
