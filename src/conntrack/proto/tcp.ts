/**
 * TCP connection tracking: net/netfilter/nf_conntrack_proto_tcp.c (6.x, read
 * from a 6.12+ mainline tree) translated function by function:
 *
 *   tcp_error / tcp_valid_flags      → validate()
 *   tcp_new                          → newConnection()
 *   nf_conntrack_tcp_packet          → packet()
 *   tcp_in_window / tcp_init_sender  → inWindow() / initSender()
 *   tcp_options / tcp_sack           → options come pre-parsed in the PacketView
 *                                      (optWscale, optSackPerm, hasSack, sackRight)
 *   nf_tcp_handle_invalid            → handleInvalid()
 *   tcp_can_early_drop               → canEarlyDrop()
 *
 * Per-entry state (struct ip_ct_tcp, with seen[2]) is one 56-byte record per
 * entry id in a single buffer (layout at TCP_REC_WORDS). Nothing is allocated per
 * packet unless a log line is actually written (nf_conntrack_log_invalid = 6 or 255).
 *
 * Sequence arithmetic is modular 32-bit like the kernel's before()/after():
 * values are kept as unsigned numbers (`>>> 0`) and compared through `| 0`.
 */
import { IPPROTO_TCP, type PacketView } from '../../packet/view';
import { DIR_ORIGINAL, DIR_REPLY, IPS_ASSURED, IPS_FIXED_TIMEOUT, IPS_SEEN_REPLY, PKT_ACCEPT, PKT_IGNORE, PKT_INVALID, PKT_REPEAT } from '../constants';
import type { TunableValues } from '../sysctl';
import { logsInvalid, type ProtoTracker, type TrackerHost } from './tracker';

/* enum tcp_conntrack */
export const TCP_CONNTRACK_NONE = 0;
export const TCP_CONNTRACK_SYN_SENT = 1;
export const TCP_CONNTRACK_SYN_RECV = 2;
export const TCP_CONNTRACK_ESTABLISHED = 3;
export const TCP_CONNTRACK_FIN_WAIT = 4;
export const TCP_CONNTRACK_CLOSE_WAIT = 5;
export const TCP_CONNTRACK_LAST_ACK = 6;
export const TCP_CONNTRACK_TIME_WAIT = 7;
export const TCP_CONNTRACK_CLOSE = 8;
export const TCP_CONNTRACK_SYN_SENT2 = 9;
export const TCP_CONNTRACK_MAX = 10; // sIV
export const TCP_CONNTRACK_IGNORE = 11; // sIG

export const TCP_STATE_NAMES: readonly string[] = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
];

/* enum tcp_bit_set (get_conntrack_index) */
export const TCP_SYN_SET = 0;
export const TCP_SYNACK_SET = 1;
export const TCP_FIN_SET = 2;
export const TCP_ACK_SET = 3;
export const TCP_RST_SET = 4;
export const TCP_NONE_SET = 5;

/* struct ip_ct_tcp_state.flags (uapi nf_conntrack_tcp.h) */
export const IP_CT_TCP_FLAG_WINDOW_SCALE = 0x01;
export const IP_CT_TCP_FLAG_SACK_PERM = 0x02;
export const IP_CT_TCP_FLAG_CLOSE_INIT = 0x04;
export const IP_CT_TCP_FLAG_BE_LIBERAL = 0x08;
export const IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED = 0x10;
export const IP_CT_TCP_FLAG_MAXACK_SET = 0x20;
/* last_flags only */
export const IP_CT_EXP_CHALLENGE_ACK = 0x40;
export const IP_CT_TCP_SIMULTANEOUS_OPEN = 0x80;

/* TCP header flag bits (tcp_flag_byte) */
const F_FIN = 0x01;
const F_SYN = 0x02;
const F_RST = 0x04;
const F_PSH = 0x08;
const F_ACK = 0x10;
const F_URG = 0x20;
const F_ECE = 0x40;
const F_CWR = 0x80;

const MAXACKWINCONST = 66000;

/** Timeout of SYN_SENT2: the kernel has a slot for it (2 MINS) but no sysctl. */
const TIMEOUT_SYN_SENT2 = 120;

/* nf_tcp_log_invalid / tcp_in_window result (enum nf_ct_tcp_action) */
const NFCT_TCP_IGNORE = 0;
const NFCT_TCP_INVALID = 1;
const NFCT_TCP_ACCEPT = 2;

/**
 * tcp_conntracks[dir][index][old_state], written as the kernel writes it:
 * one row per packet class, columns sNO sSS sSR sES sFW sCW sLA sTW sCL sS2.
 */
const sNO = TCP_CONNTRACK_NONE;
const sSS = TCP_CONNTRACK_SYN_SENT;
const sSR = TCP_CONNTRACK_SYN_RECV;
const sES = TCP_CONNTRACK_ESTABLISHED;
const sFW = TCP_CONNTRACK_FIN_WAIT;
const sCW = TCP_CONNTRACK_CLOSE_WAIT;
const sLA = TCP_CONNTRACK_LAST_ACK;
const sTW = TCP_CONNTRACK_TIME_WAIT;
const sCL = TCP_CONNTRACK_CLOSE;
const sS2 = TCP_CONNTRACK_SYN_SENT2;
const sIV = TCP_CONNTRACK_MAX;
const sIG = TCP_CONNTRACK_IGNORE;

