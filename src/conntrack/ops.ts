/**
 * The operator's operations on the table (what conntrack(8) asks ctnetlink, nf_conntrack_netlink.c,
 * plus the state file): listing, deletion, flush, tunables with their side effects, export and
 * import of entries, and the per-source counting behind nfqwall.per_source_max. Not hot path.
 */
import { IPS_CONFIRMED, IPS_DST_NAT, IPS_EXPECTED, IPS_HELPER, IPS_NAT_MASK, IPS_SRC_NAT } from './constants';
import { IPS_SEQ_ADJUST } from './seqadj';
import { ConntrackHost } from './host';
import {
  NAT_MASQ_WORD,
  TUPLE_WORDS,
  T_META,
  T_PORTS,
  T_SRC,
  hasNatReply,
  nodeTuple,
  origTuple,
  recBase,
  recFamily,
  recProto,
  storeNatReply,
  storeTuple,
} from './layout';
import type { TunableValues } from './sysctl';
import { invertPorts } from './tuple';

/** One entry as plain JSON-able data (state file). */
export interface ConntrackEntryData {
  /** the ORIG tuple, TUPLE_WORDS numbers (layout.ts) */
  tuple: number[];
  status: number;
  /** remaining lifetime in ms */
  timeoutMs: number;
  /** age in ms */
  ageMs: number;
  mark: number;
  /** helper name, '' = none */
  helper: string;
  /** tracker.save() */
  proto: number[];
  /** a NATed entry (IPS_SRC_NAT / IPS_DST_NAT): its REPLY tuple (the binding), TUPLE_WORDS numbers */
  reply?: number[];
  /** with reply: the interface MASQUERADE took the address of (0 = none) */
  masq?: number;
  /** with IPS_SEQ_ADJUST: SeqAdjust.save() (correction_pos, offset_before, offset_after per direction) */
  seqadj?: number[];
}

export class ConntrackOps extends ConntrackHost {
  /** scratch tuples of importEntry */
  private readonly importKey = new Uint32Array(TUPLE_WORDS);
  private readonly importReply = new Uint32Array(TUPLE_WORDS);

  isConfirmed(e: number): boolean {
    return (this.table.status(e) & IPS_CONFIRMED) !== 0;
  }

  mark(e: number): number {
    return this.table.mark[e];
  }

  setMark(e: number, mark: number): void {
    this.table.mark[e] = mark >>> 0;
  }

  /**
   * nft_ct_helper_obj_eval (`ct helper set` on the packet's unconfirmed entry): the helper,
   * unless the entry already has one assigned (IPS_HELPER).
   */
  assignHelper(e: number, id: number): void {
    const tb = this.table;
    if ((tb.status(e) & IPS_HELPER) !== 0) return;
    this.attachHelper(e, id);
    tb.setStatus(e, tb.status(e) | IPS_HELPER);
  }

  helperOf(e: number): number {
    return this.table.helper[e];
  }

  helperName(e: number): string {
    const h = this.table.helper[e];
    return h === 0 ? '' : (this.helpers[h]?.name ?? '');
  }

  /** The master of an expected entry, -1 if none or already gone. */
  master(e: number): number {
    return this.table.master(e);
  }

  /**
   * Calls cb for every confirmed entry in hash-table order (ORIG tuples). With
   * `now`, expired entries met are reaped instead of listed.
   */
  forEach(cb: (e: number) => void, now?: number): void {
    const tb = this.table;
    const ids: number[] = [];
    for (let b = 0; b < tb.nbuckets; b++) {
      ids.length = 0;
      for (let n = tb.head(b); n >= 0; n = tb.next(n)) if ((n & 1) === 0) ids.push(n >> 1);
      for (const e of ids) {
        if (!tb.isAlloc(e) || !tb.isHashed(e)) continue;
        if (now !== undefined && tb.timeout(e) <= now) {
          this.destroy(e);
          continue;
        }
        cb(e);
      }
    }
  }

