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
 * Per-entry state (struct ip_ct_tcp) lives in typed arrays indexed by entry id;
 * per-direction data (struct ip_ct_tcp_state seen[2]) at index 2*e + dir.
 * 56 bytes per entry. Nothing is allocated per packet unless a log line is
 * actually written (nf_conntrack_log_invalid = 6 or 255).
 *
 * Sequence arithmetic is modular 32-bit like the kernel's before()/after():
 * values are kept as unsigned numbers (`>>> 0`) and compared through `| 0`.
 */
import type { PacketView } from '../../packet/view';
import { DIR_ORIGINAL, DIR_REPLY, IPS_ASSURED, IPS_FIXED_TIMEOUT, IPS_SEEN_REPLY, PKT_ACCEPT, PKT_IGNORE, PKT_INVALID, PKT_REPEAT } from '../constants';
import type { TunableValues } from '../sysctl';
import type { ProtoTracker, TrackerHost } from './tracker';

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
  const v = host.tun.nf_conntrack_log_invalid;
  return v === 6 || v === 255;
}

/** Number of values save() returns. */
export const TCP_SAVE_LEN = 22;

export class TcpTracker implements ProtoTracker {
  readonly protonum = 6;
  readonly name = 'tcp';

  private cap = 0;
  /** the connection table's capacity (reserve()): on-demand growth stops there */
  private limit = 0;
  /* struct ip_ct_tcp, per entry */
  state: Uint8Array = new Uint8Array(0);
  lastDir: Uint8Array = new Uint8Array(0);
  retrans: Uint8Array = new Uint8Array(0);
  lastIndex: Uint8Array = new Uint8Array(0);
  lastWscale: Uint8Array = new Uint8Array(0);
  lastFlags: Uint8Array = new Uint8Array(0);
  lastSeq: Uint32Array = new Uint32Array(0);
  lastAck: Uint32Array = new Uint32Array(0);
  lastEnd: Uint32Array = new Uint32Array(0);
  lastWin: Uint16Array = new Uint16Array(0);
  /* struct ip_ct_tcp_state seen[2], at 2*e + dir */
  tdEnd: Uint32Array = new Uint32Array(0);
  tdMaxend: Uint32Array = new Uint32Array(0);
  tdMaxwin: Uint32Array = new Uint32Array(0);
  tdMaxack: Uint32Array = new Uint32Array(0);
  tdScale: Uint8Array = new Uint8Array(0);
  tdFlags: Uint8Array = new Uint8Array(0);

  constructor(capacity = 0) {
    if (capacity > 0) this.resize(capacity);
  }

  /**
   * The table can now hold `capacity` entries. The per-entry arrays grow on demand
   * (newConnection / restore of an entry id beyond them), so a table holding few TCP
   * connections among many others does not pay 56 bytes for every entry.
   */
  reserve(capacity: number): void {
    this.limit = capacity;
  }

  private ensure(e: number): void {
    if (e < this.cap) return;
    this.resize(Math.max(e + 1, Math.min(Math.max(this.cap * 2, 1024), Math.max(this.limit, e + 1))));
  }

  resize(capacity: number): void {
    if (capacity <= this.cap) return;
    const n = capacity;
    const g8 = (a: Uint8Array, len: number): Uint8Array => {
      const b = new Uint8Array(len);
      b.set(a);
      return b;
    };
    const g16 = (a: Uint16Array, len: number): Uint16Array => {
      const b = new Uint16Array(len);
      b.set(a);
      return b;
    };
    const g32 = (a: Uint32Array, len: number): Uint32Array => {
      const b = new Uint32Array(len);
      b.set(a);
      return b;
    };
    this.state = g8(this.state, n);
    this.lastDir = g8(this.lastDir, n);
    this.retrans = g8(this.retrans, n);
    this.lastIndex = g8(this.lastIndex, n);
    this.lastWscale = g8(this.lastWscale, n);
    this.lastFlags = g8(this.lastFlags, n);
    this.lastSeq = g32(this.lastSeq, n);
    this.lastAck = g32(this.lastAck, n);
    this.lastEnd = g32(this.lastEnd, n);
    this.lastWin = g16(this.lastWin, n);
    this.tdEnd = g32(this.tdEnd, 2 * n);
    this.tdMaxend = g32(this.tdMaxend, 2 * n);
    this.tdMaxwin = g32(this.tdMaxwin, 2 * n);
    this.tdMaxack = g32(this.tdMaxack, 2 * n);
    this.tdScale = g8(this.tdScale, 2 * n);
    this.tdFlags = g8(this.tdFlags, 2 * n);
    this.cap = n;
  }

