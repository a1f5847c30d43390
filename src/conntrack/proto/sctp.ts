/**
 * SCTP connection tracking: net/netfilter/nf_conntrack_proto_sctp.c (6.x mainline, the table
 * without HEARTBEAT_ACKED, which 6.x no longer uses) translated function by function:
 *
 *   sctp_error (short packet)        → the parser (TRUNCATED_L4); the CRC32c is the core's
 *                                      checksum step (verifyL4Checksum), as sctp_error checks it
 *                                      only where the core checks every checksum
 *   do_basic_checks                  → validate(), which also fills the chunk map of the packet
 *   OOTB discard + sctp_new          → newConnection()
 *   nf_conntrack_sctp_packet         → packet() (vtag checks, the chunk walk, the state table)
 *   sctp_can_early_drop              → canEarlyDrop()
 *
 * validate() runs right before newConnection()/packet() for the same packet (core.in), so the
 * chunk map it leaves in `map` is that packet's. Per-entry state (struct ip_ct_sctp: state,
 * vtag[2], init[2], last_dir, flags) lives in typed arrays indexed by entry id. Nothing is
 * allocated per packet.
 */
import { get32 } from '../../packet/bytes';
import {
  SCTP_CHUNK_FLAG_T,
  SCTP_CHUNK_HEADER_LEN,
  SCTP_CID_ABORT,
  SCTP_CID_COOKIE_ACK,
  SCTP_CID_COOKIE_ECHO,
  SCTP_CID_DATA,
  SCTP_CID_ERROR,
  SCTP_CID_HEARTBEAT,
  SCTP_CID_HEARTBEAT_ACK,
  SCTP_CID_INIT,
  SCTP_CID_INIT_ACK,
  SCTP_CID_SHUTDOWN,
  SCTP_CID_SHUTDOWN_ACK,
  SCTP_CID_SHUTDOWN_COMPLETE,
  SCTP_HEADER_LEN,
  sctpChunkLength,
  sctpChunkReadable,
  sctpNextChunk,
  sctpVtag,
} from '../../packet/sctp';
import { IPPROTO_SCTP, type PacketView } from '../../packet/view';
import { IPS_ASSURED, IPS_CONFIRMED, PKT_ACCEPT, PKT_INVALID } from '../constants';
import type { TunableValues } from '../sysctl';
import type { ProtoTracker, TrackerHost } from './tracker';

/* enum sctp_conntrack */
export const SCTP_CONNTRACK_NONE = 0;
export const SCTP_CONNTRACK_CLOSED = 1;
export const SCTP_CONNTRACK_COOKIE_WAIT = 2;
export const SCTP_CONNTRACK_COOKIE_ECHOED = 3;
export const SCTP_CONNTRACK_ESTABLISHED = 4;
export const SCTP_CONNTRACK_SHUTDOWN_SENT = 5;
export const SCTP_CONNTRACK_SHUTDOWN_RECD = 6;
export const SCTP_CONNTRACK_SHUTDOWN_ACK_SENT = 7;
export const SCTP_CONNTRACK_HEARTBEAT_SENT = 8;
/** SCTP_CONNTRACK_HEARTBEAT_ACKED (9) is "no longer used"; MAX stays 10 (sIV). */
export const SCTP_CONNTRACK_MAX = 10;

/** sctp_conntrack_names[] (also conntrack-tools' sctp_states[] for these numbers). */
export const SCTP_STATE_NAMES: readonly string[] = [
  'NONE',
  'CLOSED',
  'COOKIE_WAIT',
  'COOKIE_ECHOED',
  'ESTABLISHED',
  'SHUTDOWN_SENT',
  'SHUTDOWN_RECD',
  'SHUTDOWN_ACK_SENT',
  'HEARTBEAT_SENT',
];

/** SCTP_FLAG_HEARTBEAT_VTAG_FAILED */
const HEARTBEAT_VTAG_FAILED = 1;

