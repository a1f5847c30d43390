import { PacketView } from '../packet/view';
import { CTSTATE_INVALID, IP_CT_NONE } from './constants';
import type { Conntrack } from './core';
import type { NatRange } from './nat';

/** What a target may change on the packet's connection (the Conntrack of the packet's table). */
export interface ConnectionWriter {
  setMark(entry: number, mark: number): void;
  /** a helper for an unconfirmed entry (nft's ct helper set); no change when one is assigned */
  assignHelper(entry: number, helperId: number): void;
  /** nf_nat_setup_info (src/conntrack/nat.ts): false when no free tuple was found (drop the packet) */
  natSetup(entry: number, range: NatRange, manip: number, now: number): boolean;
  /** MASQUERADE: the entry dies with this interface's address (nf_conn_nat.masq_index) */
  setMasqIndex(entry: number, ifindex: number): void;
}

/**
 * Everything known about the packet being decided (the kernel's sk_buff + nf_hook_state +
 * its conntrack pointer): the pipeline fills the queue's metadata, the raw table sets
 * notrack/helper, conntrack the ct* fields, and the rules read it all. It lives here, in
 * the lowest layer that reads and writes it, so that conntrack and rules import it
 * downwards. One instance is reused for every packet; fields are numbers.
 */
export class PacketContext {
  readonly view = new PacketView();
  /** NF_INET_* hook the packet was queued from */
  hook = 0;
  /** 4 or 6 */
  family = 4;
  indev = 0;
  outdev = 0;
  mark = 0;
  queue = 0;
  /** length of the packet on the wire (counters count this) */
  length = 0;
  /**
   * Bytes from view.off the packet may occupy when rewritten (the queue's IX_ROOM, >= the
   * captured length): a rewrite that changes the length (FTP NAT) stays within it.
   */
  room = 0;
  /** NF_INET_* hook of the nat chain being walked (NAT targets: HOOK2MANIP), set by the pipeline */
  natHook = 0;
  /** PKTF_* flags from the queue (checksum not ready, GSO, truncated, UID/GID and MAC present) */
  pktFlags = 0;
  /** NFQA_UID / NFQA_GID of a local socket's packet; valid only with PKTF_UID_GID */
  uid = 0;
  gid = 0;
  /** NFQA_HWADDR, the Ethernet source: bytes 0-3 and 4-5; valid only with PKTF_HWADDR */
  hwaddrHi = 0;
  hwaddrLo = 0;

  /** Set by the raw table: 1 = -j CT --notrack / -j NOTRACK. */
  notrack = 0;
  /** Set by the raw table: helper id from `-j CT --helper NAME` (0 = none). */
  helper = 0;

  /** Set by conntrack: entry id or -1, ctinfo (IP_CT_*), ctstate bit (CTSTATE_*), IPS_* status. */
  entry = -1;
  ctinfo = IP_CT_NONE;
  ctstate = CTSTATE_INVALID;
  ctstatus = 0;
  /** Helper id of the entry's master (0 = no master or master without helper), for -m helper. */
  masterHelper = 0;
  /** The connection table the entry ids refer to (set once by the pipeline; -m connlimit counts in it). */
  conntrack: Conntrack | null = null;
  /** The entry's connection mark (`mark=` in `conntrack -L`), for -m connmark; 0 without an entry. */
  ctmark = 0;
  /** 1 when the entry was created by this packet and is not yet confirmed. */
  unconfirmed = 0;
  /** 1 when the entry was hashed at the pre-routing crossing and this is the second crossing deciding its first packet (F_PENDING). */
  pending = 0;

  /**
   * Set by targets: VERDICT_SET_MARK (ctx.mark changed), VERDICT_SET_PAYLOAD (the bytes were
   * rewritten in place); the pipeline ORs them into an ACCEPT verdict (src/queue/layout.ts).
   */
  verdictFlags = 0;
  /** The connection table the packet is tracked in (set once by the pipeline), for targets that change the entry. */
  conn: ConnectionWriter | null = null;

  reset(): void {
    this.verdictFlags = 0;
    this.notrack = 0;
    this.helper = 0;
    this.entry = -1;
    this.ctinfo = IP_CT_NONE;
    this.ctstate = CTSTATE_INVALID;
    this.ctstatus = 0;
    this.masterHelper = 0;
    this.ctmark = 0;
    this.unconfirmed = 0;
    this.pending = 0;
  }
}