  /** Confirmed entries in hash-table order. */
  *entries(now?: number): IterableIterator<number> {
    const ids: number[] = [];
    this.forEach((e) => ids.push(e), now);
    for (const e of ids) if (this.table.isAlloc(e)) yield e;
  }

  /** conntrack -D: delete the confirmed entries the filter selects. Returns how many. */
  deleteMatching(filter: (e: number) => boolean): number {
    const victims: number[] = [];
    this.forEach((e) => {
      if (filter(e)) victims.push(e);
    });
    for (const e of victims) this.destroy(e);
    return victims.length;
  }

  /** conntrack -F: delete every confirmed entry. Returns how many. */
  flush(): number {
    return this.deleteMatching(() => true);
  }

  /** Set a tunable with its side effects (buckets → rehash; max shrink evicts nothing at once). */
  setTunable(key: keyof TunableValues, value: number): void {
    if (key === 'nf_conntrack_count') throw new Error('net.netfilter.nf_conntrack_count is read-only');
    this.tun[key] = value;
    if (key === 'nf_conntrack_buckets') {
      this.table.rehash(value);
      this.gcCursor = 0;
    }
    if (key === 'nf_conntrack_max' && !this.table.reserve(value)) {
      this.logger?.warn(`nf_conntrack_max ${value}: not enough memory to reserve the table now; it grows as it fills`);
    }
  }

  /** One entry as plain data (state file). */
  exportEntry(e: number, now: number): ConntrackEntryData {
    const tb = this.table;
    return {
      tuple: Array.from(origTuple(tb.rec, e)),
      status: tb.status(e),
      timeoutMs: Math.max(0, tb.timeout(e) - now),
      ageMs: tb.createdAge(e, now),
      mark: tb.mark[e],
      helper: this.helperName(e),
      proto: this.byProto[recProto(tb.rec, e)].save(e),
      ...(hasNatReply(tb.rec, e) ? { reply: this.natReplyWords(e), masq: tb.nat[e * TUPLE_WORDS + NAT_MASQ_WORD] } : {}),
      ...(tb.status(e) & IPS_SEQ_ADJUST ? { seqadj: this.seqadj.save(e) } : {}),
    };
  }

  private natReplyWords(e: number): number[] {
    const rk = this.importReply;
    nodeTuple(this.table.rec, this.table.nat, 2 * e + 1, rk, 0);
    return Array.from(rk);
  }