const sNO = SCTP_CONNTRACK_NONE;
const sCL = SCTP_CONNTRACK_CLOSED;
const sCW = SCTP_CONNTRACK_COOKIE_WAIT;
const sCE = SCTP_CONNTRACK_COOKIE_ECHOED;
const sES = SCTP_CONNTRACK_ESTABLISHED;
const sSS = SCTP_CONNTRACK_SHUTDOWN_SENT;
const sSR = SCTP_CONNTRACK_SHUTDOWN_RECD;
const sSA = SCTP_CONNTRACK_SHUTDOWN_ACK_SENT;
const sHS = SCTP_CONNTRACK_HEARTBEAT_SENT;
const sIV = SCTP_CONNTRACK_MAX;

/** sctp_conntracks[dir][row][old_state], rows in sctp_new_state's order, columns sNO..sHS. */
// prettier-ignore
export const SCTP_CONNTRACKS: readonly (readonly (readonly number[])[])[] = [
  [ /* ORIGINAL */
    /*                  sNO  sCL  sCW  sCE  sES  sSS  sSR  sSA  sHS */
    /* init         */ [sCL, sCL, sCW, sCE, sES, sCL, sCL, sSA, sCW],
    /* init_ack     */ [sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL],
    /* abort        */ [sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* shutdown     */ [sCL, sCL, sCW, sCE, sSS, sSS, sSR, sSA, sCL],
    /* shutdown_ack */ [sSA, sCL, sCW, sCE, sES, sSA, sSA, sSA, sSA],
    /* error        */ [sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL],
    /* cookie_echo  */ [sCL, sCL, sCE, sCE, sES, sSS, sSR, sSA, sCL],
    /* cookie_ack   */ [sCL, sCL, sCW, sES, sES, sSS, sSR, sSA, sCL],
    /* shutdown_comp*/ [sCL, sCL, sCW, sCE, sES, sSS, sSR, sCL, sCL],
    /* heartbeat    */ [sHS, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS],
    /* heartbeat_ack*/ [sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS],
  ],
  [ /* REPLY */
    /*                  sNO  sCL  sCW  sCE  sES  sSS  sSR  sSA  sHS */
    /* init         */ [sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sIV],
    /* init_ack     */ [sIV, sCW, sCW, sCE, sES, sSS, sSR, sSA, sIV],
    /* abort        */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sIV],
    /* shutdown     */ [sIV, sCL, sCW, sCE, sSR, sSS, sSR, sSA, sIV],
    /* shutdown_ack */ [sIV, sCL, sCW, sCE, sES, sSA, sSA, sSA, sIV],
    /* error        */ [sIV, sCL, sCW, sCL, sES, sSS, sSR, sSA, sIV],
    /* cookie_echo  */ [sIV, sCL, sCE, sCE, sES, sSS, sSR, sSA, sIV],
    /* cookie_ack   */ [sIV, sCL, sCW, sES, sES, sSS, sSR, sSA, sIV],
    /* shutdown_comp*/ [sIV, sCL, sCW, sCE, sES, sSS, sSR, sCL, sIV],
    /* heartbeat    */ [sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS],
    /* heartbeat_ack*/ [sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sES],
  ],
];

const ROWS = 11;
const COLS = 9;
/** The table's row of each chunk type (sctp_new_state's switch); 255 = DATA, SACK and the rest, which keep the state. */
const ROW_OF = new Uint8Array(256).fill(255);
const ROW_TYPES = [
  SCTP_CID_INIT,
  SCTP_CID_INIT_ACK,
  SCTP_CID_ABORT,
  SCTP_CID_SHUTDOWN,
  SCTP_CID_SHUTDOWN_ACK,
  SCTP_CID_ERROR,
  SCTP_CID_COOKIE_ECHO,
  SCTP_CID_COOKIE_ACK,
  SCTP_CID_SHUTDOWN_COMPLETE,
  SCTP_CID_HEARTBEAT,
  SCTP_CID_HEARTBEAT_ACK,
];
for (let row = 0; row < ROWS; row++) ROW_OF[ROW_TYPES[row]] = row;
/** The table flattened: [dir * ROWS * COLS + row * COLS + old_state]. */
const TABLE = new Uint8Array(2 * ROWS * COLS);
for (let d = 0; d < 2; d++) for (let r = 0; r < ROWS; r++) for (let s = 0; s < COLS; s++) TABLE[d * ROWS * COLS + r * COLS + s] = SCTP_CONNTRACKS[d][r][s];

