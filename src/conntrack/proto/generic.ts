/**
 * Every protocol without its own tracker (nf_conntrack_proto_generic.c): one
 * entry per address pair and protocol, nf_conntrack_generic_timeout, never ASSURED.
 */
import type { PacketView } from '../../packet/view';
import { PKT_ACCEPT } from '../constants';
import { StatelessTracker, type TrackerHost } from './tracker';

export class GenericTracker extends StatelessTracker {
  readonly protonum = 0;
  readonly name = 'unknown';

  packet(host: TrackerHost, e: number, _dir: number, _ctinfo: number, _pkt: PacketView, now: number): number {
    host.setTimeout(e, host.tun.nf_conntrack_generic_timeout, now);
    return PKT_ACCEPT;
  }
}
