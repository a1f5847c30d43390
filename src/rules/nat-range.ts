/**
 * The NAT targets' address/port ranges as iptables 1.8.9 reads and prints them
 * (extensions/libxt_NAT.c parse_to / parse_ports / print_range): `ADDR[-ADDR][:PORT[-PORT]]`,
 * IPv6 `[ADDR]:PORT[-PORT]` (brackets needed with a port), `:PORT[-PORT]` alone, ports as
 * numbers or service names; into the nf_nat_range2 of src/conntrack/nat.ts.
 */
import { NatRange, NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED } from '../conntrack/nat';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../packet/view';
import { formatAddr, parseIp4, parseIp6 } from './addr';
import { parsePort } from './matches/util';
import type { Family, ParseEnv, RuleInfo, Token } from './types';

/** A parsed range: plain data (rule states are cloned and compared). */
export interface NatRangeState {
  flags: number;
  family: Family;
  minAddr: number[];
  maxAddr: number[];
  minPort: number;
  maxPort: number;
  /** the token that gave ports (the -p check at the end of the rule) */
  portTok: Token | null;
}

export function emptyRange(): NatRangeState {
  return { flags: 0, family: 0, minAddr: [0, 0, 0, 0], maxAddr: [0, 0, 0, 0], minPort: 0, maxPort: 0, portTok: null };
}

const IPPROTO_SCTP = 132;
const IPPROTO_DCCP = 33;

/** libxt_NAT's portok: a port range needs -p tcp, udp, sctp, dccp or icmp (icmpv6), not negated. */
export function portsAllowed(rule: RuleInfo): boolean {
  const p = rule.proto;
  return !rule.protoInv && (p === IPPROTO_TCP || p === IPPROTO_UDP || p === IPPROTO_SCTP || p === IPPROTO_DCCP || p === IPPROTO_ICMP || p === IPPROTO_ICMPV6);
}

/** finalize(): the port check of parse_ports, reported at the option that gave the ports. */
export function checkPorts(s: NatRangeState, rule: RuleInfo, at: Token, env: ParseEnv): void {
  if (s.flags & NF_NAT_RANGE_PROTO_SPECIFIED && !portsAllowed(rule)) env.error(s.portTok ?? at, 'Need TCP, UDP, SCTP or DCCP with port specification');
}

function onePort(text: string, tok: Token, env: ParseEnv): number {
  const p = parsePort(text, '');
  if (typeof p === 'string') {
    env.error(tok, `Port \`${text}' not valid`);
    return -1;
  }
  return p;
}

/** parse_ports: PORT[-PORT] (a shifted range PORT-PORT/BASE is refused: nfqwall does not map with an offset). */
export function parsePorts(text: string, tok: Token, env: ParseEnv, s: NatRangeState): boolean {
  if (text.includes(':')) {
    env.error(tok, 'Invalid port:port syntax - use dash');
    return false;
  }
  const slash = text.indexOf('/');
  if (slash >= 0) {
    env.error(tok, `a shifted port range ("${text}", PORT-PORT/BASE) is not supported by nfqwall`);
    return false;
  }
  const dash = text.indexOf('-');
  const lo = onePort(dash < 0 ? text : text.slice(0, dash), tok, env);
  if (lo < 0) return false;
  let hi = lo;
  if (dash >= 0) {
    hi = onePort(text.slice(dash + 1), tok, env);
    if (hi < 0) return false;
    if (hi < lo) {
      env.error(tok, `Port range \`${text.slice(dash + 1)}' funky`);
      return false;
    }
  }
  s.flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
  s.minPort = lo;
  s.maxPort = hi;
  s.portTok = tok;
  return true;
}

function parseAddr(text: string, family: 4 | 6): number[] | null {
  if (family === 4) {
    const a = parseIp4(text);
    return a >= 0 && /^[0-9.]+$/.test(text) && text.split('.').length === 4 ? [a, 0, 0, 0] : null;
  }
  return parseIp6(text);
}

/** parse_to: the argument of --to-source / --to-destination. */
export function parseNatTo(tok: Token, env: ParseEnv, s: NatRangeState): void {
  const arg = tok.text;
  let start = arg;
  let rest = '';
  let colon = -1;
  let family: 4 | 6 | 0 = 0;
  if (arg.startsWith('[')) {
    const end = arg.indexOf(']');
    if (end < 0) return env.error(tok, 'Invalid address format');
    start = arg.slice(1, end);
    rest = arg.slice(end + 1);
    family = 6;
    if (rest !== '' && !rest.startsWith(':')) return env.error(tok, rest.includes(':') ? 'Invalid port:port syntax - use dash' : 'Invalid address format');
    if (rest.startsWith(':') && !parsePorts(rest.slice(1), tok, env, s)) return;
    if (start === '') return;
  } else {
    colon = arg.indexOf(':');
    if (colon >= 0 && arg.indexOf(':', colon + 1) >= 0)
      colon = -1; // more than one colon: an IPv6 address
    else if (colon >= 0) family = 4;
    if (colon >= 0) {
      if (!parsePorts(arg.slice(colon + 1), tok, env, s)) return;
      if (colon === 0) return;
      start = arg.slice(0, colon);
    }
  }
  const dash = start.indexOf('-');
  const a = dash < 0 ? start : start.slice(0, dash);
  const b = dash < 0 ? null : start.slice(dash + 1);
  const fams: (4 | 6)[] = family !== 0 ? [family] : a.includes(':') ? [6] : [4];
  const fam = fams[0];
  const min = parseAddr(a, fam);
  if (!min) return env.error(tok, `Bad IP address "${a}"`);
  const max = b === null ? min : parseAddr(b, fam);
  if (!max) return env.error(tok, `Bad IP address "${b}"`);
  s.flags |= NF_NAT_RANGE_MAP_IPS;
  s.family = fam;
  s.minAddr = min;
  s.maxAddr = max;
}

/** print_range */
export function formatNatRange(s: NatRangeState): string {
  let out = '';
  const fam = s.family === 6 ? 6 : 4;
  const ports = (s.flags & NF_NAT_RANGE_PROTO_SPECIFIED) !== 0;
  if (s.flags & NF_NAT_RANGE_MAP_IPS) {
    const br = fam === 6 && ports;
    if (br) out += '[';
    out += formatAddr(fam, s.minAddr);
    if (s.minAddr.some((w, i) => w !== s.maxAddr[i])) out += `-${formatAddr(fam, s.maxAddr)}`;
    if (br) out += ']';
  }
  if (ports) out += `:${formatPorts(s)}`;
  return out;
}

/** PORT[-PORT] */
export function formatPorts(s: NatRangeState): string {
  return s.minPort === s.maxPort ? String(s.minPort) : `${s.minPort}-${s.maxPort}`;
}

/** The compiled nf_nat_range2, with extra flags (--random, --persistent, …). */
export function toNatRange(s: NatRangeState, flags: number): NatRange {
  const r = new NatRange();
  r.flags = s.flags | flags;
  for (let i = 0; i < 4; i++) {
    r.minAddr[i] = s.minAddr[i] >>> 0;
    r.maxAddr[i] = s.maxAddr[i] >>> 0;
  }
  r.minProto = s.minPort;
  r.maxProto = s.maxPort;
  return r;
}
