/** Extension targets by name (-j NAME); ACCEPT/DROP/RETURN and chains are handled by the parser. */
import type { TargetModule } from '../types';
import { checksumTarget } from './CHECKSUM';
import { connmarkTarget } from './CONNMARK';
import { ctTarget, notrackTarget } from './CT';
import { dscpTarget } from './DSCP';
import { hlTarget } from './HL';
import { logTarget } from './LOG';
import { markTarget } from './MARK';
import { rejectTarget } from './REJECT';
import { tcpmssTarget } from './TCPMSS';
import { ttlTarget } from './TTL';
import { setTarget } from './SET';

export const TARGETS: Record<string, TargetModule> = {
  LOG: logTarget,
  REJECT: rejectTarget,
  CT: ctTarget,
  NOTRACK: notrackTarget,
  MARK: markTarget,
  CONNMARK: connmarkTarget,
  TCPMSS: tcpmssTarget,
  CHECKSUM: checksumTarget,
  TTL: ttlTarget,
  HL: hlTarget,
  DSCP: dscpTarget,
  SET: setTarget,
};

export const STANDARD_VERDICTS = ['ACCEPT', 'DROP', 'RETURN'] as const;

/** Targets iptables has that nfqwall does not implement. */
export const KNOWN_UNSUPPORTED_TARGETS = [
  'AUDIT',
  'CLASSIFY',
  'CLUSTERIP',
  'CONNSECMARK',
  'DNAT',
  'ECN',
  'HMARK',
  'IDLETIMER',
  'LED',
  'MASQUERADE',
  'NETMAP',
  'NFLOG',
  'NFQUEUE',
  'QUEUE',
  'RATEEST',
  'REDIRECT',
  'SECMARK',
  'SNAT',
  'SYNPROXY',
  'TCPOPTSTRIP',
  'TEE',
  'TOS',
  'TPROXY',
  'TRACE',
  'ULOG',
];
