/**
 * The bitmap:* types (ip_set_bitmap_gen.h): an element is its index in the set's range
 * (bitmap:ip: (address & netmask - first) / hosts; bitmap:port: port - first), at most
 * 65536 of them, kept in a SetStore keyed by the index so that the extensions and the
 * sharing between threads are those of the hash types. A packet outside the range is not
 * in the set; an element outside it is refused.
 */
import type { PacketContext } from '../../conntrack/context';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../packet/view';
import type { StoreBuffers } from './store';
import { decide, formatExt } from './ext';
import { packetPort, type AdtOpt, type CreateOpts } from './set';
import { StoreSet } from './store-set';

/** IPSET_BITMAP_MAX_RANGE + 1 */
export const BITMAP_MAX = 65536;

export interface BitmapSpec {
  name: string;
  revision: number;
  /** the index of a packet (-1: none, or outside the range) */
  packetIndex(set: BitmapSet, ctx: PacketContext, src: boolean): number;
  /** the indexes an element text stands for (a range expanded) */
  parse(set: BitmapSet, elem: string): number[];
  format(set: BitmapSet, index: number): string;
  header(set: BitmapSet): string;
}

export class BitmapSet extends StoreSet {
  readonly typeName: string;
  readonly revision: number;
  readonly nomatchFeature = false;
  readonly dimension = 1;
  protected readonly fullMessage = 'Element is out of the range of the set';
  private readonly key = new Int32Array(1);

  constructor(
    private readonly spec: BitmapSpec,
    uid: number,
    name: string,
    opts: CreateOpts,
    /** elements the range holds */
    readonly size: number,
    buffers?: StoreBuffers,
  ) {
    super(uid, name, { ...opts, maxelem: size }, 1, size, buffers);
    this.typeName = spec.name;
    this.revision = spec.revision;
  }

  /** the packet's index in this.key; false when it has none in the range */
  private packetKey(ctx: PacketContext, o: AdtOpt): boolean {
    const i = this.spec.packetIndex(this, ctx, (o.flags & 2) !== 0);
    this.key[0] = i;
    return i >= 0;
  }

  ktest(ctx: PacketContext, o: AdtOpt, now: number): number {
    if (!this.packetKey(ctx, o)) return 0;
    const s = this.store;
    s.lock();
    const e = s.find(this.key);
    const r = e >= 0 ? decide(s, e, o, now, ctx.length, this.opts.counters) : 0;
    s.unlock();
    return r;
  }

  kadd(ctx: PacketContext, o: AdtOpt, now: number): number {
    if (!this.packetKey(ctx, o)) return -1;
    this.store.lock();
    const r = this.addKey(this.key, this.kadtArgs(o, ctx.length), now);
    this.store.unlock();
    return r;
  }

  kdel(ctx: PacketContext, o: AdtOpt, now: number): number {
    if (!this.packetKey(ctx, o)) return -1;
    this.store.lock();
    const r = this.delKey(this.key, now);
    this.store.unlock();
    return r;
  }

  protected userKeys(elem: string): Int32Array[] {
    return this.spec.parse(this, elem).map((i) => Int32Array.of(i));
  }

  protected cidrOf(): number {
    return -1;
  }

  protected formatKey(k: Int32Array): string {
    return this.spec.format(this, k[0]);
  }

  /** in index order, as the kernel walks a bitmap */
  protected override listOrder(entries: number[]): number[] {
    return entries.sort((a, b) => this.store.keyWord(a, 0) - this.store.keyWord(b, 0));
  }

  header(): string {
    return this.spec.header(this) + formatExt(this.opts);
  }
}

/** bitmap:port reads only TCP and UDP ports (ip_set_get_ip_port) */
export function tcpUdpPort(ctx: PacketContext, src: boolean): number {
  const p = packetPort(ctx, src);
  const proto = p >>> 16;
  return p >= 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP) ? p & 0xffff : -1;
}
