/** The set types by name (ipset create NAME TYPE). */
import type { SetType } from '../set';
import { bitmapIp } from './bitmap-ip';
import { bitmapPort } from './bitmap-port';
import { hashIp } from './hash-ip';
import { hashIpPort } from './hash-ip-port';
import { hashIpPortIp } from './hash-ip-port-ip';
import { hashIpPortNet } from './hash-ip-port-net';
import { hashNet } from './hash-net';
import { hashNetPort } from './hash-net-port';
import { listSet } from './list-set';

export const SET_TYPES: Record<string, SetType> = Object.fromEntries(
  [hashIp, hashNet, hashIpPort, hashNetPort, hashIpPortIp, hashIpPortNet, bitmapIp, bitmapPort, listSet].map((t) => [t.name, t]),
);

/** Types ipset has that nfqwall refuses, with the reason. */
export const UNSUPPORTED_TYPES: Record<string, string> = {
  'hash:net,iface': 'nfqwall does not implement it yet',
  'hash:mac': 'nfqwall does not implement it yet',
  'hash:ip,mac': 'nfqwall does not implement it yet',
  'bitmap:ip,mac': 'nfqwall does not implement it yet',
  'hash:net,net': 'nfqwall does not implement it yet',
  'hash:net,port,net': 'nfqwall does not implement it yet',
  'hash:ip,mark': 'nfqwall does not implement it yet',
};
