/** Extension targets by name (-j NAME); ACCEPT/DROP/RETURN and chains are handled by the parser. */
import type { TargetModule } from '../types';
import { ctTarget, notrackTarget } from './CT';
import { logTarget } from './LOG';
import { rejectTarget } from './REJECT';

export const TARGETS: Record<string, TargetModule> = {
  LOG: logTarget,
  REJECT: rejectTarget,
  CT: ctTarget,
  NOTRACK: notrackTarget,
};

export const STANDARD_VERDICTS = ['ACCEPT', 'DROP', 'RETURN'] as const;

/** Targets iptables has that nfqwall does not implement. */
export const KNOWN_UNSUPPORTED_TARGETS = [
  'AUDIT',
  'CHECKSUM',
  'CLASSIFY',
  'CLUSTERIP',
  'CONNMARK',
  'CONNSECMARK',
  'DNAT',
  'DSCP',
  'ECN',
  'HL',
  'HMARK',
  'IDLETIMER',
  'LED',
  'MARK',
  'MASQUERADE',
  'NETMAP',
  'NFLOG',
  'NFQUEUE',
  'QUEUE',
  'RATEEST',
  'REDIRECT',
  'SECMARK',
  'SET',
  'SNAT',
  'SYNPROXY',
  'TCPMSS',
  'TCPOPTSTRIP',
  'TEE',
  'TOS',
  'TPROXY',
  'TRACE',
  'TTL',
  'ULOG',
];
