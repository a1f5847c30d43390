/**
 * The parts of an ipset element as ipset(8) writes them (lib/parse.c): an address, a
 * network (ADDR/CIDR, or an IPv4 FROM-TO range the kernel splits into networks), and
 * [PROTO:]PORT[-PORT] with ICMP/ICMPv6 type names (lib/icmp.c, lib/icmpv6.c). Printed back
 * as `ipset save` prints them.
 */
import { formatAddr, parseIp4, parseIp6, prefixMask } from '../addr';
import { protocolName, protocolNumber } from '../protocols';
import { serviceToPort } from '../services';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../../packet/view';
import { IPPROTO_SCTP, IpsetError } from './set';

const ICMP_NAMES: [string, number][] = [
  ['echo-reply', 0x0000],
  ['network-unreachable', 0x0300],
  ['host-unreachable', 0x0301],
  ['protocol-unreachable', 0x0302],
  ['port-unreachable', 0x0303],
  ['fragmentation-needed', 0x0304],
  ['source-route-failed', 0x0305],
  ['network-unknown', 0x0306],
  ['host-unknown', 0x0307],
  ['network-prohibited', 0x0309],
  ['host-prohibited', 0x030a],
  ['TOS-network-unreachable', 0x030b],
  ['TOS-host-unreachable', 0x030c],
  ['communication-prohibited', 0x030d],
  ['host-precedence-violation', 0x030e],
  ['precedence-cutoff', 0x030f],
  ['source-quench', 0x0400],
  ['network-redirect', 0x0500],
  ['host-redirect', 0x0501],
  ['TOS-network-redirect', 0x0502],
  ['TOS-host-redirect', 0x0503],
  ['echo-request', 0x0800],
  ['router-advertisement', 0x0900],
  ['router-solicitation', 0x0a00],
  ['ttl-zero-during-transit', 0x0b00],
  ['ttl-zero-during-reassembly', 0x0b01],
  ['ip-header-bad', 0x0c00],
  ['required-option-missing', 0x0c01],
  ['timestamp-request', 0x0d00],
  ['timestamp-reply', 0x0e00],
  ['address-mask-request', 0x1100],
  ['address-mask-reply', 0x1200],
];
const ICMPV6_NAMES: [string, number][] = [
  ['no-route', 0x0100],
  ['communication-prohibited', 0x0101],
  ['address-unreachable', 0x0103],
  ['port-unreachable', 0x0104],
  ['packet-too-big', 0x0200],
  ['ttl-zero-during-transit', 0x0300],
  ['ttl-zero-during-reassembly', 0x0301],
  ['bad-header', 0x0400],
  ['unknown-header-type', 0x0401],
  ['unknown-option', 0x0402],
  ['echo-request', 0x8000],
  ['echo-reply', 0x8100],
  ['router-solicitation', 0x8500],
  ['router-advertisement', 0x8600],
  ['neighbour-solicitation', 0x8700],
  ['neighbour-advertisement', 0x8800],
  ['redirect', 0x8900],
];
const PORT_PROTOS = new Set([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_UDPLITE]);
const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp', 136: 'udplite', 1: 'icmp', 58: 'ipv6-icmp' };

/** An address of the set's family as 4 words, or why not. */
export function parseAddress(text: string, family: 4 | 6): number[] {
  if (family === 4) {
    const v = parseIp4(text);
    if (v < 0) throw new IpsetError(`Syntax error: cannot parse ${text}: resolving to IPv4 address failed`);
    return [v, 0, 0, 0];
  }
  const w = parseIp6(text);
  if (!w) throw new IpsetError(`Syntax error: cannot parse ${text}: resolving to IPv6 address failed`);
  return w;
}

export function maskAddr(a: readonly number[], family: 4 | 6, cidr: number): number[] {
  const m = prefixMask(family, cidr);
  return a.map((w, i) => (w & m[i]) >>> 0);
}

function parseCidr(text: string, family: 4 | 6): number {
  const max = family === 4 ? 32 : 128;
  if (!/^[0-9]+$/.test(text) || Number(text) > max) throw new IpsetError(`Syntax error: '${text}' is invalid as number`);
  return Number(text);
}

/** ip_set_range_to_cidr: the networks that cover FROM..TO (IPv4), most significant first. */
export function rangeToNets(from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  let a = from;
  while (a <= to) {
    let cidr = 32;
    while (cidr > 0) {
      const size = 2 ** (32 - (cidr - 1));
      if (a % size !== 0 || a + size - 1 > to) break;
      cidr--;
    }
    out.push([a, cidr]);
    a += 2 ** (32 - cidr);
  }
  return out;
}

/**
 * An `ip` part: one address, or (IPv4) ADDR/CIDR or FROM-TO, every address in it (stepping by
 * the set's netmask when it has one). IPv6 takes single addresses only, as the kernel.
 */
