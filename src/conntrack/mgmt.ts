/**
 * The management reserve (nfqwall.mgmt_reserve, nfqwall.mgmt_port; issue #18 point 4): the
 * gateway's own management traffic — a scrape of the metrics listener, an SSH session — keeps
 * finding a table entry while a flood of new flows fills nf_conntrack_max. Everything else
 * stops at nf_conntrack_max - mgmt_reserve (early drop first, then "table full", as the kernel
 * does at max); a management flow may take the entries up to nf_conntrack_max. Management
 * flows are tracked and filtered like any other: only where the table's limit lies differs.
 */
import { IPPROTO_TCP, IPPROTO_UDP } from '../packet/view';
import { NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT } from '../queue/layout';
import type { TunableValues } from './sysctl';
import { T_META, T_PORTS } from './layout';

/**
 * Whether a new flow (ORIG tuple in key, first seen at hook) is management traffic: TCP or UDP
 * to mgmt_port, arriving for the gateway itself (INPUT) or sent by it (OUTPUT).
 */
export function isManagementFlow(tun: TunableValues, hook: number, key: Uint32Array): boolean {
  const port = tun.mgmt_port;
  if (port === 0 || (hook !== NF_INET_LOCAL_IN && hook !== NF_INET_LOCAL_OUT)) return false;
  const proto = key[T_META] & 0xff;
  return (proto === IPPROTO_TCP || proto === IPPROTO_UDP) && (key[T_PORTS] & 0xffff) === port;
}

/** The count a new flow may not exceed: nf_conntrack_max, less the reserve unless it is management traffic (0 = no limit). */
export function admissionLimit(tun: TunableValues, hook: number, key: Uint32Array): number {
  const max = tun.nf_conntrack_max;
  const reserve = tun.mgmt_reserve;
  if (max === 0 || reserve === 0 || isManagementFlow(tun, hook, key)) return max;
  return reserve >= max ? -1 : max - reserve;
}