  /** memset(&ct->proto.tcp, 0, ...) */
  private clear(e: number): void {
    this.state[e] = 0;
    this.lastDir[e] = 0;
    this.retrans[e] = 0;
    this.lastIndex[e] = 0;
    this.lastWscale[e] = 0;
    this.lastFlags[e] = 0;
    this.lastSeq[e] = 0;
    this.lastAck[e] = 0;
    this.lastEnd[e] = 0;
    this.lastWin[e] = 0;
    for (let i = 2 * e; i < 2 * e + 2; i++) {
      this.tdEnd[i] = 0;
      this.tdMaxend[i] = 0;
      this.tdMaxwin[i] = 0;
      this.tdMaxack[i] = 0;
      this.tdScale[i] = 0;
      this.tdFlags[i] = 0;
    }
  }

  /**
   * tcp_options() into seen[si]: only when the header carries options (the
   * kernel returns early for doff == 5); then td_scale and every flag but
   * BE_LIBERAL are reset before the options are applied.
   */
  private options(pkt: PacketView, si: number): void {
    if (pkt.tcpHeaderLen <= 20) return;
    let f = this.tdFlags[si] & IP_CT_TCP_FLAG_BE_LIBERAL;
    let scale = 0;
    if (pkt.optSackPerm) f |= IP_CT_TCP_FLAG_SACK_PERM;
    if (pkt.optWscale >= 0) {
      scale = pkt.optWscale > 14 ? 14 : pkt.optWscale;
      f |= IP_CT_TCP_FLAG_WINDOW_SCALE;
    }
    this.tdFlags[si] = f;
    this.tdScale[si] = scale;
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
    const s0 = 2 * e;
    if (newState === TCP_CONNTRACK_SYN_SENT) {
      this.clear(e);
      const end = segEnd(pkt);
      this.tdEnd[s0] = end;
      this.tdMaxwin[s0] = pkt.window === 0 ? 1 : pkt.window;
      this.tdMaxend[s0] = end;
      this.options(pkt, s0);
    } else if (host.tun.nf_conntrack_tcp_loose === 0) {
      // Don't try to pick up connections.
      return false;
    } else {
      this.clear(e);
      const end = segEnd(pkt);
      const mw = pkt.window === 0 ? 1 : pkt.window;
      this.tdEnd[s0] = end;
      this.tdMaxwin[s0] = mw;
      this.tdMaxend[s0] = end + mw;
      // We assume SACK and liberal window checking to handle window scaling.
      this.tdFlags[s0] = this.tdFlags[s0 + 1] = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
    }
    this.lastIndex[e] = TCP_NONE_SET;
    return true;
  }

  /** tcp_init_sender */
  private initSender(pkt: PacketView, si: number, ri: number, end: number, win: number, dir: number): void {
    this.tdEnd[si] = end;
    this.tdMaxend[si] = end;
    this.tdMaxwin[si] = win === 0 ? 1 : win;
    this.options(pkt, si);
    // RFC 1323: both sides must send the Window Scale option to enable scaling.
    if (dir === DIR_REPLY && !(this.tdFlags[si] & IP_CT_TCP_FLAG_WINDOW_SCALE && this.tdFlags[ri] & IP_CT_TCP_FLAG_WINDOW_SCALE)) {
      this.tdScale[si] = 0;
      this.tdScale[ri] = 0;
    }
  }

  /** nf_tcp_log_invalid: liberal senders get everything accepted (unlogged). */
  private windowVerdict(host: TrackerHost, pkt: PacketView, si: number, ret: number, what: number, v: number): number {
    if (this.tdFlags[si] & IP_CT_TCP_FLAG_BE_LIBERAL || host.tun.nf_conntrack_tcp_be_liberal) return NFCT_TCP_ACCEPT;
    if (logEnabled(host)) host.logInvalid(pkt, windowMessage(what, v));
    return ret;
  }