/** sctp_new_state: the state after a chunk of `type` in direction dir from `cur`. */
export function sctpNewState(dir: number, cur: number, type: number): number {
  const row = ROW_OF[type & 0xff];
  if (row === 255 || cur >= COLS) return cur;
  return TABLE[dir * ROWS * COLS + row * COLS + cur];
}

/** timeouts[state] from the live sysctls (timeouts[NONE] is the CLOSED one, as nf_conntrack_sctp_init_net sets it). */
export function sctpStateTimeout(tun: TunableValues, state: number): number {
  switch (state) {
    case SCTP_CONNTRACK_COOKIE_WAIT:
      return tun.nf_conntrack_sctp_timeout_cookie_wait;
    case SCTP_CONNTRACK_COOKIE_ECHOED:
      return tun.nf_conntrack_sctp_timeout_cookie_echoed;
    case SCTP_CONNTRACK_ESTABLISHED:
      return tun.nf_conntrack_sctp_timeout_established;
    case SCTP_CONNTRACK_SHUTDOWN_SENT:
      return tun.nf_conntrack_sctp_timeout_shutdown_sent;
    case SCTP_CONNTRACK_SHUTDOWN_RECD:
      return tun.nf_conntrack_sctp_timeout_shutdown_recd;
    case SCTP_CONNTRACK_SHUTDOWN_ACK_SENT:
      return tun.nf_conntrack_sctp_timeout_shutdown_ack_sent;
    case SCTP_CONNTRACK_HEARTBEAT_SENT:
      return tun.nf_conntrack_sctp_timeout_heartbeat_sent;
    default:
      return tun.nf_conntrack_sctp_timeout_closed;
  }
}

/** sizeof(struct sctp_inithdr): the init tag and the rest an INIT / INIT_ACK chunk must hold. */
const INIT_HEADER_LEN = 16;

/** Number of values save() returns: [state, vtag orig, vtag reply, init orig, init reply, last_dir, flags]. */
export const SCTP_SAVE_LEN = 7;
const SAVE_MAX = [SCTP_CONNTRACK_HEARTBEAT_SENT, 0xffffffff, 0xffffffff, 1, 1, 1, HEARTBEAT_VTAG_FAILED];

export class SctpTracker implements ProtoTracker {
  readonly protonum = IPPROTO_SCTP;
  readonly name = 'sctp';
  /** sctp_error's words */
  readonly badChecksumReason = 'nf_ct_sctp: bad CRC';

  private cap = 0;
  /** rows below this were initialised at some point (highest entry id + 1) */
  private used = 0;
  private state = new Uint8Array(0);
  /** vtag[2 * e + dir] */
  private vtag = new Uint32Array(0);
  /** init[2 * e + dir] */
  private init = new Uint8Array(0);
  private lastDir = new Uint8Array(0);
  private flags = new Uint8Array(0);

  /** the chunk types of the packet validate() last passed (the kernel's `map`), 8 x 32 bits */
  private readonly map = new Uint32Array(8);

  constructor(capacity = 0) {
    if (capacity > 0) this.resize(capacity);
  }

  private has(type: number): boolean {
    return (this.map[type >>> 5] & (1 << (type & 31))) !== 0;
  }

  /** Entry e is about to be initialised (newConnection / restore). */
  private ensure(e: number): void {
    if (e < this.used) return;
    if (e >= this.cap) this.resize(Math.max(e + 1, this.cap * 2, 1024));
    this.used = e + 1;
  }

