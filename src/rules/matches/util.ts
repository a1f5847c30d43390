/** Small parsing helpers shared by the match and target modules. */
import type { OptSpec, ParseEnv, Token } from '../types';
import { Malformed, type PacketView } from '../../packet/view';
import { xtablesStrtoui } from '../number';
import { serviceError, serviceToPort } from '../services';

/**
 * A port as libxtables reads it for PROTO: xtables_parse_port() (tcp, multiport): a number
 * 0..65535 in base 0 (0x… hex, 0… octal) or a service name listed for PROTO;
 * with PROTO '' the x6 parser's getaddrinfo(NULL, NAME) (udp): a decimal number or a
 * service name of any protocol. Returns the port, or why not.
 */
export function parsePort(s: string, proto: string): number | string {
  if (proto === '') {
    if (/^[0-9]+$/.test(s)) return Number(s) <= 65535 ? Number(s) : 'out of range (0..65535)';
  } else {
    const n = xtablesStrtoui(s, 0, 65535);
    if (n >= 0) return n;
    if (/^[0-9]+$/.test(s)) return 'out of range (0..65535)';
  }
  const p = serviceToPort(s, proto);
  return p >= 0 ? p : serviceError(s, proto);
}

/**
 * Parses PORT or FIRST:LAST (either side may be empty, like iptables) into [lo, hi].
 * Reports errors against tok and returns null.
 */
export function parsePortRange(tok: Token, s: string, env: ParseEnv, proto = 'tcp'): [number, number] | null {
  const colon = s.indexOf(':');
  const a = colon < 0 ? s : s.slice(0, colon);
  const b = colon < 0 ? s : s.slice(colon + 1);
  const lo = a === '' ? 0 : parsePort(a, proto);
  const hi = b === '' ? 65535 : parsePort(b, proto);
  for (const [text, v] of [
    [a, lo],
    [b, hi],
  ] as const) {
    if (typeof v === 'string') {
      env.error(tok, `bad port "${text}"${colon >= 0 ? ` in "${s}"` : ''}: ${v}`);
      return null;
    }
  }
  if (typeof lo !== 'number' || typeof hi !== 'number') return null;
  if (lo > hi) {
    env.error(tok, `port range "${s}" is out of order (${lo} > ${hi})`);
    return null;
  }
  return [lo, hi];
}

export function formatPortRange(r: readonly [number, number]): string {
  return r[0] === r[1] ? String(r[0]) : `${r[0]}:${r[1]}`;
}

/**
 * iptables' xtables_save_string: bare when only [A-Za-z0-9_-], otherwise in
 * double quotes with ", \ and ' escaped.
 */
