/**
 * What the hash and bitmap types share over their SetStore: the userspace add/del/test of
 * the keys an element text stands for (stopping at the first refusal, as the kernel's uadt
 * loops do), flush, the periodic gc, the -j SET add's extensions (IP_SET_INIT_KEXT: the
 * element counts the packet that added it) and the listing with extensions. A subclass says
 * how a packet and an element text become keys, and how a key is printed.
 */
import type { PacketContext } from '../../conntrack/context';
import { SetStore, type StoreBuffers } from './store';
import { ADD_EXISTS, ADD_FULL, addEntry, extText, userArgs, type AddArgs } from './ext';
import { FLAG_EXIST, IpsetError, type AdtOpt, type CreateOpts, type IpSet, type UserExt } from './set';

export abstract class StoreSet implements IpSet {
  abstract readonly typeName: string;
  abstract readonly revision: number;
  abstract readonly nomatchFeature: boolean;
  abstract readonly dimension: number;
  protected readonly store: SetStore;
  private readonly kargs: AddArgs = { nomatch: false, timeout: 0, packets: 1, bytes: 0, comment: null, exist: false };

  constructor(
    readonly uid: number,
    public name: string,
    readonly opts: CreateOpts,
    keyWords: number,
    capacity: number,
    buffers: StoreBuffers | undefined,
  ) {
    this.store = buffers ? new SetStore(buffers) : SetStore.create(keyWords, capacity, opts.comment);
  }

  abstract ktest(ctx: PacketContext, o: AdtOpt, now: number): number;
  abstract kadd(ctx: PacketContext, o: AdtOpt, now: number): number;
  abstract kdel(ctx: PacketContext, o: AdtOpt, now: number): number;
  abstract header(): string;
  /** the keys an element text stands for (ranges expanded); throws IpsetError */
  protected abstract userKeys(elem: string): Int32Array[];
  /** the net prefix a key is counted under (-1: none) */
  protected abstract cidrOf(key: Int32Array): number;
  protected abstract formatKey(key: Int32Array): string;
  /** the refusal of an add to a full set */
  protected abstract readonly fullMessage: string;

  buffers(): StoreBuffers {
    return this.store.buffers;
  }

  count(): number {
    return this.store.count;
  }

  memory(): number {
    const b = this.store.buffers;
    return b.header.byteLength + b.buckets.byteLength + b.words.byteLength + b.ext.byteLength + (b.comments?.byteLength ?? 0);
  }

  /** The extensions a -j SET add writes (the packet counted; its --timeout or the set's). */
  protected kadtArgs(o: AdtOpt, bytes: number): AddArgs {
    const a = this.kargs;
    a.timeout = o.timeout >= 0 ? o.timeout : this.opts.timeout;
    a.bytes = bytes;
    a.exist = (o.cmdflags & FLAG_EXIST) !== 0;
    return a;
  }

  /** mtype_add of one key, under the lock */
  protected addKey(key: Int32Array, a: AddArgs, now: number): number {
    return addEntry(this.store, key, this.cidrOf(key), this.opts, a, now, this);
  }

  /** mtype_del of one key, under the lock: 0, or -1 when it is not there (or expired) */
  protected delKey(key: Int32Array, now: number): number {
    const s = this.store;
    const e = s.find(key);
    if (e < 0 || s.expired(e, now)) return -1;
    s.remove(e, this.cidrOf(key));
    return 0;
  }

  /** Removes the expired elements, under the lock (also before an add to a full set). */
  expireLocked(now: number): void {
    const s = this.store;
    for (const e of s.entries()) if (s.expired(e, now)) s.remove(e, this.cidrOf(s.key(e)));
  }

  gc(now: number): void {
    if (!this.opts.timeout) return;
    this.locked(() => this.expireLocked(now));
  }

  private locked<T>(f: () => T): T {
    this.store.lock();
    try {
      return f();
    } finally {
      this.store.unlock();
    }
  }

  uadd(elem: string, ext: UserExt, exist: boolean, now: number): void {
    if (ext.nomatch && !this.nomatchFeature) throw new IpsetError("Syntax error: Unknown argument: 'nomatch'");
    const keys = this.userKeys(elem);
    const args = userArgs(ext, exist, this.opts);
    this.locked(() => {
      for (const k of keys) {
        const r = this.addKey(k, args, now);
        if (r === ADD_EXISTS) throw new IpsetError("Element cannot be added to the set: it's already added");
        if (r === ADD_FULL) throw new IpsetError(this.fullMessage);
      }
    });
  }

  udel(elem: string, exist: boolean, now: number): void {
    const keys = this.userKeys(elem);
    this.locked(() => {
      for (const k of keys) if (this.delKey(k, now) < 0 && !exist) throw new IpsetError("Element cannot be deleted from the set: it's not added");
    });
  }

  /** ipset test: every key in, none a nomatch element (a network given tests that very network) */
  utest(elem: string, now: number): boolean {
    const keys = this.userKeys(elem);
    const s = this.store;
    return this.locked(() =>
      keys.every((k) => {
        const e = s.find(k);
        return e >= 0 && !s.expired(e, now) && !s.nomatch(e);
      }),
    );
  }

  flush(): void {
    this.locked(() => this.store.clear());
  }

  /** the members in the order to list them (default: as stored) */
  protected listOrder(entries: number[]): number[] {
    return entries;
  }

  members(now: number): string[] {
    const s = this.store;
    return this.locked(() =>
      this.listOrder(s.entries().filter((e) => !s.expired(e, now))).map((e) => this.formatKey(s.key(e)) + extText(s, e, this.opts, now)),
    );
  }
}