  /** Fresh typed arrays are zero pages until touched; only the rows in use are copied. */
  resize(capacity: number): void {
    if (capacity <= this.cap) return;
    const n = this.used;
    const state = new Uint8Array(capacity);
    const vtag = new Uint32Array(2 * capacity);
    const init = new Uint8Array(2 * capacity);
    const lastDir = new Uint8Array(capacity);
    const flags = new Uint8Array(capacity);
    if (n > 0) {
      state.set(this.state.subarray(0, n));
      vtag.set(this.vtag.subarray(0, 2 * n));
      init.set(this.init.subarray(0, 2 * n));
      lastDir.set(this.lastDir.subarray(0, n));
      flags.set(this.flags.subarray(0, n));
    }
    this.state = state;
    this.vtag = vtag;
    this.init = init;
    this.lastDir = lastDir;
    this.flags = flags;
    this.cap = capacity;
  }

  /**
   * do_basic_checks: COOKIE_ECHO / COOKIE_ACK only as the first chunk, INIT / INIT_ACK /
   * SHUTDOWN_COMPLETE only as the only one, no chunk of length 0, at least one chunk. Fills
   * the chunk map. The kernel logs nothing for these.
   */
  validate(_host: TrackerHost, pkt: PacketView): boolean {
    const map = this.map;
    for (let i = 0; i < 8; i++) map[i] = 0;
    if (pkt.l4len < SCTP_HEADER_LEN) return false;
    const buf = pkt.buf;
    let flag = false;
    let count = 0;
    for (let off = pkt.l4off + SCTP_HEADER_LEN; sctpChunkReadable(pkt, off); off = sctpNextChunk(buf, off), count++) {
      const type = buf[off];
      if (type === SCTP_CID_INIT || type === SCTP_CID_INIT_ACK || type === SCTP_CID_SHUTDOWN_COMPLETE) flag = true;
      if (((type === SCTP_CID_COOKIE_ACK || type === SCTP_CID_COOKIE_ECHO || flag) && count !== 0) || sctpChunkLength(buf, off) === 0) return false;
      map[type >>> 5] |= 1 << (type & 31);
    }
    return count !== 0;
  }

  /** The OOTB discard of an unconfirmed entry (Sec 8.4), then sctp_new. */
  newConnection(_host: TrackerHost, e: number, pkt: PacketView, _now: number): boolean {
    if (this.has(SCTP_CID_ABORT) || this.has(SCTP_CID_SHUTDOWN_COMPLETE) || this.has(SCTP_CID_COOKIE_ACK)) return false;
    this.ensure(e);
    // memset(&ct->proto.sctp, 0, ...)
    this.state[e] = SCTP_CONNTRACK_NONE;
    this.vtag[2 * e] = 0;
    this.vtag[2 * e + 1] = 0;
    this.init[2 * e] = 0;
    this.init[2 * e + 1] = 0;
    this.lastDir[e] = 0;
    this.flags[e] = 0;
    const buf = pkt.buf;
    const vtag = sctpVtag(pkt);
    for (let off = pkt.l4off + SCTP_HEADER_LEN; sctpChunkReadable(pkt, off); off = sctpNextChunk(buf, off)) {
      const type = buf[off];
      const s = sctpNewState(0, SCTP_CONNTRACK_NONE, type);
      if (s === SCTP_CONNTRACK_NONE || s === SCTP_CONNTRACK_MAX) return false;
      if (type === SCTP_CID_INIT) {
        // Sec 8.5.1 (A)
        if (vtag !== 0) return false;
        if (!this.initHeaderReadable(pkt, off)) return false;
        this.vtag[2 * e + 1] = get32(buf, off + SCTP_CHUNK_HEADER_LEN);
      } else if (type === SCTP_CID_HEARTBEAT) {
        this.vtag[2 * e] = vtag;
      } else {
        // a SHUTDOWN_ACK out of the blue expects a SHUTDOWN_COMPLETE back, otherwise an ABORT (Sec 8.4 (5), (8))
        this.vtag[2 * e + 1] = vtag;
      }
      this.state[e] = SCTP_CONNTRACK_NONE;
    }
    return true;
  }