  /** tcp_in_window */
  private inWindow(host: TrackerHost, e: number, dir: number, index: number, pkt: PacketView): number {
    const si = 2 * e + dir;
    const ri = 2 * e + (dir ^ 1);
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
    if (this.tdFlags[ri] & IP_CT_TCP_FLAG_SACK_PERM && pkt.hasSack && after(pkt.sackRight, sack)) sack = pkt.sackRight;

    if (this.tdMaxwin[si] === 0) {
      // Initialize sender data.
      if (isSyn) {
        this.initSender(pkt, si, ri, end, win, dir);
        if (!hasAck) return NFCT_TCP_ACCEPT; // simultaneous open
      } else {
        // Mid-connection: its history is lost for us; use the packet's data.
        this.tdEnd[si] = end;
        const swin = win << this.tdScale[si];
        this.tdMaxwin[si] = swin === 0 ? 1 : swin;
        this.tdMaxend[si] = end + this.tdMaxwin[si];
        if (this.tdMaxwin[ri] === 0) {
          // Nothing seen from the other side yet: tweak so III and IV pass.
          this.tdEnd[ri] = this.tdMaxend[ri] = sack;
        } else if (sack === (this.tdEnd[ri] + 1) >>> 0) {
          // Likely a reply to a keepalive. Needed for III.
          this.tdEnd[ri] = this.tdEnd[ri] + 1;
        }
      }
    } else if (isSyn && after(end, this.tdEnd[si]) && (this.state[e] === TCP_CONNTRACK_SYN_SENT || this.state[e] === TCP_CONNTRACK_SYN_RECV)) {
      // RFC 793: a reinitialized TCP uses larger sequence numbers: re-init this direction.
      this.initSender(pkt, si, ri, end, win, dir);
      if (dir === DIR_REPLY && !hasAck) return NFCT_TCP_ACCEPT;
    }

    if (!hasAck) {
      // No ACK: pretend it was set and OK.
      ack = sack = this.tdEnd[ri];
    } else if (tflags & F_RST && ack === 0) {
      // Broken stacks that set ACK in RST packets with a zero ack value.
      ack = sack = this.tdEnd[ri];
    }

    if (tflags & F_RST && seq === 0 && this.state[e] === TCP_CONNTRACK_SYN_SENT) {
      // RST sent answering SYN.
      seq = end = this.tdEnd[si];
    }

    const rEnd = this.tdEnd[ri];
    const rMaxwin = this.tdMaxwin[ri];
    const sMaxwin = this.tdMaxwin[si];
    const maxAckWin = sMaxwin > MAXACKWINCONST ? sMaxwin : MAXACKWINCONST;

    // I. seq <= sender.td_maxend
    if (!before(seq, this.tdMaxend[si] + 1)) {
      const overshot = (end - this.tdMaxend[si] + 1) >>> 0;
      const ackOk = after(sack, rEnd - maxAckWin - 1);
      const inRecvWin = rMaxwin !== 0 && after(end, this.tdEnd[si] - rMaxwin - 1);
      if (inRecvWin && ackOk && overshot <= rMaxwin && before(sack, rEnd + 1)) {
        // Work around TCPs sending more than the receive window allows: advance
        // td_end so the peer's ACK of this data will not be "over upper bound".
        this.tdEnd[si] = end;
        this.tdFlags[si] |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
        return this.windowVerdict(host, pkt, si, NFCT_TCP_IGNORE, W_OVERSHOT, overshot);
      }
      return this.windowVerdict(host, pkt, si, NFCT_TCP_INVALID, W_SEQ_OVER, (this.tdMaxend[si] + 1) >>> 0);
    }
    // III. sack <= receiver.td_end
    if (!before(sack, rEnd + 1)) return this.windowVerdict(host, pkt, si, NFCT_TCP_INVALID, W_ACK_OVER, (rEnd + 1) >>> 0);
    // II. end >= sender.td_end - receiver.td_maxwin (if the receiver's window is known)
    if (rMaxwin !== 0 && !after(end, this.tdEnd[si] - rMaxwin - 1))
      return this.windowVerdict(host, pkt, si, NFCT_TCP_IGNORE, W_SEQ_UNDER, (this.tdEnd[si] - rMaxwin - 1) >>> 0);
    // IV. sack >= receiver.td_end - MAXACKWINDOW(sender)
    if (!after(sack, rEnd - maxAckWin - 1)) return this.windowVerdict(host, pkt, si, NFCT_TCP_IGNORE, W_ACK_UNDER, (rEnd - maxAckWin - 1) >>> 0);

    // Window scaling (RFC 1323), not on SYNs.
    if (!isSyn) win = win << this.tdScale[si];

    // Update sender data.
    const swin = (win + sack - ack) >>> 0;
    if (this.tdMaxwin[si] < swin) this.tdMaxwin[si] = swin;
    if (after(end, this.tdEnd[si])) {
      this.tdEnd[si] = end;
      this.tdFlags[si] |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
    }
    if (hasAck) {
      if (!(this.tdFlags[si] & IP_CT_TCP_FLAG_MAXACK_SET)) {
        this.tdMaxack[si] = ack;
        this.tdFlags[si] |= IP_CT_TCP_FLAG_MAXACK_SET;
      } else if (after(ack, this.tdMaxack[si])) {
        this.tdMaxack[si] = ack;
      }
    }

    // Update receiver data.
    if (this.tdMaxwin[ri] !== 0 && after(end, this.tdMaxend[si])) this.tdMaxwin[ri] = this.tdMaxwin[ri] + ((end - this.tdMaxend[si]) >>> 0);
    if (after(sack + win, this.tdMaxend[ri] - 1)) {
      this.tdMaxend[ri] = sack + win + (win === 0 ? 1 : 0);
    }
    if (ack === this.tdEnd[ri]) this.tdFlags[ri] &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;

    // Check retransmissions.
    if (index === TCP_ACK_SET) {
      if (this.lastDir[e] === dir && this.lastSeq[e] === seq && this.lastAck[e] === ack && this.lastEnd[e] === end && this.lastWin[e] === winRaw) {
        this.retrans[e]++;
      } else {
        this.lastDir[e] = dir;
        this.lastSeq[e] = seq;
        this.lastAck[e] = ack;
        this.lastEnd[e] = end;
        this.lastWin[e] = winRaw;
        this.retrans[e] = 0;
      }
    }
    return NFCT_TCP_ACCEPT;
  }

