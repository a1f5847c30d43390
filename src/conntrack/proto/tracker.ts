import type { PacketView } from '../../packet/view';
import type { TunableValues } from '../sysctl';

/**
 * What the connection table offers a protocol tracker (the part of
 * nf_conntrack_core a nf_conntrack_proto_*.c file calls into).
 * Entries are integer ids (rows of the table); `now` is milliseconds on a
 * monotonic clock.
 */
export interface TrackerHost {
  readonly tun: TunableValues;
  /** IPS_* status bits of entry e. */
  status(e: number): number;
  setStatusBits(e: number, bits: number): void;
  /** Set the entry's timeout to `seconds` from now (relative until confirmation, as the kernel). */
  setTimeout(e: number, seconds: number, now: number): void;
  /** Remaining timeout in seconds (for "lower the timeout if longer" decisions). */
  timeoutLeft(e: number, now: number): number;
  /** Creation time of the entry in ms (UDP's stream detection uses it). */
  createdAt(e: number): number;
  /** Remove the entry from the table at once (RST before any reply, TIME_WAIT reopen). */
  kill(e: number): void;
  /**
   * nf_ct_seq_offset: how far the sequence numbers of direction dir from seq on were shifted
   * by a payload a NAT helper resized (0 for an entry without IPS_SEQ_ADJUST).
   */
  seqOffset(e: number, dir: number, seq: number): number;
  /** Log an invalid packet under nf_conntrack_log_invalid ("nf_ct_proto_6: <reason>"). */
  logInvalid(pkt: PacketView, reason: string): void;
}

/**
 * Whether nf_conntrack_log_invalid asks for the invalid packets of protocol `proto` to be
 * logged (a tracker builds a costly message only then).
 */
export function logsInvalid(tun: TunableValues, proto: number): boolean {
  const li = tun.nf_conntrack_log_invalid;
  return li !== 0 && (li === 255 || li === proto);
}

/**
 * One protocol tracker, like the kernel's nf_conntrack_l4proto. Per-entry
 * protocol state lives in the tracker's own typed arrays, indexed by entry id
 * and grown through resize().
 */
export interface ProtoTracker {
  readonly protonum: number;
  /** Name as conntrack -L prints it: 'tcp', 'udp', 'icmp', 'icmpv6', 'unknown'. */
  readonly name: string;
  /** What nf_conntrack_log_invalid logs for a bad checksum when the kernel's words are not "bad checksum" (SCTP: "nf_ct_sctp: bad CRC"). */
  readonly badChecksumReason?: string;
  /**
   * Sanity checks before the lookup (the kernel's tcp_error / udp_error): header
   * shape, flag combinations. Checksums are checked by the core. Return false if
   * the packet is INVALID (log the reason through host.logInvalid).
   */
  validate(host: TrackerHost, pkt: PacketView): boolean;
  /**
   * Make per-entry storage hold at least `capacity` entries (keep existing data); the core
   * calls it with the table's whole capacity, so it should write nothing beyond the rows in use.
   */
  resize(capacity: number): void;
  /**
   * First packet of a new, unconfirmed entry e (the tuple is already stored).
   * Initialise per-entry state. Return false if this packet cannot create a
   * connection (the packet is then INVALID and the entry is freed).
   */
  newConnection(host: TrackerHost, e: number, pkt: PacketView, now: number): boolean;
  /**
   * Every packet of entry e (including the first, after newConnection).
   * dir: 0 original, 1 reply; ctinfo: IP_CT_*. Returns PKT_*; on PKT_ACCEPT the
   * tracker has refreshed the timeout through host.setTimeout.
   */
  packet(host: TrackerHost, e: number, dir: number, ctinfo: number, pkt: PacketView, now: number): number;
  /** May GC-assisted early drop evict this entry even if ASSURED (tcp_can_early_drop). */
  canEarlyDrop(e: number): boolean;
  /** The protocol state word printed after the timeout in conntrack -L ('' if none). */
  stateName(e: number): string;
  /** Per-entry protocol state as plain numbers (state file), and back. */
  save(e: number): number[];
  restore(e: number, data: readonly number[]): void;
  /**
   * For an entry read from a state file (not trusted further): the longest timeout in seconds
   * an entry of this tracker can have under `tun` with ORIG tuple `tuple` (tuple.ts layout),
   * status bits `status` and protocol state `data` (what save() returned), or -1 when no
   * packet sequence leads this tracker there.
   */
  restoreLimit(tun: TunableValues, tuple: Uint32Array, status: number, data: readonly unknown[]): number;
}

/**
 * The defaults of a tracker that keeps no per-connection state of its own (UDP, ICMP, ICMPv6,
 * generic: everything they need is the entry's timeout, status and creation time): every
 * packet passes validation and may create an entry, nothing to resize, save or restore, and
 * no entry is a candidate for early drop by protocol state.
 */
export abstract class StatelessTracker implements ProtoTracker {
  abstract readonly protonum: number;
  abstract readonly name: string;
  abstract packet(host: TrackerHost, e: number, dir: number, ctinfo: number, pkt: PacketView, now: number): number;
  /** restoreLimit() for an entry whose protocol state is empty, as save() leaves it. */
  protected abstract statelessLimit(tun: TunableValues, tuple: Uint32Array, status: number): number;

  restoreLimit(tun: TunableValues, tuple: Uint32Array, status: number, data: readonly unknown[]): number {
    return data.length === 0 ? this.statelessLimit(tun, tuple, status) : -1;
  }

  validate(_host: TrackerHost, _pkt: PacketView): boolean {
    return true;
  }
  resize(_capacity: number): void {}
  newConnection(_host: TrackerHost, _e: number, _pkt: PacketView, _now: number): boolean {
    return true;
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