  /** skb_header_pointer(offset + sizeof(_sch), sizeof(struct sctp_inithdr)) succeeds. */
  private initHeaderReadable(pkt: PacketView, off: number): boolean {
    return off + SCTP_CHUNK_HEADER_LEN + INIT_HEADER_LEN <= pkt.l4off + pkt.l4len;
  }

  /** nf_conntrack_sctp_packet after sctp_error, do_basic_checks and sctp_new. */
  packet(host: TrackerHost, e: number, dir: number, _ctinfo: number, pkt: PacketView, now: number): number {
    const buf = pkt.buf;
    const vt = this.vtag;
    const init = this.init;
    const own = 2 * e + dir;
    const peer = 2 * e + (dir ^ 1);
    const shVtag = sctpVtag(pkt);
    const confirmed = (host.status(e) & IPS_CONFIRMED) !== 0;

    // Check the verification tag (Sec 8.5)
    if (
      !this.has(SCTP_CID_INIT) &&
      !this.has(SCTP_CID_SHUTDOWN_COMPLETE) &&
      !this.has(SCTP_CID_COOKIE_ECHO) &&
      !this.has(SCTP_CID_ABORT) &&
      !this.has(SCTP_CID_SHUTDOWN_ACK) &&
      !this.has(SCTP_CID_HEARTBEAT) &&
      !this.has(SCTP_CID_HEARTBEAT_ACK) &&
      shVtag !== vt[own]
    )
      return PKT_INVALID;

    let oldState = SCTP_CONNTRACK_NONE;
    let newState = SCTP_CONNTRACK_NONE;
    let ignore = false;
    for (let off = pkt.l4off + SCTP_HEADER_LEN; sctpChunkReadable(pkt, off); off = sctpNextChunk(buf, off)) {
      const type = buf[off];
      const chunkFlags = buf[off + 1];
      // Special cases of Verification tag check (Sec 8.5.1)
      if (type === SCTP_CID_INIT) {
        // (A) vtag MUST be zero
        if (shVtag !== 0) return PKT_INVALID;
      } else if (type === SCTP_CID_ABORT || type === SCTP_CID_SHUTDOWN_COMPLETE) {
        // (B), (C): own vtag without the T flag, the peer's with it
        if (shVtag !== vt[chunkFlags & SCTP_CHUNK_FLAG_T ? peer : own]) return PKT_INVALID;
      } else if (type === SCTP_CID_COOKIE_ECHO) {
        // (D) the vtag of the INIT_ACK
        if (shVtag !== vt[own]) return PKT_INVALID;
      } else if (type === SCTP_CID_COOKIE_ACK) {
        init[own] = 0;
        init[peer] = 0;
      } else if (type === SCTP_CID_HEARTBEAT) {
        if (vt[own] === 0) vt[own] = shVtag;
        else if (shVtag !== vt[own]) {
          if (this.has(SCTP_CID_DATA) || ignore) return PKT_INVALID;
          this.flags[e] |= HEARTBEAT_VTAG_FAILED;
          this.lastDir[e] = dir;
          ignore = true;
          continue;
        } else if (this.flags[e] & HEARTBEAT_VTAG_FAILED) this.flags[e] &= ~HEARTBEAT_VTAG_FAILED;
      } else if (type === SCTP_CID_HEARTBEAT_ACK) {
        if (vt[own] === 0) vt[own] = shVtag;
        else if (shVtag !== vt[own]) {
          if (this.has(SCTP_CID_DATA) || ignore) return PKT_INVALID;
          if ((this.flags[e] & HEARTBEAT_VTAG_FAILED) === 0 || this.lastDir[e] === dir) return PKT_INVALID;
          // the association restarted with new tags: the ACK's tag is the new one, the other comes later
          this.flags[e] &= ~HEARTBEAT_VTAG_FAILED;
          vt[own] = shVtag;
          vt[peer] = 0;
        } else if (this.flags[e] & HEARTBEAT_VTAG_FAILED) this.flags[e] &= ~HEARTBEAT_VTAG_FAILED;
      }

      oldState = this.state[e];
      newState = sctpNewState(dir, oldState, type);
      if (newState === SCTP_CONNTRACK_MAX) return PKT_INVALID;

      // If it is an INIT or an INIT ACK note down the vtag
      if (type === SCTP_CID_INIT) {
        if (!this.initHeaderReadable(pkt, off)) return PKT_INVALID;
        if (init[own] && init[peer]) init[peer] = 0;
        init[own] = 1;
        vt[peer] = get32(buf, off + SCTP_CHUNK_HEADER_LEN);
        // don't renew the timeout on an INIT retransmit: port reuse by a client or a NAT
        // middlebox could keep the entry alive indefinitely
        if (newState === SCTP_CONNTRACK_CLOSED && oldState === SCTP_CONNTRACK_CLOSED && confirmed) ignore = true;
      } else if (type === SCTP_CID_INIT_ACK) {
        if (!this.initHeaderReadable(pkt, off)) return PKT_INVALID;
        const initTag = get32(buf, off + SCTP_CHUNK_HEADER_LEN);
        const v = vt[peer];
        if (!init[peer] && v !== 0 && v !== initTag) return PKT_INVALID;
        // collision
        if (init[own] && init[peer] && v !== initTag) return PKT_INVALID;
        vt[peer] = initTag;
      }

      this.state[e] = newState;
      if (oldState !== newState && newState === SCTP_CONNTRACK_ESTABLISHED && (host.status(e) & IPS_ASSURED) === 0) host.setStatusBits(e, IPS_ASSURED);
    }

    // allow but do not refresh the timeout
    if (ignore) return PKT_ACCEPT;
    host.setTimeout(e, sctpStateTimeout(host.tun, newState), now);
    return PKT_ACCEPT;
  }

