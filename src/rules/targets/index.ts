/** Extension targets by name (-j NAME); ACCEPT/DROP/RETURN and chains are handled by the parser. */
import type { TargetModule } from '../types';
import { checksumTarget } from './CHECKSUM';
import { connmarkTarget } from './CONNMARK';
import { ctTarget, notrackTarget } from './CT';
import { dscpTarget } from './DSCP';
import { hlTarget } from './HL';
import { logTarget } from './LOG';
import { markTarget } from './MARK';
import { nflogTarget } from './NFLOG';
import { rejectTarget } from './REJECT';
import { tcpmssTarget } from './TCPMSS';
import { ttlTarget } from './TTL';
import { setTarget } from './SET';
import { snatTarget } from './SNAT';
import { dnatTarget } from './DNAT';
import { masqueradeTarget } from './MASQUERADE';
import { redirectTarget } from './REDIRECT';
import { netmapTarget } from './NETMAP';

export const TARGETS: Record<string, TargetModule> = {
  LOG: logTarget,
  NFLOG: nflogTarget,
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
  SNAT: snatTarget,
  DNAT: dnatTarget,
  MASQUERADE: masqueradeTarget,
  REDIRECT: redirectTarget,
  NETMAP: netmapTarget,
};

export const STANDARD_VERDICTS = ['ACCEPT', 'DROP', 'RETURN'] as const;

/** Targets iptables has that nfqwall does not implement. */
export const KNOWN_UNSUPPORTED_TARGETS = [
  'AUDIT',
  'CLASSIFY',
  'CLUSTERIP',
  'CONNSECMARK',
  'ECN',
  'HMARK',
  'IDLETIMER',
  'LED',
  'NFQUEUE',
  'QUEUE',
  'RATEEST',
  'SECMARK',
  'SYNPROXY',
  'TCPOPTSTRIP',
  'TEE',
  'TOS',
  'TPROXY',
  'TRACE',
  'ULOG',
];
