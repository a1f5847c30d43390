/**
 * The protocol trackers a Conntrack uses by default (everything else is generic).
 */
import { IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/view';
import type { ProtoTracker } from './proto/tracker';
import { TcpTracker } from './proto/tcp';
import { UdpTracker } from './proto/udp';
import { IcmpTracker } from './proto/icmp';
import { Icmpv6Tracker } from './proto/icmpv6';
import { SctpTracker } from './proto/sctp';

export function createDefaultTrackers(): ProtoTracker[] {
  return [new TcpTracker(), new UdpTracker(IPPROTO_UDP), new UdpTracker(IPPROTO_UDPLITE), new IcmpTracker(), new Icmpv6Tracker(), new SctpTracker()];
}