  /** sctp_can_early_drop */
  canEarlyDrop(e: number): boolean {
    const s = this.state[e];
    return s === SCTP_CONNTRACK_SHUTDOWN_SENT || s === SCTP_CONNTRACK_SHUTDOWN_RECD || s === SCTP_CONNTRACK_SHUTDOWN_ACK_SENT;
  }

  stateName(e: number): string {
    return SCTP_STATE_NAMES[this.state[e]] ?? 'NONE';
  }

  save(e: number): number[] {
    return [this.state[e], this.vtag[2 * e], this.vtag[2 * e + 1], this.init[2 * e], this.init[2 * e + 1], this.lastDir[e], this.flags[e]];
  }

  /**
   * save()'s fields within their widths, a state an entry can be in after a packet (not NONE;
   * not HEARTBEAT_SENT once ASSURED: that state is reached only from NONE, ASSURED only in
   * ESTABLISHED), and the timeout of that state.
   */
  restoreLimit(tun: TunableValues, _tuple: Uint32Array, status: number, d: readonly unknown[]): number {
    if (d.length !== SCTP_SAVE_LEN) return -1;
    for (let i = 0; i < SCTP_SAVE_LEN; i++) {
      const v = d[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > SAVE_MAX[i]) return -1;
    }
    const state = d[0] as number;
    if (state === SCTP_CONNTRACK_NONE) return -1;
    if (state === SCTP_CONNTRACK_HEARTBEAT_SENT && status & IPS_ASSURED) return -1;
    return sctpStateTimeout(tun, state);
  }

  restore(e: number, d: readonly number[]): void {
    this.ensure(e);
    const v = (i: number, max: number): number => {
      const x = i < d.length ? d[i] : 0;
      return Number.isInteger(x) && x >= 0 && x <= max ? x : 0;
    };
    this.state[e] = v(0, SAVE_MAX[0]);
    this.vtag[2 * e] = v(1, SAVE_MAX[1]);
    this.vtag[2 * e + 1] = v(2, SAVE_MAX[2]);
    this.init[2 * e] = v(3, 1);
    this.init[2 * e + 1] = v(4, 1);
    this.lastDir[e] = v(5, 1);
    this.flags[e] = v(6, HEARTBEAT_VTAG_FAILED);
  }
}