  /**
   * Insert an exported entry as confirmed. Returns its id, or -1 if it is
   * malformed, already present, expired, or the table is full.
   */
  importEntry(data: ConntrackEntryData, now: number): number {
    const tb = this.table;
    if (!data || !Array.isArray(data.tuple) || data.tuple.length !== TUPLE_WORDS) return -1;
    if (!(data.timeoutMs > 0)) return -1;
    const key = this.importKey;
    for (let i = 0; i < TUPLE_WORDS; i++) {
      const w = Number(data.tuple[i]);
      if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) return -1;
      key[i] = w;
    }
    const family = key[T_META] >>> 8;
    if (family !== 4 && family !== 6) return -1;
    const proto = key[T_META] & 0xff;
    const rports = invertPorts(proto, key[T_PORTS]);
    if (rports < 0) return -1;
    const h = this.hkey.hashTuple(key, 0);
    if (this.find(key, h, now) >= 0) return -1;
    const max = this.tun.nf_conntrack_max;
    const sh = this.shared;
    if (sh !== undefined) {
      if (Atomics.add(sh, 0, 1) + 1 > max && max !== 0) {
        Atomics.sub(sh, 0, 1);
        return -1;
      }
    } else if (max !== 0 && tb.count >= max) return -1;
    if (max !== tb.limit) tb.reserve(max);
    const e = tb.alloc();
    if (e < 0) {
      if (sh !== undefined) Atomics.sub(sh, 0, 1);
      return -1;
    }
    storeTuple(tb.rec, e, key, rports);
    const rk = this.importReply;
    const natBits = (data.status >>> 0) & IPS_NAT_MASK;
    // a hairpin entry (SNAT and DNAT) is found at the filter crossing through nat.ts's crossing
    // index, which an import does not fill: such an entry is not restored
    if (natBits === (IPS_SRC_NAT | IPS_DST_NAT)) {
      tb.free(e);
      if (sh !== undefined) Atomics.sub(sh, 0, 1);
      return -1;
    }
    if (natBits !== 0) {
      // the binding: the REPLY tuple as saved (restore-check.ts checked its shape)
      const ok = Array.isArray(data.reply) && data.reply.length === TUPLE_WORDS && data.reply.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff);
      if (!ok || data.reply![T_META] !== key[T_META]) {
        tb.free(e);
        if (sh !== undefined) Atomics.sub(sh, 0, 1);
        return -1;
      }
      for (let i = 0; i < TUPLE_WORDS; i++) rk[i] = data.reply![i];
      storeNatReply(tb.rec, tb.nat, e, rk, 0);
      tb.nat[e * TUPLE_WORDS + NAT_MASQ_WORD] = (data.masq ?? 0) >>> 0;
    }
    tb.setStatus(e, natBits);
    // the reply tuple must not clash either
    nodeTuple(tb.rec, tb.nat, 2 * e + 1, rk, 0);
    const hr = this.hkey.hashTuple(rk, 0);
    if (this.find(rk, hr, now) >= 0) {
      tb.free(e);
      if (sh !== undefined) Atomics.sub(sh, 0, 1);
      this.tun.nf_conntrack_count = tb.count;
      return -1;
    }
    tb.setStatus(e, ((data.status >>> 0) | IPS_CONFIRMED) & ~IPS_EXPECTED);
    tb.setTimeout(e, now + data.timeoutMs);
    tb.setCreated(e, now - (data.ageMs > 0 ? data.ageMs : 0));
    tb.mark[e] = data.mark >>> 0 || 0;
    tb.helper[e] = 0;
    tb.masterHelper[e] = 0;
    const hid = data.helper ? this.helperId(data.helper) : 0;
    if (hid !== 0 && this.helpers[hid]!.protonum === proto) this.attachHelper(e, hid);
    else tb.setStatus(e, tb.status(e) & ~IPS_HELPER);
    this.byProto[proto].restore(e, Array.isArray(data.proto) ? data.proto : []);
    if (tb.status(e) & IPS_SEQ_ADJUST) {
      if (Array.isArray(data.seqadj) && data.seqadj.length === 6) this.seqadj.restore(e, data.seqadj);
      else tb.setStatus(e, tb.status(e) & ~IPS_SEQ_ADJUST);
    }
    if (this.countingSources) this.perSource.inc(family, key, T_SRC);
    tb.insert(e, h, hr);
    this.tun.nf_conntrack_count = tb.count;
    if (this.events !== undefined) this.events.created(e);
    return e;
  }

  /** Entries counted for a source address (IPv6: its /64). */
  sourceCount(family: number, addr: Uint32Array): number {
    if (!this.countingSources) this.startCountingSources();
    return this.perSource.get(family, addr, 0);
  }

  /** Whether entries are counted per source (from the first time nfqwall.per_source_max > 0). */
  get countsSources(): boolean {
    return this.countingSources;
  }

  /**
   * Counting entries per source costs a hash-table update for every entry created and
   * destroyed; it starts only when nfqwall.per_source_max is first > 0 (at start, or later by
   * sysctl) and counts the entries already in the table then, so the limit holds at once.
   */
  protected startCountingSources(): void {
    const tb = this.table;
    this.perSource.clear();
    for (let e = 0; e < tb.highWater; e++) {
      if (!tb.isAlloc(e)) continue;
      this.perSource.inc(recFamily(tb.rec, e), tb.rec, recBase(e) + T_SRC);
    }
    this.countingSources = true;
  }
}
