/**
 * list:set (ip_set_list_set.c): an ordered list of other sets (of any family, not list:set
 * themselves). A packet is in it when it is in a member (tested with the member's own
 * dimension and family checks), the first such member's list element deciding the
 * extensions; -j SET adds to / deletes from the first member that takes the packet. The
 * members are kept by their uid in a SetStore (extensions) and an order array, both shared
 * between threads; the thread's registry resolves a uid to its IpSet.
 */
import type { PacketContext } from '../../../conntrack/context';
import { SetStore, type StoreBuffers } from '../store';
import { ADD_EXISTS, ADD_FULL, addEntry, decide, extText, formatExt, userArgs } from '../ext';
import {
  AdtOpt,
  FLAG_MATCH_COUNTERS,
  FLAG_SKIP_COUNTER_UPDATE,
  FLAG_SKIP_SUBCOUNTER_UPDATE,
  ipSetAdd,
  ipSetDel,
  ipSetTest,
  IpsetError,
  type CreateOpts,
  type IpSet,
  type SetLookup,
  type SetType,
  type UserExt,
} from '../set';

interface ListBuffers {
  store: StoreBuffers;
  order: SharedArrayBuffer;
}

class ListSet implements IpSet {
  readonly typeName = 'list:set';
  readonly revision = 3;
  readonly nomatchFeature = false;
  /** a list takes whatever dimension its members need */
  readonly dimension = 0;
  private readonly store: SetStore;
  /** [n, entry…] in list order */
  private readonly order: Int32Array;
  private readonly sub = new AdtOpt();
  private readonly key = new Int32Array(1);

  constructor(
    readonly uid: number,
    public name: string,
    readonly opts: CreateOpts,
    private readonly sets: SetLookup,
    b?: ListBuffers,
  ) {
    this.store = b ? new SetStore(b.store) : SetStore.create(1, opts.size, opts.comment);
    this.order = new Int32Array(b ? b.order : new SharedArrayBuffer((opts.size + 1) * 4));
    opts.maxelem = opts.size;
  }

  buffers(): ListBuffers {
    return { store: this.store.buffers, order: this.order.buffer as SharedArrayBuffer };
  }
  count(): number {
    return this.store.count;
  }
  memory(): number {
    return this.order.byteLength + this.store.buffers.words.byteLength + this.store.buffers.ext.byteLength;
  }

  /** The uids of the members, in order (every member, expired or not). */
  memberUids(): number[] {
    const s = this.store;
    s.lock();
    const out: number[] = [];
    for (let i = 0; i < this.order[0]; i++) out.push(s.key(this.order[1 + i])[0]);
    s.unlock();
    return out;
  }

  ktest(ctx: PacketContext, o: AdtOpt, now: number): number {
    const sub = this.sub;
    sub.family = o.family;
    sub.dim = o.dim;
    sub.flags = o.flags;
    sub.cmdflags = o.cmdflags & ~FLAG_MATCH_COUNTERS;
    if (o.cmdflags & FLAG_SKIP_SUBCOUNTER_UPDATE) sub.cmdflags |= FLAG_SKIP_COUNTER_UPDATE;
    const s = this.store;
    s.lock();
    let r = 0;
    for (let i = 0; i < this.order[0]; i++) {
      const e = this.order[1 + i];
      if (s.expired(e, now)) continue;
      const m = this.sets.byUid(this.keyOf(e));
      if (!m || ipSetTest(m, ctx, sub, now) <= 0) continue;
      if (decide(s, e, o, now, ctx.length, this.opts.counters) > 0) {
        r = 1;
        break;
      }
    }
    s.unlock();
    return r;
  }

  private keyOf(e: number): number {
    // the entry's key word without copying: find() wrote nothing here, read through key()
    return this.store.keyWord(e, 0);
  }

  private each(ctx: PacketContext, o: AdtOpt, now: number, add: boolean): number {
    const s = this.store;
    s.lock();
    let r = -1;
    for (let i = 0; i < this.order[0]; i++) {
      const e = this.order[1 + i];
      if (s.expired(e, now)) continue;
      const m = this.sets.byUid(this.keyOf(e));
      if (m && (add ? ipSetAdd(m, ctx, o, now) : ipSetDel(m, ctx, o, now)) === 0) {
        r = 0;
        break;
      }
    }
    s.unlock();
    return r;
  }

