/** The match modules by name (-m NAME). */
import type { MatchModule } from '../types';
import { addrtypeMatch } from './addrtype';
import { commentMatch } from './comment';
import { connmarkMatch } from './connmark';
import { connlimitMatch } from './connlimit';
import { conntrackMatch } from './conntrack';
import { hashlimitMatch } from './hashlimit';
import { helperMatch } from './helper';
import { hlMatch } from './hl';
import { icmpMatch } from './icmp';
import { icmp6Match } from './icmp6';
import { iprangeMatch } from './iprange';
import { lengthMatch } from './length';
import { statisticMatch } from './statistic';
import { rtMatch } from './rt';
import { limitMatch } from './limit';
import { macMatch } from './mac';
import { markMatch } from './mark';
import { multiportMatch } from './multiport';
import { ownerMatch } from './owner';
import { recentMatch } from './recent';
import { sctpMatch } from './sctp';
import { setMatch } from './set';
import { stateMatch } from './state';
import { stringMatch } from './string';
import { tcpMatch } from './tcp';
import { timeMatch } from './time';
import { ttlMatch } from './ttl';
import { udpMatch } from './udp';

export const MATCHES: Record<string, MatchModule> = {
  tcp: tcpMatch,
  udp: udpMatch,
  multiport: multiportMatch,
  conntrack: conntrackMatch,
  state: stateMatch,
  icmp: icmpMatch,
  icmp6: icmp6Match,
  iprange: iprangeMatch,
  helper: helperMatch,
  comment: commentMatch,
  limit: limitMatch,
  mark: markMatch,
  connmark: connmarkMatch,
  recent: recentMatch,
  owner: ownerMatch,
  mac: macMatch,
  ttl: ttlMatch,
  hl: hlMatch,
  length: lengthMatch,
  statistic: statisticMatch,
  rt: rtMatch,
  addrtype: addrtypeMatch,
  connlimit: connlimitMatch,
  hashlimit: hashlimitMatch,
  string: stringMatch,
  time: timeMatch,
  sctp: sctpMatch,
  set: setMatch,
};

/** -m aliases iptables accepts. */
export const MATCH_ALIASES: Record<string, string> = { icmpv6: 'icmp6', 'ipv6-icmp': 'icmp6' };

/** The match a protocol loads implicitly when its options follow -p (iptables' "implicit match"). */
export const PROTO_MATCH: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmp6', 132: 'sctp' };

/**
 * Why nfqwall refuses a match it cannot evaluate exactly from what NFQUEUE delivers (added to
 * the "not supported" error).
 */
const UNSUPPORTED_WHY: Record<string, string> = {
  pkttype:
    'the kernel tests skb->pkt_type, which eth_type_trans sets from the link-layer destination address; NFQUEUE delivers only the source address (NFQA_HWADDR), and a packet to a unicast IP address in a broadcast or multicast frame (or the reverse) cannot be told apart',
  policy: "IPsec policy matching needs the packet's xfrm state (sec_path) and the policy database, which NFQUEUE does not deliver",
  rpfilter: "it needs the kernel's route lookup from the packet's source and input interface (fib_lookup), which nfqwall does not mirror",
};

/** The error for -m NAME of a match iptables has and nfqwall refuses. */
export function unsupportedMatchError(name: string): string {
  const why = UNSUPPORTED_WHY[name];
  return why ? `match "${name}" is not supported: ${why}` : `match "${name}" is not supported`;
}

/** Match extensions iptables has that nfqwall does not implement (a clearer error than "unknown"). */
export const KNOWN_UNSUPPORTED_MATCHES = [
  'ah',
  'bpf',
  'cgroup',
  'cluster',
  'connbytes',
  'connlabel',
  'cpu',
  'dccp',
  'devgroup',
  'dscp',
  'dst',
  'ecn',
  'esp',
  'eui64',
  'frag',
  'hbh',
  'ipcomp',
  'ipv6header',
  'ipvs',
  'mh',
  'nfacct',
  'osf',
  'physdev',
  'pkttype',
  'policy',
  'quota',
  'rateest',
  'realm',
  'rpfilter',
  'socket',
  'tcpmss',
  'tos',
  'u32',
  'udplite',
];