export function quoteArg(s: string): string {
  if (s.length > 0 && /^[A-Za-z0-9_-]+$/.test(s)) return s;
  return '"' + s.replace(/["\\']/g, (c) => '\\' + c) + '"';
}

/**
 * Whether the packet's L4 header could be read (the kernel's skb_header_pointer
 * succeeding). Ports/flags are present for these malformed codes too.
 */
export function l4HeaderReadable(v: PacketView): boolean {
  const m = v.malformed;
  return m === Malformed.NONE || m === Malformed.BAD_TCP_DOFF || m === Malformed.BAD_TCP_OPTIONS || m === Malformed.BAD_UDP_LEN || m === Malformed.BAD_INNER;
}

/** Splits a comma list, reporting empty elements. */
export function splitList(tok: Token, s: string, env: ParseEnv, what: string): string[] | null {
  const parts = s.split(',');
  if (parts.some((p) => p === '')) {
    env.error(tok, `bad ${what} list "${s}"`);
    return null;
  }
  return parts;
}

/** --sport / --dport of -m tcp and -m udp (libxt_tcp.c, libxt_udp.c): the parsed ranges. */
export interface PortsState {
  sport: [number, number] | null;
  sportInv: boolean;
  dport: [number, number] | null;
  dportInv: boolean;
}

export const PORT_OPTIONS: readonly OptSpec[] = [
  { name: 'sport', invertible: true, args: 1 },
  { name: 'source-port', invertible: true, args: 1 },
  { name: 'dport', invertible: true, args: 1 },
  { name: 'destination-port', invertible: true, args: 1 },
];

export function createPorts(): PortsState {
  return { sport: null, sportInv: false, dport: null, dportInv: false };
}

/** Parses a port option into s; false when `opt` is not one. */
export function parsePortOption(s: PortsState, opt: string, arg: Token, inv: boolean, optTok: Token, env: ParseEnv, proto: string): boolean {
  if (opt === 'sport' || opt === 'source-port') {
    if (s.sport) env.error(optTok, '--sport given twice');
    else {
      s.sport = parsePortRange(arg, arg.text, env, proto);
      s.sportInv = inv;
    }
    return true;
  }
  if (opt === 'dport' || opt === 'destination-port') {
    if (s.dport) env.error(optTok, '--dport given twice');
    else {
      s.dport = parsePortRange(arg, arg.text, env, proto);
      s.dportInv = inv;
    }
    return true;
  }
  return false;
}

/** --sport / --dport as tcp_mt, udp_mt and sctp_mt test them: each range, inverted if asked; an absent option matches. */
export class PortRanges {
  private readonly sLo: number;
  private readonly sHi: number;
  private readonly sInv: boolean;
  private readonly dLo: number;
  private readonly dHi: number;
  private readonly dInv: boolean;
  constructor(s: PortsState) {
    this.sLo = s.sport ? s.sport[0] : 0;
    this.sHi = s.sport ? s.sport[1] : 65535;
    this.sInv = s.sportInv;
    this.dLo = s.dport ? s.dport[0] : 0;
    this.dHi = s.dport ? s.dport[1] : 65535;
    this.dInv = s.dportInv;
  }
  match(sport: number, dport: number): boolean {
    if ((sport >= this.sLo && sport <= this.sHi) === this.sInv) return false;
    return (dport >= this.dLo && dport <= this.dHi) !== this.dInv;
  }
}

/** The port options as iptables-save writes them. */
export function savePortOptions(s: PortsState): string[] {
  const out: string[] = [];
  if (s.sport) out.push(...(s.sportInv ? ['!'] : []), '--sport', formatPortRange(s.sport));
  if (s.dport) out.push(...(s.dportInv ? ['!'] : []), '--dport', formatPortRange(s.dport));
  return out;
}

/**
 * xtables_strtoui with base 0 (decimal, 0x hex, leading-0 octal) within 0..max; -1 when
 * not a number in range.
 */
export function parseUint(s: string, max = 0xffffffff): number {
  let n: number;
  if (/^0x[0-9a-f]+$/i.test(s)) n = parseInt(s.slice(2), 16);
  else if (/^0[0-7]*$/.test(s)) n = s.length > 1 ? parseInt(s.slice(1), 8) : 0;
  else if (/^[1-9][0-9]*$/.test(s)) n = Number(s);
  else return -1;
  return n <= max ? n : -1;
}

/** VALUE[/MASK] of --mark (xtopt_parse_markmask): [value, mask], the mask 0xffffffff when absent. */
export function parseMarkMask(tok: Token, env: ParseEnv): [number, number] | null {
  const slash = tok.text.indexOf('/');
  const value = parseUint(slash < 0 ? tok.text : tok.text.slice(0, slash));
  const mask = slash < 0 ? 0xffffffff : parseUint(tok.text.slice(slash + 1));
  if (value < 0 || mask < 0) {
    env.error(tok, `bad mark "${tok.text}" (VALUE[/MASK], each 0..0xffffffff)`);
    return null;
  }
  return [value, mask];
}

/** libxt_mark.c print_mark: 0xVALUE, with /0xMASK unless the mask is all ones. */
export function formatMarkMask(value: number, mask: number): string {
  return mask === 0xffffffff ? `0x${value.toString(16)}` : `0x${value.toString(16)}/0x${mask.toString(16)}`;
}