  kadd(ctx: PacketContext, o: AdtOpt, now: number): number {
    return this.each(ctx, o, now, true);
  }
  kdel(ctx: PacketContext, o: AdtOpt, now: number): number {
    return this.each(ctx, o, now, false);
  }

  private member(name: string): IpSet {
    const m = this.sets.byName(name);
    if (!m) throw new IpsetError('Set to be added/deleted/tested as element does not exist.');
    if (m.typeName === 'list:set') throw new IpsetError('Sets with list:set type cannot be added to the set.');
    return m;
  }

  private position(e: number): number {
    for (let i = 0; i < this.order[0]; i++) if (this.order[1 + i] === e) return i;
    return -1;
  }

  uadd(elem: string, ext: UserExt, exist: boolean, now: number): void {
    if (ext.nomatch) throw new IpsetError("Syntax error: Unknown argument: 'nomatch'");
    const m = this.member(elem);
    const ref = ext.before ?? ext.after;
    const refSet = ref !== undefined ? this.member(ref) : null;
    const s = this.store;
    s.lock();
    try {
      let at = this.order[0];
      if (refSet) {
        this.key[0] = refSet.uid;
        const re = s.find(this.key);
        if (re < 0 || s.expired(re, now)) throw new IpsetError('Reference set does not exist');
        at = this.position(re) + (ext.after !== undefined ? 1 : 0);
      }
      this.key[0] = m.uid;
      const had = s.find(this.key);
      const r = addEntry(s, this.key, -1, this.opts, userArgs(ext, exist, this.opts), now, this);
      if (r === ADD_EXISTS) throw new IpsetError("Element cannot be added to the set: it's already added");
      if (r === ADD_FULL) throw new IpsetError('The set is full, more elements cannot be added');
      if (had < 0) {
        const e = s.find(this.key);
        this.order.copyWithin(2 + at, 1 + at, 1 + this.order[0]);
        this.order[1 + at] = e;
        this.order[0]++;
      }
    } finally {
      s.unlock();
    }
  }

  private removeEntry(e: number): void {
    const p = this.position(e);
    this.order.copyWithin(1 + p, 2 + p, 1 + this.order[0]);
    this.order[0]--;
    this.store.remove(e, -1);
  }

  expireLocked(now: number): void {
    for (let i = this.order[0] - 1; i >= 0; i--) {
      const e = this.order[1 + i];
      if (this.store.expired(e, now)) this.removeEntry(e);
    }
  }

  gc(now: number): void {
    if (!this.opts.timeout) return;
    this.store.lock();
    this.expireLocked(now);
    this.store.unlock();
  }

  udel(elem: string, exist: boolean, now: number): void {
    const m = this.member(elem);
    const s = this.store;
    s.lock();
    try {
      this.key[0] = m.uid;
      const e = s.find(this.key);
      if (e < 0 || s.expired(e, now)) {
        if (exist) return;
        throw new IpsetError("Element cannot be deleted from the set: it's not added");
      }
      this.removeEntry(e);
    } finally {
      s.unlock();
    }
  }

  utest(elem: string, now: number): boolean {
    const m = this.member(elem);
    const s = this.store;
    s.lock();
    this.key[0] = m.uid;
    const e = s.find(this.key);
    const r = e >= 0 && !s.expired(e, now);
    s.unlock();
    return r;
  }

  flush(): void {
    this.store.lock();
    this.store.clear();
    this.order[0] = 0;
    this.store.unlock();
  }

  header(): string {
    return `size ${this.opts.size}${formatExt(this.opts)}`;
  }

  members(now: number): string[] {
    const s = this.store;
    s.lock();
    try {
      const out: string[] = [];
      for (let i = 0; i < this.order[0]; i++) {
        const e = this.order[1 + i];
        if (s.expired(e, now)) continue;
        const m = this.sets.byUid(s.keyWord(e, 0));
        out.push((m ? m.name : '?') + extText(s, e, this.opts, now));
      }
      return out;
    } finally {
      s.unlock();
    }
  }
}

export const listSet: SetType = {
  name: 'list:set',
  createOptions: ['size'],
  families: [0],
  make: (uid, name, opts, buffers, sets) => new ListSet(uid, name, { ...opts, family: 0 }, sets, buffers as ListBuffers | undefined),
};

export function isListSet(s: IpSet): s is IpSet & { memberUids(): number[] } {
  return s.typeName === 'list:set';
}
