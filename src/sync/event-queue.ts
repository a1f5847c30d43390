/**
 * The table's events waiting to be sent (conntrackd's tx queue), recorded on the per-packet
 * path without allocation: a ring of fixed slots. A created or changed entry is named by
 * (row, gen) and its message built from the table when the ring is drained, as conntrackd
 * builds it from its cache object; a destroyed entry's tuple and state are copied at once,
 * its row being freed right after. When the ring is full further events are dropped and
 * `overrun` set: the sender then sends the whole table (conntrackd's overrun resync).
 */
import type { ConntrackEvents } from '../conntrack/events';
import { TUPLE_WORDS, recBase, recProto } from '../conntrack/layout';
import type { ConnTable } from '../conntrack/table';
import { IPPROTO_TCP } from '../packet/view';

export const EV_CREATED = 0;
export const EV_CHANGED = 1;
export const EV_DESTROYED = 2;

/* slot words */
const S_KIND = 0;
const S_ROW = 1;
const S_GEN = 2;
const S_STATUS = 3;
const S_TCP_STATE = 4;
const S_MARK = 5;
const S_TUPLE = 6;
const SLOT_WORDS = 16;

/** What a queue needs from the TCP tracker to describe a destroyed entry. */
export interface TcpStateSource {
  state(e: number): number;
}

export class SyncEventQueue implements ConntrackEvents {
  private readonly slots: Uint32Array;
  private head = 0;
  private tail = 0;
  private readonly mask: number;
  /** events were dropped because the ring was full */
  overrun = false;

  /** capacity: a power of two */
  constructor(
    private readonly table: ConnTable,
    private readonly tcp: TcpStateSource,
    capacity = 8192,
  ) {
    if ((capacity & (capacity - 1)) !== 0) throw new Error('capacity must be a power of two');
    this.slots = new Uint32Array(capacity * SLOT_WORDS);
    this.mask = capacity - 1;
  }

  get length(): number {
    return (this.tail - this.head) | 0;
  }

  private slot(kind: number, e: number): number {
    if (this.tail - this.head > this.mask) {
      this.overrun = true;
      return -1;
    }
    const o = (this.tail & this.mask) * SLOT_WORDS;
    this.tail = (this.tail + 1) | 0;
    const s = this.slots;
    s[o + S_KIND] = kind;
    s[o + S_ROW] = e;
    s[o + S_GEN] = this.table.gen[e];
    return o;
  }

  created(e: number): void {
    this.slot(EV_CREATED, e);
  }

  changed(e: number): void {
    this.slot(EV_CHANGED, e);
  }

  destroyed(e: number): void {
    const o = this.slot(EV_DESTROYED, e);
    if (o < 0) return;
    const s = this.slots;
    const tb = this.table;
    const r = recBase(e);
    for (let i = 0; i < TUPLE_WORDS; i++) s[o + S_TUPLE + i] = tb.rec[r + i];
    s[o + S_STATUS] = tb.status(e);
    s[o + S_TCP_STATE] = recProto(tb.rec, e) === IPPROTO_TCP ? this.tcp.state(e) : 0;
    s[o + S_MARK] = tb.mark[e];
  }

  /**
   * Takes the oldest event: calls live(kind, row) for a created/changed entry still the same
   * (row, gen), gone(tuple, status, tcpState, mark) for a destroyed one. False when empty.
   */
  shift(
    live: (kind: number, e: number) => void,
    gone: (tuple: Uint32Array, status: number, tcpState: number, mark: number) => void,
    tuple: Uint32Array,
  ): boolean {
    if (this.head === this.tail) return false;
    const o = (this.head & this.mask) * SLOT_WORDS;
    this.head = (this.head + 1) | 0;
    const s = this.slots;
    const kind = s[o + S_KIND];
    const e = s[o + S_ROW];
    if (kind === EV_DESTROYED) {
      for (let i = 0; i < TUPLE_WORDS; i++) tuple[i] = s[o + S_TUPLE + i];
      gone(tuple, s[o + S_STATUS], s[o + S_TCP_STATE], s[o + S_MARK]);
    } else if (this.table.isAlloc(e) && this.table.isHashed(e) && this.table.gen[e] === s[o + S_GEN]) live(kind, e);
    return true;
  }

  /** Forgets every event (the whole table is about to be sent). */
  clear(): void {
    this.head = this.tail = 0;
    this.overrun = false;
  }
}
