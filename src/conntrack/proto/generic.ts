/**
 * Every protocol without its own tracker (nf_conntrack_proto_generic.c): one
 * entry per address pair and protocol, nf_conntrack_generic_timeout, never ASSURED.
 */
import type { PacketView } from '../../packet/view';
import { IPS_ASSURED, PKT_ACCEPT } from '../constants';
import type { TunableValues } from '../sysctl';
import { T_PORTS } from '../layout';
import { StatelessTracker, type TrackerHost } from './tracker';

export class GenericTracker extends StatelessTracker {
  readonly protonum = 0;
  readonly name = 'unknown';

  /** No ports in the tuple, never ASSURED. */
  protected statelessLimit(tun: TunableValues, tuple: Uint32Array, status: number): number {
    return tuple[T_PORTS] !== 0 || status & IPS_ASSURED ? -1 : tun.nf_conntrack_generic_timeout;
  }

  packet(host: TrackerHost, e: number, _dir: number, _ctinfo: number, _pkt: PacketView, now: number): number {
    host.setTimeout(e, host.tun.nf_conntrack_generic_timeout, now);
    return PKT_ACCEPT;
  }
}