export function parseIpPart(text: string, family: 4 | 6, netmask: number, limit: number): number[][] {
  const dash = text.indexOf('-');
  const slash = text.indexOf('/');
  if (dash < 0 && slash < 0) {
    const a = parseAddress(text, family);
    return [netmask >= 0 ? maskAddr(a, family, netmask) : a];
  }
  if (family === 6) {
    if (slash >= 0 && dash < 0 && parseCidr(text.slice(slash + 1), 6) === 128) return [parseAddress(text.slice(0, slash), 6)];
    throw new IpsetError('Syntax error: IPv6 ranges and networks are not supported in this set type');
  }
  let from: number;
  let to: number;
  if (slash >= 0) {
    const c = parseCidr(text.slice(slash + 1), 4);
    from = maskAddr(parseAddress(text.slice(0, slash), 4), 4, c)[0];
    to = from + 2 ** (32 - c) - 1;
  } else {
    from = parseAddress(text.slice(0, dash), 4)[0];
    to = parseAddress(text.slice(dash + 1), 4)[0];
    if (from > to) [from, to] = [to, from];
  }
  const step = netmask >= 0 ? 2 ** (32 - netmask) : 1;
  if (netmask >= 0) from = maskAddr([from, 0, 0, 0], 4, netmask)[0];
  if ((to - from) / step + 1 > limit) throw new IpsetError('Hash is full, cannot add more elements');
  const out: number[][] = [];
  for (let a = from; a <= to; a += step) out.push([a, 0, 0, 0]);
  return out;
}

/** A `net` part: ADDR[/CIDR] (host when no CIDR), or an IPv4 FROM-TO range as networks. Returns [addr, cidr] pairs. */
export function parseNetPart(text: string, family: 4 | 6): [number[], number][] {
  const host = family === 4 ? 32 : 128;
  const slash = text.indexOf('/');
  const dash = text.indexOf('-');
  if (dash >= 0 && slash < 0) {
    if (family === 6) throw new IpsetError('Syntax error: IPv6 ranges are not supported');
    const a = parseAddress(text.slice(0, dash), 4)[0];
    const b = parseAddress(text.slice(dash + 1), 4)[0];
    return rangeToNets(Math.min(a, b), Math.max(a, b)).map(([x, c]) => [[x, 0, 0, 0], c]);
  }
  const cidr = slash < 0 ? host : parseCidr(text.slice(slash + 1), family);
  if (cidr === 0) throw new IpsetError('The value of the CIDR parameter of the IP address is invalid');
  const a = parseAddress(slash < 0 ? text : text.slice(0, slash), family);
  return [[maskAddr(a, family, cidr), cidr]];
}

export function formatNet(a: ArrayLike<number>, family: 4 | 6, cidr: number): string {
  return `${formatAddr(family, a)}/${cidr}`;
}

function icmpCode(text: string, v6: boolean): number {
  const m = /^([0-9]+)\/([0-9]+)$/.exec(text);
  if (m) {
    if (Number(m[1]) > 255 || Number(m[2]) > 255) throw new IpsetError(`Syntax error: '${text}' is out of range`);
    return (Number(m[1]) << 8) | Number(m[2]);
  }
  const names = v6 ? ICMPV6_NAMES : ICMP_NAMES;
  const alias = text === 'ping' ? 'echo-request' : text === 'pong' ? 'echo-reply' : text;
  const hit = names.find(([n]) => n.toLowerCase() === alias.toLowerCase());
  if (!hit) throw new IpsetError(`Syntax error: Invalid ${v6 ? 'ICMPv6' : 'ICMP'} type/code ${text}`);
  return hit[1];
}

/** A `port` part: [PROTO:]PORT[-PORT] (tcp without PROTO) → [proto, from, to]. */
export function parsePortPart(text: string, family: 4 | 6): [number, number, number] {
  const colon = text.indexOf(':');
  let proto = IPPROTO_TCP;
  let rest = text;
  if (colon >= 0) {
    const name = text.slice(0, colon).toLowerCase();
    proto = name === 'icmpv6' ? IPPROTO_ICMPV6 : protocolNumber(name);
    if (proto < 0) throw new IpsetError(`Syntax error: cannot parse '${text.slice(0, colon)}' as a protocol`);
    rest = text.slice(colon + 1);
  }
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    if ((proto === IPPROTO_ICMP) !== (family === 4))
      throw new IpsetError(`Syntax error: Protocol ${PROTO_NAMES[proto]} can be used with family ${proto === IPPROTO_ICMP ? 'inet' : 'inet6'} only`);
    const c = icmpCode(rest, proto === IPPROTO_ICMPV6);
    return [proto, c, c];
  }
  if (!PORT_PROTOS.has(proto)) {
    if (rest !== '0') throw new IpsetError(`Syntax error: Protocol ${PROTO_NAMES[proto] ?? text.slice(0, colon)} can be used with pseudo port value 0 only.`);
    return [proto, 0, 0];
  }
  const dash = rest.indexOf('-');
  const one = (p: string): number => {
    if (/^[0-9]+$/.test(p)) {
      if (Number(p) > 65535) throw new IpsetError(`Syntax error: '${p}' is out of range 0-65535`);
      return Number(p);
    }
    const n = serviceToPort(p, PROTO_NAMES[proto]);
    if (n < 0) throw new IpsetError(`Syntax error: cannot parse '${p}' as a ${PROTO_NAMES[proto]} port`);
    return n;
  };
  const lo = one(dash < 0 ? rest : rest.slice(0, dash));
  const hi = dash < 0 ? lo : one(rest.slice(dash + 1));
  return lo <= hi ? [proto, lo, hi] : [proto, hi, lo];
}

/** proto << 16 | port as `ipset save` prints it. */
export function formatPort(pp: number): string {
  const proto = pp >>> 16;
  const port = pp & 0xffff;
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    const hit = (proto === IPPROTO_ICMP ? ICMP_NAMES : ICMPV6_NAMES).find(([, c]) => c === port);
    return `${PROTO_NAMES[proto]}:${hit ? hit[0] : `${port >> 8}/${port & 0xff}`}`;
  }
  return `${PROTO_NAMES[proto] ?? protocolName(proto) ?? String(proto)}:${port}`;
}
