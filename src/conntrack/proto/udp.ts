/**
 * UDP and UDP-Lite (nf_conntrack_proto_udp.c, 6.x): any packet may create an
 * entry; unreplied → nf_conntrack_udp_timeout; replied and more than 2 s after
 * the entry was created → nf_conntrack_udp_timeout_stream and ASSURED.
 */
import { IPPROTO_UDPLITE } from '../../packet/view';
import type { PacketView } from '../../packet/view';
import { IPS_ASSURED, IPS_SEEN_REPLY, PKT_ACCEPT } from '../constants';
import type { TunableValues } from '../sysctl';
import { StatelessTracker, type TrackerHost } from './tracker';

/** The entry counts as a stream once a packet arrives this long after creation (stream_ts = creation + 2 s). */
export const UDP_STREAM_AFTER_MS = 2000;

export class UdpTracker extends StatelessTracker {
  readonly name: string;

  constructor(readonly protonum = 17) {
    super();
    this.name = protonum === IPPROTO_UDPLITE ? 'udplite' : 'udp';
  }

  override validate(host: TrackerHost, pkt: PacketView): boolean {
    if (pkt.l4len < 8) {
      host.logInvalid(pkt, 'short packet');
      return false;
    }
    const b = pkt.buf;
    const lenField = (b[pkt.l4off + 4] << 8) | b[pkt.l4off + 5];
    if (this.protonum === IPPROTO_UDPLITE) {
      // udplite_error: the length field is the checksum coverage
      const udplen = pkt.l4len;
      const cscov = lenField === 0 ? udplen : lenField;
      if (cscov < 8 || cscov > udplen) {
        host.logInvalid(pkt, 'invalid checksum coverage');
        return false;
      }
      return true;
    }
    if (lenField > pkt.l4len || lenField < 8) {
      host.logInvalid(pkt, 'truncated/malformed packet');
      return false;
    }
    return true;
  }

  /** Unreplied: udp_timeout; replied: either (stream or not yet); ASSURED only once replied. */
  protected statelessLimit(tun: TunableValues, _tuple: Uint32Array, status: number): number {
    if (!(status & IPS_SEEN_REPLY)) return status & IPS_ASSURED ? -1 : tun.nf_conntrack_udp_timeout;
    return Math.max(tun.nf_conntrack_udp_timeout, tun.nf_conntrack_udp_timeout_stream);
  }

  packet(host: TrackerHost, e: number, _dir: number, _ctinfo: number, _pkt: PacketView, now: number): number {
    const tun = host.tun;
    const st = host.status(e);
    if (st & IPS_SEEN_REPLY) {
      let timeout = tun.nf_conntrack_udp_timeout;
      let stream = false;
      // "still active after two seconds?" — time_after(jiffies, stream_ts)
      if (now > host.createdAt(e) + UDP_STREAM_AFTER_MS) {
        timeout = tun.nf_conntrack_udp_timeout_stream;
        stream = (st & IPS_ASSURED) === 0;
      }
      host.setTimeout(e, timeout, now);
      if (stream) host.setStatusBits(e, IPS_ASSURED);
    } else {
      host.setTimeout(e, tun.nf_conntrack_udp_timeout, now);
    }
    return PKT_ACCEPT;
  }
}