// prettier-ignore
export const TCP_CONNTRACKS: readonly (readonly (readonly number[])[])[] = [
  [ /* ORIGINAL */
    /*            sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
    /* syn    */ [sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2],
    /* synack */ [sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR],
    /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
    /* ack    */ [sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV],
    /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
  [ /* REPLY */
    /*            sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
    /* syn    */ [sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2],
    /* synack */ [sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR],
    /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
    /* ack    */ [sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG],
    /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
];

/** The same table flattened for the hot path: [dir * 60 + index * 10 + old_state]. */
const TABLE = new Uint8Array(120);
for (let d = 0; d < 2; d++) for (let i = 0; i < 6; i++) for (let s = 0; s < 10; s++) TABLE[d * 60 + i * 10 + s] = TCP_CONNTRACKS[d][i][s];

/** tcp_valid_flags[]: PSH, ECE and CWR are masked off before the lookup. */
const VALID_FLAGS = new Uint8Array(64);
for (const f of [F_SYN, F_SYN | F_URG, F_SYN | F_ACK, F_RST, F_RST | F_ACK, F_FIN | F_ACK, F_FIN | F_ACK | F_URG, F_ACK, F_ACK | F_URG]) VALID_FLAGS[f] = 1;

/** get_conntrack_index */
export function tcpIndex(flags: number): number {
  if (flags & F_RST) return TCP_RST_SET;
  if (flags & F_SYN) return flags & F_ACK ? TCP_SYNACK_SET : TCP_SYN_SET;
  if (flags & F_FIN) return TCP_FIN_SET;
  if (flags & F_ACK) return TCP_ACK_SET;
  return TCP_NONE_SET;
}

/** before(a, b): (s32)(a - b) < 0 */
function before(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}
/** after(a, b): before(b, a) */
function after(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

/** segment_seq_plus_len */
function segEnd(pkt: PacketView): number {
  return (pkt.seq + pkt.payloadLen + (pkt.tcpFlags & F_SYN ? 1 : 0) + (pkt.tcpFlags & F_FIN ? 1 : 0)) >>> 0;
}

/** tcp_timeouts[state] from the live sysctls, in seconds. */
export function tcpStateTimeout(tun: TunableValues, state: number): number {
  switch (state) {
    case TCP_CONNTRACK_SYN_SENT:
      return tun.nf_conntrack_tcp_timeout_syn_sent;
    case TCP_CONNTRACK_SYN_RECV:
      return tun.nf_conntrack_tcp_timeout_syn_recv;
    case TCP_CONNTRACK_ESTABLISHED:
      return tun.nf_conntrack_tcp_timeout_established;
    case TCP_CONNTRACK_FIN_WAIT:
      return tun.nf_conntrack_tcp_timeout_fin_wait;
    case TCP_CONNTRACK_CLOSE_WAIT:
      return tun.nf_conntrack_tcp_timeout_close_wait;
    case TCP_CONNTRACK_LAST_ACK:
      return tun.nf_conntrack_tcp_timeout_last_ack;
    case TCP_CONNTRACK_TIME_WAIT:
      return tun.nf_conntrack_tcp_timeout_time_wait;
    case TCP_CONNTRACK_CLOSE:
      return tun.nf_conntrack_tcp_timeout_close;
    case TCP_CONNTRACK_SYN_SENT2:
      return TIMEOUT_SYN_SENT2;
    default:
      return tun.nf_conntrack_tcp_timeout_syn_sent; // NONE never survives a packet
  }
}

function logEnabled(host: TrackerHost): boolean {
  return logsInvalid(host.tun, IPPROTO_TCP);
}

/** Number of values save() returns. */
export const TCP_SAVE_LEN = 22;
const U8 = 0xff;
const U32 = 0xffffffff;
const SCALE = 14; // TCP_MAX_WSCALE
/** the largest value of each field save() returns */
const SAVE_MAX = [U8, 1, U8, TCP_NONE_SET, U32, U32, U32, 0xffff, SCALE, U8, U32, U32, U32, U32, SCALE, U8, U32, U32, U32, U32, SCALE, U8];

/*
 * The tracker's own record per entry (not the table's record of layout.ts), in a single
 * ArrayBuffer, read through three views of it (u32 / u16 / u8
 * indices below are relative to the record's start), so a packet touches one or two cache lines
 * of tracker state instead of one per field. Same fields and widths as struct ip_ct_tcp, without
 * its padding; not padded to 64 bytes either: at 1M entries that measured no faster and costs
 * 8 bytes per entry.
 */
const TCP_REC_WORDS = 14;
const TCP_REC_HALVES = TCP_REC_WORDS * 2;
const TCP_REC_BYTES = TCP_REC_WORDS * 4;
/* seen[dir] (struct ip_ct_tcp_state): u32 words at 4 * dir + ... */
const TD_END = 0;
const TD_MAXEND = 1;
const TD_MAXWIN = 2;
const TD_MAXACK = 3;
/* u32 words */
const LAST_SEQ = 8;
const LAST_ACK = 9;
const LAST_END = 10;
/* bytes: seen[dir].td_scale and .flags at 2 * dir + ... */
const TD_SCALE8 = 44;
const TD_FLAGS8 = 45;
const STATE8 = 48;
const LAST_DIR8 = 49;
const RETRANS8 = 50;
const LAST_INDEX8 = 51;
/* u16 at byte 52 */
const LAST_WIN16 = 26;
const LAST_WSCALE8 = 54;
const LAST_FLAGS8 = 55;

export class TcpTracker implements ProtoTracker {
  readonly protonum = 6;
  readonly name = 'tcp';

  private cap = 0;
  /** rows below this were initialised at some point (highest entry id + 1) */
  private used = 0;
  private u32 = new Uint32Array(0);
  private u16 = new Uint16Array(0);
  private u8 = new Uint8Array(0);

  constructor(capacity = 0) {
    if (capacity > 0) this.resize(capacity);
  }

  /** Entry e is about to be initialised (newConnection / restore). */
  private ensure(e: number): void {
    if (e < this.used) return;
    // only without a table (the table resizes the tracker to its own capacity first)
    if (e >= this.cap) this.resize(Math.max(e + 1, this.cap * 2, 1024));
    this.used = e + 1;
  }

  /**
   * Records for `capacity` entries (the table calls this with its whole capacity, reserved at
   * nf_conntrack_max). Writes nothing but the copy of the rows in use: a fresh ArrayBuffer is
   * zeroed memory the OS commits page by page as rows are first touched, and every row is
   * initialised by newConnection() or restore() before use. So reserving costs address space,
   * not memory, also when it is done again, bigger; growing on demand instead would copy every
   * row below the highest in use at each doubling (a 100–160 ms stall at 512k entries on the
   * benchmark machine).
   */
  resize(capacity: number): void {
    if (capacity <= this.cap) return;
    const buf = new ArrayBuffer(capacity * TCP_REC_BYTES);
    const u32 = new Uint32Array(buf);
    if (this.used > 0) u32.set(this.u32.subarray(0, this.used * TCP_REC_WORDS));
    this.u32 = u32;
    this.u16 = new Uint16Array(buf);
    this.u8 = new Uint8Array(buf);
    this.cap = capacity;
  }

  /** memset(&ct->proto.tcp, 0, ...) */
  private clear(e: number): void {
    const u32 = this.u32;
    const w = e * TCP_REC_WORDS;
    for (let i = w; i < w + TCP_REC_WORDS; i++) u32[i] = 0;
  }

  /**
   * tcp_options() into seen[dir] (b: the record's byte index): only when the header carries
   * options (the kernel returns early for doff == 5); then td_scale and every flag but
   * BE_LIBERAL are reset before the options are applied.
   */
  private options(pkt: PacketView, b: number, dir: number): void {
    if (pkt.tcpHeaderLen <= 20) return;
    const u8 = this.u8;
    const o = b + 2 * dir;
    let f = u8[o + TD_FLAGS8] & IP_CT_TCP_FLAG_BE_LIBERAL;
    let scale = 0;
    if (pkt.optSackPerm) f |= IP_CT_TCP_FLAG_SACK_PERM;
    if (pkt.optWscale >= 0) {
      scale = pkt.optWscale > 14 ? 14 : pkt.optWscale;
      f |= IP_CT_TCP_FLAG_WINDOW_SCALE;
    }
    u8[o + TD_FLAGS8] = f;
    u8[o + TD_SCALE8] = scale;
  }

  /** tcp_error (checksums are the core's). */
  validate(host: TrackerHost, pkt: PacketView): boolean {
    // skb_header_pointer(sizeof(struct tcphdr)) failing: INVALID, nothing logged.
    if (pkt.l4len < 20) return false;
    if (pkt.malformed !== 0 || pkt.tcpHeaderLen < 20 || pkt.l4len < pkt.tcpHeaderLen) {
      if (logEnabled(host)) host.logInvalid(pkt, 'truncated packet');
      return false;
    }
    if (!VALID_FLAGS[pkt.tcpFlags & ~(F_ECE | F_CWR | F_PSH) & 0x3f]) {
      if (logEnabled(host)) host.logInvalid(pkt, 'invalid tcp flag combination');
      return false;
    }
    return true;
  }

  /** tcp_new */
  newConnection(host: TrackerHost, e: number, pkt: PacketView, _now: number): boolean {
    this.ensure(e);
    const newState = TABLE[tcpIndex(pkt.tcpFlags) * 10 + TCP_CONNTRACK_NONE];
    if (newState >= TCP_CONNTRACK_MAX) {
      if (logEnabled(host)) host.logInvalid(pkt, 'invalid new');
      return false;
    }
    const u32 = this.u32;
    const u8 = this.u8;
    const w = e * TCP_REC_WORDS;
    const b = e * TCP_REC_BYTES;
    if (newState === TCP_CONNTRACK_SYN_SENT) {
      this.clear(e);
      const end = segEnd(pkt);
      u32[w + TD_END] = end;
      u32[w + TD_MAXWIN] = pkt.window === 0 ? 1 : pkt.window;
      u32[w + TD_MAXEND] = end;
      this.options(pkt, b, DIR_ORIGINAL);
    } else if (host.tun.nf_conntrack_tcp_loose === 0) {
      // Don't try to pick up connections.
      return false;
    } else {
      this.clear(e);
      const end = segEnd(pkt);
      const mw = pkt.window === 0 ? 1 : pkt.window;
      u32[w + TD_END] = end;
      u32[w + TD_MAXWIN] = mw;
      u32[w + TD_MAXEND] = end + mw;
      // We assume SACK and liberal window checking to handle window scaling.
      u8[b + TD_FLAGS8] = u8[b + 2 + TD_FLAGS8] = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
    }
    u8[b + LAST_INDEX8] = TCP_NONE_SET;
    return true;
  }

  /** tcp_init_sender (si: seen[dir]'s word index, b: the record's byte index) */
  private initSender(pkt: PacketView, si: number, b: number, end: number, win: number, dir: number): void {
    const u32 = this.u32;
    const u8 = this.u8;
    u32[si + TD_END] = end;
    u32[si + TD_MAXEND] = end;
    u32[si + TD_MAXWIN] = win === 0 ? 1 : win;
    this.options(pkt, b, dir);
    // RFC 1323: both sides must send the Window Scale option to enable scaling.
    if (dir === DIR_REPLY && !(u8[b + 2 + TD_FLAGS8] & IP_CT_TCP_FLAG_WINDOW_SCALE && u8[b + TD_FLAGS8] & IP_CT_TCP_FLAG_WINDOW_SCALE)) {
      u8[b + TD_SCALE8] = 0;
      u8[b + 2 + TD_SCALE8] = 0;
    }
  }

  /** nf_tcp_log_invalid: liberal senders get everything accepted (unlogged). sf: the sender's flags byte. */
  private windowVerdict(host: TrackerHost, pkt: PacketView, sf: number, ret: number, what: number, v: number): number {
    if (this.u8[sf] & IP_CT_TCP_FLAG_BE_LIBERAL || host.tun.nf_conntrack_tcp_be_liberal) return NFCT_TCP_ACCEPT;
    if (logEnabled(host)) host.logInvalid(pkt, windowMessage(what, v));
    return ret;
  }

  /** tcp_in_window */
  private inWindow(host: TrackerHost, e: number, dir: number, index: number, pkt: PacketView): number {
    const u32 = this.u32;
    const u8 = this.u8;
    const w = e * TCP_REC_WORDS;
    const b = e * TCP_REC_BYTES;
    // sender and receiver: seen[] word index, flags and scale byte index
    const si = w + 4 * dir;
    const ri = w + 4 * (dir ^ 1);
    const sf = b + 2 * dir + TD_FLAGS8;
    const rf = b + 2 * (dir ^ 1) + TD_FLAGS8;
    const sscale = b + 2 * dir + TD_SCALE8;
    const tflags = pkt.tcpFlags;
    const isSyn = tflags & F_SYN;
    const hasAck = tflags & F_ACK;

    let seq = pkt.seq;
    let ack = pkt.ack;
    let sack = ack;
    const winRaw = pkt.window;
    let win = winRaw;
    let end = segEnd(pkt);

    // tcp_sack: only when the receiver negotiated SACK-permitted.
    if (u8[rf] & IP_CT_TCP_FLAG_SACK_PERM && pkt.hasSack && after(pkt.sackRight, sack)) sack = pkt.sackRight;

    // Take into account NAT sequence number mangling: the ack is in the receiver's adjusted space
    const receiverOffset = host.seqOffset(e, dir ^ 1, (ack - 1) >>> 0);
    if (receiverOffset !== 0) {
      ack = (ack - receiverOffset) >>> 0;
      sack = (sack - receiverOffset) >>> 0;
    }

    if (u32[si + TD_MAXWIN] === 0) {
      // Initialize sender data.
      if (isSyn) {
        this.initSender(pkt, si, b, end, win, dir);
        if (!hasAck) return NFCT_TCP_ACCEPT; // simultaneous open
      } else {
        // Mid-connection: its history is lost for us; use the packet's data.
        u32[si + TD_END] = end;
        const swin = win << u8[sscale];
        u32[si + TD_MAXWIN] = swin === 0 ? 1 : swin;
        u32[si + TD_MAXEND] = end + u32[si + TD_MAXWIN];
        if (u32[ri + TD_MAXWIN] === 0) {
          // Nothing seen from the other side yet: tweak so III and IV pass.
          u32[ri + TD_END] = u32[ri + TD_MAXEND] = sack;
        } else if (sack === (u32[ri + TD_END] + 1) >>> 0) {
          // Likely a reply to a keepalive. Needed for III.
          u32[ri + TD_END] = u32[ri + TD_END] + 1;
        }
      }
    } else if (isSyn && after(end, u32[si + TD_END]) && (u8[b + STATE8] === TCP_CONNTRACK_SYN_SENT || u8[b + STATE8] === TCP_CONNTRACK_SYN_RECV)) {
      // RFC 793: a reinitialized TCP uses larger sequence numbers: re-init this direction.
      this.initSender(pkt, si, b, end, win, dir);
      if (dir === DIR_REPLY && !hasAck) return NFCT_TCP_ACCEPT;
    }

    if (!hasAck) {
      // No ACK: pretend it was set and OK.
      ack = sack = u32[ri + TD_END];
    } else if (tflags & F_RST && ack === 0) {
      // Broken stacks that set ACK in RST packets with a zero ack value.
      ack = sack = u32[ri + TD_END];
    }

    if (tflags & F_RST && seq === 0 && u8[b + STATE8] === TCP_CONNTRACK_SYN_SENT) {
      // RST sent answering SYN.
      seq = end = u32[si + TD_END];
    }

    const rEnd = u32[ri + TD_END];
    const rMaxwin = u32[ri + TD_MAXWIN];
    const sMaxwin = u32[si + TD_MAXWIN];
    const maxAckWin = sMaxwin > MAXACKWINCONST ? sMaxwin : MAXACKWINCONST;

    // I. seq <= sender.td_maxend
    if (!before(seq, u32[si + TD_MAXEND] + 1)) {
      const overshot = (end - u32[si + TD_MAXEND] + 1) >>> 0;
      const ackOk = after(sack, rEnd - maxAckWin - 1);
      const inRecvWin = rMaxwin !== 0 && after(end, u32[si + TD_END] - rMaxwin - 1);
      if (inRecvWin && ackOk && overshot <= rMaxwin && before(sack, rEnd + 1)) {
        // Work around TCPs sending more than the receive window allows: advance
        // td_end so the peer's ACK of this data will not be "over upper bound".
        u32[si + TD_END] = end;
        u8[sf] |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
        return this.windowVerdict(host, pkt, sf, NFCT_TCP_IGNORE, W_OVERSHOT, overshot);
      }
      return this.windowVerdict(host, pkt, sf, NFCT_TCP_INVALID, W_SEQ_OVER, (u32[si + TD_MAXEND] + 1) >>> 0);
    }
    // III. sack <= receiver.td_end
    if (!before(sack, rEnd + 1)) return this.windowVerdict(host, pkt, sf, NFCT_TCP_INVALID, W_ACK_OVER, (rEnd + 1) >>> 0);
    // II. end >= sender.td_end - receiver.td_maxwin (if the receiver's window is known)
    if (rMaxwin !== 0 && !after(end, u32[si + TD_END] - rMaxwin - 1))
      return this.windowVerdict(host, pkt, sf, NFCT_TCP_IGNORE, W_SEQ_UNDER, (u32[si + TD_END] - rMaxwin - 1) >>> 0);
    // IV. sack >= receiver.td_end - MAXACKWINDOW(sender)
    if (!after(sack, rEnd - maxAckWin - 1)) return this.windowVerdict(host, pkt, sf, NFCT_TCP_IGNORE, W_ACK_UNDER, (rEnd - maxAckWin - 1) >>> 0);

    // Window scaling (RFC 1323), not on SYNs.
    if (!isSyn) win = win << u8[sscale];

    // Update sender data.
    const swin = (win + sack - ack) >>> 0;
    if (u32[si + TD_MAXWIN] < swin) u32[si + TD_MAXWIN] = swin;
    if (after(end, u32[si + TD_END])) {
      u32[si + TD_END] = end;
      u8[sf] |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
    }
    if (hasAck) {
      if (!(u8[sf] & IP_CT_TCP_FLAG_MAXACK_SET)) {
        u32[si + TD_MAXACK] = ack;
        u8[sf] |= IP_CT_TCP_FLAG_MAXACK_SET;
      } else if (after(ack, u32[si + TD_MAXACK])) {
        u32[si + TD_MAXACK] = ack;
      }
    }

    // Update receiver data.
    if (u32[ri + TD_MAXWIN] !== 0 && after(end, u32[si + TD_MAXEND])) u32[ri + TD_MAXWIN] = u32[ri + TD_MAXWIN] + ((end - u32[si + TD_MAXEND]) >>> 0);
    if (after(sack + win, u32[ri + TD_MAXEND] - 1)) {
      u32[ri + TD_MAXEND] = sack + win + (win === 0 ? 1 : 0);
    }
    if (ack === u32[ri + TD_END]) u8[rf] &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;

    // Check retransmissions.
    if (index === TCP_ACK_SET) {
      const lw = e * TCP_REC_HALVES + LAST_WIN16;
      if (u8[b + LAST_DIR8] === dir && u32[w + LAST_SEQ] === seq && u32[w + LAST_ACK] === ack && u32[w + LAST_END] === end && this.u16[lw] === winRaw) {
        u8[b + RETRANS8]++;
      } else {
        u8[b + LAST_DIR8] = dir;
        u32[w + LAST_SEQ] = seq;
        u32[w + LAST_ACK] = ack;
        u32[w + LAST_END] = end;
        this.u16[lw] = winRaw;
        u8[b + RETRANS8] = 0;
      }
    }
    return NFCT_TCP_ACCEPT;
  }

  /** nf_tcp_handle_invalid: an out-of-window FIN/RST answering a FIN/RST shortens an ASSURED entry's life. */
  private handleInvalid(host: TrackerHost, e: number, dir: number, index: number, pkt: PacketView, now: number): void {
    const st = host.status(e);
    if (!(st & IPS_ASSURED) || st & IPS_FIXED_TIMEOUT) return;
    if (index !== TCP_RST_SET && index !== TCP_FIN_SET) return;
    const u8 = this.u8;
    const b = e * TCP_REC_BYTES;
    const lastIndex = u8[b + LAST_INDEX8];
    if (u8[b + LAST_DIR8] !== dir && (lastIndex === TCP_FIN_SET || lastIndex === TCP_RST_SET)) {
      const expires = host.timeoutLeft(e, now);
      if (expires < 120) return;
      const timeout = host.tun.nf_conntrack_tcp_timeout_unacknowledged;
      if (expires > timeout) {
        if (logEnabled(host)) host.logInvalid(pkt, `packet (index ${index}, dir ${dir}) response for index ${lastIndex} lower timeout to ${timeout}`);
        host.setTimeout(e, timeout, now);
      }
    } else {
      u8[b + LAST_INDEX8] = index;
      u8[b + LAST_DIR8] = dir;
    }
  }

  /** nf_conntrack_tcp_established */
  private established(host: TrackerHost, e: number): boolean {
    return this.u8[e * TCP_REC_BYTES + STATE8] === TCP_CONNTRACK_ESTABLISHED && (host.status(e) & IPS_ASSURED) !== 0;
  }

  /** nf_conntrack_tcp_packet (after tcp_error / tcp_new, which run in validate / newConnection). */
  packet(host: TrackerHost, e: number, dir: number, _ctinfo: number, pkt: PacketView, now: number): number {
    const tun = host.tun;
    const u32 = this.u32;
    const u8 = this.u8;
    const w = e * TCP_REC_WORDS;
    const b = e * TCP_REC_BYTES;
    const tflags = pkt.tcpFlags;
    const index = tcpIndex(tflags);
    let oldState = u8[b + STATE8];
    let newState = TABLE[dir * 60 + index * 10 + oldState];
    let skipWindow = false;

    let ignore = newState === TCP_CONNTRACK_IGNORE;
    if (newState === TCP_CONNTRACK_SYN_SENT && oldState >= TCP_CONNTRACK_TIME_WAIT) {
      // RFC 1122 reopen from TIME_WAIT / CLOSE, or an aborted connection restarted.
      if ((u8[b + TD_FLAGS8] | u8[b + 2 + TD_FLAGS8]) & IP_CT_TCP_FLAG_CLOSE_INIT || (u8[b + LAST_DIR8] === dir && u8[b + LAST_INDEX8] === TCP_RST_SET)) {
        // Delete this connection and look up again.
        host.kill(e);
        return PKT_REPEAT;
      }
      ignore = true; // fallthrough
    }

    if (ignore) {
      const lw = e * TCP_REC_HALVES + LAST_WIN16;
      if (index === TCP_SYNACK_SET && u8[b + LAST_INDEX8] === TCP_SYN_SET && u8[b + LAST_DIR8] !== dir && pkt.ack === u32[w + LAST_END]) {
        // b) This SYN/ACK acknowledges a SYN we ignored earlier: client and server
        // are in sync, we are not. Resync from the annotated values.
        oldState = TCP_CONNTRACK_SYN_SENT;
        newState = TCP_CONNTRACK_SYN_RECV;
        const ld = u8[b + LAST_DIR8];
        const li = w + 4 * ld;
        const lb = b + 2 * ld;
        u32[li + TD_END] = u32[w + LAST_END];
        u32[li + TD_MAXEND] = u32[w + LAST_END];
        u32[li + TD_MAXWIN] = this.u16[lw] === 0 ? 1 : this.u16[lw];
        u8[lb + TD_SCALE8] = u8[b + LAST_WSCALE8];
        u8[b + LAST_FLAGS8] &= ~IP_CT_EXP_CHALLENGE_ACK;
        u8[lb + TD_FLAGS8] = u8[b + LAST_FLAGS8];
        // nf_ct_tcp_state_reset(&seen[dir])
        const di = w + 4 * dir;
        const db = b + 2 * dir;
        u32[di + TD_END] = 0;
        u32[di + TD_MAXEND] = 0;
        u32[di + TD_MAXWIN] = 0;
        u32[di + TD_MAXACK] = 0;
        u8[db + TD_SCALE8] = 0;
        u8[db + TD_FLAGS8] &= IP_CT_TCP_FLAG_BE_LIBERAL;
      } else {
        u8[b + LAST_INDEX8] = index;
        u8[b + LAST_DIR8] = dir;
        u32[w + LAST_SEQ] = pkt.seq;
        u32[w + LAST_END] = segEnd(pkt);
        this.u16[lw] = pkt.window;
        // a) A SYN in ORIGINAL: annotate its options and let it through; a valid
        // SYN gets a SYN/ACK and we resync, otherwise maybe an RFC 5961 challenge ACK.
        if (index === TCP_SYN_SET && dir === DIR_ORIGINAL) {
          let lf = 0;
          let lws = 0;
          if (pkt.tcpHeaderLen > 20) {
            if (pkt.optWscale >= 0) {
              lf |= IP_CT_TCP_FLAG_WINDOW_SCALE;
              lws = pkt.optWscale > 14 ? 14 : pkt.optWscale;
            }
            if (pkt.optSackPerm) lf |= IP_CT_TCP_FLAG_SACK_PERM;
          }
          // The potential RFC 5961 challenge ACK is a problem in LAST_ACK, where
          // an ACK would be taken for the ACK of the last FIN.
          if (oldState === TCP_CONNTRACK_LAST_ACK) lf |= IP_CT_EXP_CHALLENGE_ACK;
          u8[b + LAST_FLAGS8] = lf;
          u8[b + LAST_WSCALE8] = lws;
        }
        // possible challenge ack reply to syn
        if (oldState === TCP_CONNTRACK_SYN_SENT && index === TCP_ACK_SET && dir === DIR_REPLY) u32[w + LAST_ACK] = pkt.ack;
        if (logEnabled(host)) host.logInvalid(pkt, `packet (index ${index}) in dir ${dir} ignored, state ${TCP_STATE_NAMES[oldState]}`);
        return PKT_IGNORE;
      }
    } else if (newState === TCP_CONNTRACK_MAX) {
      // (The SYN-proxy keep-alive exception does not apply: no synproxy.)
      if (logEnabled(host)) host.logInvalid(pkt, `packet (index ${index}) in dir ${dir} invalid, state ${TCP_STATE_NAMES[oldState]}`);
      return PKT_INVALID;
    } else if (newState === TCP_CONNTRACK_TIME_WAIT) {
      // RFC 5961 challenge ACK in answer to a spurious SYN is not the last ACK.
      if (
        oldState === TCP_CONNTRACK_LAST_ACK &&
        index === TCP_ACK_SET &&
        u8[b + LAST_DIR8] !== dir &&
        u8[b + LAST_INDEX8] === TCP_SYN_SET &&
        u8[b + LAST_FLAGS8] & IP_CT_EXP_CHALLENGE_ACK
      ) {
        u8[b + LAST_FLAGS8] &= ~IP_CT_EXP_CHALLENGE_ACK;
        if (logEnabled(host)) host.logInvalid(pkt, 'challenge-ack ignored');
        return PKT_IGNORE; // don't change state
      }
    } else if (newState === TCP_CONNTRACK_SYN_SENT2) {
      // The table is not smart enough to handle simultaneous open.
      u8[b + LAST_FLAGS8] |= IP_CT_TCP_SIMULTANEOUS_OPEN;
    } else if (newState === TCP_CONNTRACK_SYN_RECV) {
      if (dir === DIR_REPLY && index === TCP_ACK_SET && u8[b + LAST_FLAGS8] & IP_CT_TCP_SIMULTANEOUS_OPEN) newState = TCP_CONNTRACK_ESTABLISHED;
    } else if (newState === TCP_CONNTRACK_CLOSE && index === TCP_RST_SET) {
      rst: {
        // Already closing: the tuple may have been reused, fields are outdated: skip checks.
        if (this.canEarlyDrop(e)) {
          skipWindow = true;
          break rst;
        }
        const ri = w + 4 * (dir ^ 1);
        // td_maxack might be outdated if we let a SYN through earlier.
        if (u8[b + 2 * (dir ^ 1) + TD_FLAGS8] & IP_CT_TCP_FLAG_MAXACK_SET && u8[b + LAST_INDEX8] !== TCP_SYN_SET) {
          const seq = pkt.seq;
          // Not established and SEQ=0: most likely an answer to a SYN we let through.
          if (seq === 0 && !this.established(host, e)) break rst;
          if (before(seq, u32[ri + TD_MAXACK]) && !tun.nf_conntrack_tcp_ignore_invalid_rst) {
            if (logEnabled(host)) host.logInvalid(pkt, 'invalid rst');
            return PKT_INVALID;
          }
          if (!this.established(host, e) || seq === u32[ri + TD_MAXACK]) break rst;
          // RST part of a train: same side's in-window data ended exactly here.
          if (u8[b + LAST_INDEX8] === TCP_ACK_SET && u8[b + LAST_DIR8] === dir && seq === u32[w + LAST_END]) break rst;
          // Sequence doesn't match exactly: keep the state to allow a challenge ACK.
          newState = oldState;
        }
        const st = host.status(e);
        const lastIndex = u8[b + LAST_INDEX8];
        if (((st & IPS_SEEN_REPLY && lastIndex === TCP_SYN_SET) || (!(st & IPS_ASSURED) && lastIndex === TCP_ACK_SET)) && pkt.ack === u32[w + LAST_END]) {
          // RST answering an ignored SYN (a) or a half-open ACK (c): skip the
          // window check, the packet may ACK segments we ignored.
          skipWindow = true;
          break rst;
        }
        // Reset in response to a challenge-ack we let through earlier.
        if (oldState === TCP_CONNTRACK_SYN_SENT && lastIndex === TCP_ACK_SET && u8[b + LAST_DIR8] === DIR_REPLY && pkt.seq === u32[w + LAST_ACK])
          skipWindow = true;
      }
    }

    if (!skipWindow) {
      const res = this.inWindow(host, e, dir, index, pkt);
      if (res === NFCT_TCP_IGNORE) return PKT_IGNORE;
      if (res === NFCT_TCP_INVALID) {
        this.handleInvalid(host, e, dir, index, pkt, now);
        return PKT_INVALID;
      }
    }

    // in_window: from now on we have got in-window packets.
    u8[b + LAST_INDEX8] = index;
    u8[b + LAST_DIR8] = dir;
    u8[b + STATE8] = newState;
    if (oldState !== newState && newState === TCP_CONNTRACK_FIN_WAIT) u8[b + 2 * dir + TD_FLAGS8] |= IP_CT_TCP_FLAG_CLOSE_INIT;

    const tNew = tcpStateTimeout(tun, newState);
    const tRetrans = tun.nf_conntrack_tcp_timeout_max_retrans;
    const tUnack = tun.nf_conntrack_tcp_timeout_unacknowledged;
    let timeout: number;
    if (u8[b + RETRANS8] >= tun.nf_conntrack_tcp_max_retrans && tNew > tRetrans) timeout = tRetrans;
    else if (index === TCP_RST_SET) timeout = tun.nf_conntrack_tcp_timeout_close;
    else if ((u8[b + TD_FLAGS8] | u8[b + 2 + TD_FLAGS8]) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED && tNew > tUnack) timeout = tUnack;
    else if (this.u16[e * TCP_REC_HALVES + LAST_WIN16] === 0 && tNew > tRetrans) timeout = tRetrans;
    else timeout = tNew;

    const st = host.status(e);
    if (!(st & IPS_SEEN_REPLY)) {
      // If the only reply is a RST, there is no connection: delete the entry now.
      if (tflags & F_RST) {
        host.kill(e);
        return PKT_ACCEPT;
      }
      // Do not renew the timeout on a SYN retransmit (port reuse could keep it alive forever).
      if (index === TCP_SYN_SET && oldState === TCP_CONNTRACK_SYN_SENT) return PKT_ACCEPT;
      // ESTABLISHED without SEEN_REPLY (loose pickup): avoid the large timeout.
      if (newState === TCP_CONNTRACK_ESTABLISHED && timeout > tUnack) timeout = tUnack;
    } else if (
      !(st & IPS_ASSURED) &&
      (oldState === TCP_CONNTRACK_SYN_RECV || oldState === TCP_CONNTRACK_ESTABLISHED) &&
      newState === TCP_CONNTRACK_ESTABLISHED
    ) {
      host.setStatusBits(e, IPS_ASSURED);
    }
    if (!(st & IPS_FIXED_TIMEOUT)) host.setTimeout(e, timeout, now);
    return PKT_ACCEPT;
  }

  /** tcp_can_early_drop */
  canEarlyDrop(e: number): boolean {
    const s = this.u8[e * TCP_REC_BYTES + STATE8];
    return s >= TCP_CONNTRACK_FIN_WAIT && s <= TCP_CONNTRACK_CLOSE;
  }

  stateName(e: number): string {
    return TCP_STATE_NAMES[this.u8[e * TCP_REC_BYTES + STATE8]] ?? 'NONE';
  }

  /** Entry e's TCP_CONNTRACK_* state. */
  state(e: number): number {
    return this.u8[e * TCP_REC_BYTES + STATE8];
  }

  /** The window scale (td_scale) of direction dir of entry e. */
  windowScale(e: number, dir: number): number {
    return this.u8[e * TCP_REC_BYTES + 2 * dir + TD_SCALE8];
  }

  /**
   * [state, last_dir, retrans, last_index, last_seq, last_ack, last_end,
   *  last_win, last_wscale, last_flags, then for dir 0 and 1:
   *  td_end, td_maxend, td_maxwin, td_maxack, td_scale, flags]
   */
  save(e: number): number[] {
    const u32 = this.u32;
    const u8 = this.u8;
    const w = e * TCP_REC_WORDS;
    const b = e * TCP_REC_BYTES;
    const out = [
      u8[b + STATE8],
      u8[b + LAST_DIR8],
      u8[b + RETRANS8],
      u8[b + LAST_INDEX8],
      u32[w + LAST_SEQ],
      u32[w + LAST_ACK],
      u32[w + LAST_END],
      this.u16[e * TCP_REC_HALVES + LAST_WIN16],
      u8[b + LAST_WSCALE8],
      u8[b + LAST_FLAGS8],
    ];
    for (let dir = 0; dir < 2; dir++) {
      const si = w + 4 * dir;
      const sb = b + 2 * dir;
      out.push(u32[si + TD_END], u32[si + TD_MAXEND], u32[si + TD_MAXWIN], u32[si + TD_MAXACK], u8[sb + TD_SCALE8], u8[sb + TD_FLAGS8]);
    }
    return out;
  }

  /**
   * save()'s fields within their widths, a state a confirmed entry can be in, and the timeout
   * packet() would have set in it last (the state's, lowered as packet() lowers it).
   */
  restoreLimit(tun: TunableValues, _tuple: Uint32Array, status: number, d: readonly unknown[]): number {
    if (d.length !== TCP_SAVE_LEN) return -1;
    for (let i = 0; i < TCP_SAVE_LEN; i++) {
      const v = d[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > SAVE_MAX[i]) return -1;
    }
    const n = d as readonly number[];
    const state = n[0];
    if (state === TCP_CONNTRACK_NONE || state >= TCP_CONNTRACK_MAX) return -1;
    let t = tcpStateTimeout(tun, state);
    const tRetrans = tun.nf_conntrack_tcp_timeout_max_retrans;
    const tUnack = tun.nf_conntrack_tcp_timeout_unacknowledged;
    if (n[2] >= tun.nf_conntrack_tcp_max_retrans || n[7] === 0) t = Math.min(t, tRetrans);
    if ((n[15] | n[21]) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED) t = Math.min(t, tUnack);
    if (!(status & IPS_SEEN_REPLY) && state === TCP_CONNTRACK_ESTABLISHED) t = Math.min(t, tUnack);
    return t;
  }

  restore(e: number, d: readonly number[]): void {
    this.ensure(e);
    const u32 = this.u32;
    const u8 = this.u8;
    const w = e * TCP_REC_WORDS;
    const b = e * TCP_REC_BYTES;
    const v = (i: number): number => (i < d.length && Number.isFinite(d[i]) ? d[i] : 0);
    const st = v(0);
    u8[b + STATE8] = st >= 0 && st < TCP_CONNTRACK_MAX ? st : TCP_CONNTRACK_NONE;
    u8[b + LAST_DIR8] = v(1) & 1;
    u8[b + RETRANS8] = v(2);
    u8[b + LAST_INDEX8] = v(3) <= TCP_NONE_SET ? v(3) : TCP_NONE_SET;
    u32[w + LAST_SEQ] = v(4);
    u32[w + LAST_ACK] = v(5);
    u32[w + LAST_END] = v(6);
    this.u16[e * TCP_REC_HALVES + LAST_WIN16] = v(7);
    u8[b + LAST_WSCALE8] = v(8);
    u8[b + LAST_FLAGS8] = v(9);
    for (let dir = 0; dir < 2; dir++) {
      const si = w + 4 * dir;
      const sb = b + 2 * dir;
      const o = 10 + 6 * dir;
      u32[si + TD_END] = v(o);
      u32[si + TD_MAXEND] = v(o + 1);
      u32[si + TD_MAXWIN] = v(o + 2);
      u32[si + TD_MAXACK] = v(o + 3);
      u8[sb + TD_SCALE8] = v(o + 4) > 14 ? 14 : v(o + 4);
      u8[sb + TD_FLAGS8] = v(o + 5);
    }
  }
}

/* tcp_in_window log texts (6.x wording) */
const W_OVERSHOT = 0;
const W_SEQ_OVER = 1;
const W_ACK_OVER = 2;
const W_SEQ_UNDER = 3;
const W_ACK_UNDER = 4;

function windowMessage(what: number, v: number): string {
  switch (what) {
    case W_OVERSHOT:
      return `${v} bytes more than expected`;
    case W_SEQ_OVER:
      return `SEQ is over upper bound ${v} (over the window of the receiver)`;
    case W_ACK_OVER:
      return `ACK is over upper bound ${v} (ACKed data not seen yet)`;
    case W_SEQ_UNDER:
      return `SEQ is under lower bound ${v} (already ACKed data retransmitted)`;
    default:
      return `ignored ACK under lower bound ${v} (possible overly delayed)`;
  }
}

/**
 * An entry's saved TCP data (TcpTracker.save() layout) as a restored entry gets it: the
 * window tracking of both directions forgotten (td_end, td_maxend, td_maxwin, td_maxack zero,
 * MAXACK_SET cleared) and both directions marked BE_LIBERAL; state, scale and the other flags
 * kept. This is how the kernel treats a connection it picks up in mid-stream (tcp_new:
 * windows from the next packets, SACK_PERM | BE_LIBERAL) and how conntrackd injects entries
 * by default (TCPWindowTracking off). Used when restoring a state file: the connection has
 * moved on since the save (a periodic save before a crash, or traffic under --fail-open
 * while the daemon was down), and right after the restart the peers retransmit old data and
 * acknowledge data the entry never saw — with strict windows from the file or from the
 * first packets, those packets are INVALID and the connection stalls.
 */
export function forgetTcpWindows(d: readonly number[]): number[] {
  const out = d.slice();
  for (let k = 0; k < 2; k++) {
    const b = 10 + 6 * k;
    if (out.length < b + 6) break;
    out[b] = out[b + 1] = out[b + 2] = out[b + 3] = 0;
    out[b + 5] = (((Number(out[b + 5]) || 0) & ~IP_CT_TCP_FLAG_MAXACK_SET) | IP_CT_TCP_FLAG_BE_LIBERAL) & 0xff;
  }
  return out;
}
