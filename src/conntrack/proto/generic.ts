/**
 * Every protocol without its own tracker (nf_conntrack_proto_generic.c): one
 * entry per address pair and protocol, nf_conntrack_generic_timeout, never ASSURED.
 */
import type { PacketView } from '../../packet/view';
import { PKT_ACCEPT } from '../constants';
import type { ProtoTracker, TrackerHost } from './tracker';

export class GenericTracker implements ProtoTracker {
  readonly protonum = 0;
  readonly name = 'unknown';

  validate(_host: TrackerHost, _pkt: PacketView): boolean {
    return true;
  }
  resize(_capacity: number): void {}
  newConnection(_host: TrackerHost, _e: number, _pkt: PacketView, _now: number): boolean {
    return true;
  }
  packet(host: TrackerHost, e: number, _dir: number, _ctinfo: number, _pkt: PacketView, now: number): number {
    host.setTimeout(e, host.tun.nf_conntrack_generic_timeout, now);
    return PKT_ACCEPT;
  }
  canEarlyDrop(_e: number): boolean {
    return false;
  }
  stateName(_e: number): string {
    return '';
  }
  save(_e: number): number[] {
    return [];
  }
  restore(_e: number, _data: readonly number[]): void {}
}