  /** nf_tcp_handle_invalid: an out-of-window FIN/RST answering a FIN/RST shortens an ASSURED entry's life. */
  private handleInvalid(host: TrackerHost, e: number, dir: number, index: number, pkt: PacketView, now: number): void {
    const st = host.status(e);
    if (!(st & IPS_ASSURED) || st & IPS_FIXED_TIMEOUT) return;
    if (index !== TCP_RST_SET && index !== TCP_FIN_SET) return;
    if (this.lastDir[e] !== dir && (this.lastIndex[e] === TCP_FIN_SET || this.lastIndex[e] === TCP_RST_SET)) {
      const expires = host.timeoutLeft(e, now);
      if (expires < 120) return;
      const timeout = host.tun.nf_conntrack_tcp_timeout_unacknowledged;
      if (expires > timeout) {
        if (logEnabled(host)) host.logInvalid(pkt, `packet (index ${index}, dir ${dir}) response for index ${this.lastIndex[e]} lower timeout to ${timeout}`);
        host.setTimeout(e, timeout, now);
      }
    } else {
      this.lastIndex[e] = index;
      this.lastDir[e] = dir;
    }
  }

  /** nf_conntrack_tcp_established */
  private established(host: TrackerHost, e: number): boolean {
    return this.state[e] === TCP_CONNTRACK_ESTABLISHED && (host.status(e) & IPS_ASSURED) !== 0;
  }

  /** nf_conntrack_tcp_packet (after tcp_error / tcp_new, which run in validate / newConnection). */
  packet(host: TrackerHost, e: number, dir: number, _ctinfo: number, pkt: PacketView, now: number): number {
    const tun = host.tun;
    const tflags = pkt.tcpFlags;
    const index = tcpIndex(tflags);
    let oldState = this.state[e];
    let newState = TABLE[dir * 60 + index * 10 + oldState];
    let skipWindow = false;

    let ignore = newState === TCP_CONNTRACK_IGNORE;
    if (newState === TCP_CONNTRACK_SYN_SENT && oldState >= TCP_CONNTRACK_TIME_WAIT) {
      // RFC 1122 reopen from TIME_WAIT / CLOSE, or an aborted connection restarted.
      if ((this.tdFlags[2 * e] | this.tdFlags[2 * e + 1]) & IP_CT_TCP_FLAG_CLOSE_INIT || (this.lastDir[e] === dir && this.lastIndex[e] === TCP_RST_SET)) {
        // Delete this connection and look up again.
        host.kill(e);
        return PKT_REPEAT;
      }
      ignore = true; // fallthrough
    }

    if (ignore) {
      if (index === TCP_SYNACK_SET && this.lastIndex[e] === TCP_SYN_SET && this.lastDir[e] !== dir && pkt.ack === this.lastEnd[e]) {
        // b) This SYN/ACK acknowledges a SYN we ignored earlier: client and server
        // are in sync, we are not. Resync from the annotated values.
        oldState = TCP_CONNTRACK_SYN_SENT;
        newState = TCP_CONNTRACK_SYN_RECV;
        const li = 2 * e + this.lastDir[e];
        this.tdEnd[li] = this.lastEnd[e];
        this.tdMaxend[li] = this.lastEnd[e];
        this.tdMaxwin[li] = this.lastWin[e] === 0 ? 1 : this.lastWin[e];
        this.tdScale[li] = this.lastWscale[e];
        this.lastFlags[e] &= ~IP_CT_EXP_CHALLENGE_ACK;
        this.tdFlags[li] = this.lastFlags[e];
        // nf_ct_tcp_state_reset(&seen[dir])
        const di = 2 * e + dir;
        this.tdEnd[di] = 0;
        this.tdMaxend[di] = 0;
        this.tdMaxwin[di] = 0;
        this.tdMaxack[di] = 0;
        this.tdScale[di] = 0;
        this.tdFlags[di] &= IP_CT_TCP_FLAG_BE_LIBERAL;
      } else {
        this.lastIndex[e] = index;
        this.lastDir[e] = dir;
        this.lastSeq[e] = pkt.seq;
        this.lastEnd[e] = segEnd(pkt);
        this.lastWin[e] = pkt.window;
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
          this.lastFlags[e] = lf;
          this.lastWscale[e] = lws;
        }
        // possible challenge ack reply to syn
        if (oldState === TCP_CONNTRACK_SYN_SENT && index === TCP_ACK_SET && dir === DIR_REPLY) this.lastAck[e] = pkt.ack;
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
        this.lastDir[e] !== dir &&
        this.lastIndex[e] === TCP_SYN_SET &&
        this.lastFlags[e] & IP_CT_EXP_CHALLENGE_ACK
      ) {
        this.lastFlags[e] &= ~IP_CT_EXP_CHALLENGE_ACK;
        if (logEnabled(host)) host.logInvalid(pkt, 'challenge-ack ignored');
        return PKT_IGNORE; // don't change state
      }
    } else if (newState === TCP_CONNTRACK_SYN_SENT2) {
      // The table is not smart enough to handle simultaneous open.
      this.lastFlags[e] |= IP_CT_TCP_SIMULTANEOUS_OPEN;
    } else if (newState === TCP_CONNTRACK_SYN_RECV) {
      if (dir === DIR_REPLY && index === TCP_ACK_SET && this.lastFlags[e] & IP_CT_TCP_SIMULTANEOUS_OPEN) newState = TCP_CONNTRACK_ESTABLISHED;
    } else if (newState === TCP_CONNTRACK_CLOSE && index === TCP_RST_SET) {
      rst: {
        // Already closing: the tuple may have been reused, fields are outdated: skip checks.
        if (this.canEarlyDrop(e)) {
          skipWindow = true;
          break rst;
        }
        const ri = 2 * e + (dir ^ 1);
        // td_maxack might be outdated if we let a SYN through earlier.
        if (this.tdFlags[ri] & IP_CT_TCP_FLAG_MAXACK_SET && this.lastIndex[e] !== TCP_SYN_SET) {
          const seq = pkt.seq;
          // Not established and SEQ=0: most likely an answer to a SYN we let through.
          if (seq === 0 && !this.established(host, e)) break rst;
          if (before(seq, this.tdMaxack[ri]) && !tun.nf_conntrack_tcp_ignore_invalid_rst) {
            if (logEnabled(host)) host.logInvalid(pkt, 'invalid rst');
            return PKT_INVALID;
          }
          if (!this.established(host, e) || seq === this.tdMaxack[ri]) break rst;
          // RST part of a train: same side's in-window data ended exactly here.
          if (this.lastIndex[e] === TCP_ACK_SET && this.lastDir[e] === dir && seq === this.lastEnd[e]) break rst;
          // Sequence doesn't match exactly: keep the state to allow a challenge ACK.
          newState = oldState;
        }
        const st = host.status(e);
        if (
          ((st & IPS_SEEN_REPLY && this.lastIndex[e] === TCP_SYN_SET) || (!(st & IPS_ASSURED) && this.lastIndex[e] === TCP_ACK_SET)) &&
          pkt.ack === this.lastEnd[e]
        ) {
          // RST answering an ignored SYN (a) or a half-open ACK (c): skip the
          // window check, the packet may ACK segments we ignored.
          skipWindow = true;
          break rst;
        }
        // Reset in response to a challenge-ack we let through earlier.
        if (oldState === TCP_CONNTRACK_SYN_SENT && this.lastIndex[e] === TCP_ACK_SET && this.lastDir[e] === DIR_REPLY && pkt.seq === this.lastAck[e])
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
    this.lastIndex[e] = index;
    this.lastDir[e] = dir;
    this.state[e] = newState;
    if (oldState !== newState && newState === TCP_CONNTRACK_FIN_WAIT) this.tdFlags[2 * e + dir] |= IP_CT_TCP_FLAG_CLOSE_INIT;

    const tNew = tcpStateTimeout(tun, newState);
    const tRetrans = tun.nf_conntrack_tcp_timeout_max_retrans;
    const tUnack = tun.nf_conntrack_tcp_timeout_unacknowledged;
    let timeout: number;
    if (this.retrans[e] >= tun.nf_conntrack_tcp_max_retrans && tNew > tRetrans) timeout = tRetrans;
    else if (index === TCP_RST_SET) timeout = tun.nf_conntrack_tcp_timeout_close;
    else if ((this.tdFlags[2 * e] | this.tdFlags[2 * e + 1]) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED && tNew > tUnack) timeout = tUnack;
    else if (this.lastWin[e] === 0 && tNew > tRetrans) timeout = tRetrans;
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
    const s = this.state[e];
    return s >= TCP_CONNTRACK_FIN_WAIT && s <= TCP_CONNTRACK_CLOSE;
  }

  stateName(e: number): string {
    return TCP_STATE_NAMES[this.state[e]] ?? 'NONE';
  }

  /**
   * [state, last_dir, retrans, last_index, last_seq, last_ack, last_end,
   *  last_win, last_wscale, last_flags, then for dir 0 and 1:
   *  td_end, td_maxend, td_maxwin, td_maxack, td_scale, flags]
   */
  save(e: number): number[] {
    const out = [
      this.state[e],
      this.lastDir[e],
      this.retrans[e],
      this.lastIndex[e],
      this.lastSeq[e],
      this.lastAck[e],
      this.lastEnd[e],
      this.lastWin[e],
      this.lastWscale[e],
      this.lastFlags[e],
    ];
    for (let i = 2 * e; i < 2 * e + 2; i++) out.push(this.tdEnd[i], this.tdMaxend[i], this.tdMaxwin[i], this.tdMaxack[i], this.tdScale[i], this.tdFlags[i]);
    return out;
  }

  restore(e: number, d: readonly number[]): void {
    this.ensure(e);
    const v = (i: number): number => (i < d.length && Number.isFinite(d[i]) ? d[i] : 0);
    const st = v(0);
    this.state[e] = st >= 0 && st < TCP_CONNTRACK_MAX ? st : TCP_CONNTRACK_NONE;
    this.lastDir[e] = v(1) & 1;
    this.retrans[e] = v(2);
    this.lastIndex[e] = v(3) <= TCP_NONE_SET ? v(3) : TCP_NONE_SET;
    this.lastSeq[e] = v(4);
    this.lastAck[e] = v(5);
    this.lastEnd[e] = v(6);
    this.lastWin[e] = v(7);
    this.lastWscale[e] = v(8);
    this.lastFlags[e] = v(9);
    for (let k = 0; k < 2; k++) {
      const i = 2 * e + k;
      const b = 10 + 6 * k;
      this.tdEnd[i] = v(b);
      this.tdMaxend[i] = v(b + 1);
      this.tdMaxwin[i] = v(b + 2);
      this.tdMaxack[i] = v(b + 3);
      this.tdScale[i] = v(b + 4) > 14 ? 14 : v(b + 4);
      this.tdFlags[i] = v(b + 5);
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
