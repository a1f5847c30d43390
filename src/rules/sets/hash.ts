/**
 * The hash:* types (ip_set_hash_gen.h) over one SetStore: an element is its dimensions in
 * order, each an `ip` (an address of the set's family, hash:ip masked by its netmask), a
 * `net` (address and prefix length; at most one per type) or a `port` (proto << 16 | port).
 * A packet is looked up as mtype_test_cidrs does: for a type with a net dimension, at every
 * prefix length the set holds, most specific first, the first element found (not expired,
 * counters matching) decides, a nomatch element saying no. One file per type in types/
 * declares its dimensions.
 */
import type { PacketContext } from '../../conntrack/context';
import { formatAddr } from '../addr';
import { formatPort, maskAddr, parseIpPart, parseNetPart, parsePortPart } from './elements';
import type { StoreBuffers } from './store';
import { IpsetError, packetPort, type AdtOpt, type CreateOpts, type SetType } from './set';
import { decide, formatExt } from './ext';
import { StoreSet } from './store-set';

export type Dim = 'ip' | 'net' | 'port';

/** nfqwall sizes a set's storage for maxelem at create */
export const MAX_MAXELEM = 1 << 22;

export interface HashTypeSpec {
  name: string;
  revision: number;
  dims: readonly Dim[];
  /** hash:ip's netmask option */
  netmask?: boolean;
}

export function hashType(spec: HashTypeSpec): SetType {
  return {
    name: spec.name,
    createOptions: ['family', 'hashsize', 'maxelem', 'bucketsize', 'initval', ...(spec.netmask ? ['netmask'] : [])],
    families: [4, 6],
    make: (uid, name, opts, buffers) => new HashSet(spec, uid, name, opts, buffers as StoreBuffers | undefined),
  };
}

export class HashSet extends StoreSet {
  readonly typeName: string;
  readonly revision: number;
  readonly nomatchFeature: boolean;
  readonly dimension: number;
  protected readonly fullMessage = 'Hash is full, cannot add more elements';
  private readonly family: 4 | 6;
  private readonly aw: number;
  private readonly host: number;
  /** word offset of each dimension in the key */
  private readonly offs: number[];
  /** the net dimension's index, -1 = none; its cidr word */
  private readonly netDim: number;
  private readonly cidrOff: number;
  private readonly key: Int32Array;
  /** the address the net dimension reads from the packet (before masking) */
  private readonly netAddr = new Int32Array(4);
  /** the prefix masks by length, 4 words each */
  private readonly masks: Int32Array;

  constructor(
    private readonly spec: HashTypeSpec,
    uid: number,
    name: string,
    opts: CreateOpts,
    buffers?: StoreBuffers,
  ) {
    const family = opts.family === 6 ? 6 : 4;
    const aw = family === 4 ? 1 : 4;
    const offs: number[] = [];
    let w = 0;
    for (const d of spec.dims) {
      offs.push(w);
      w += d === 'port' ? 1 : d === 'net' ? aw + 1 : aw;
    }
    super(uid, name, opts, w, opts.maxelem, buffers);
    this.typeName = spec.name;
    this.revision = spec.revision;
    this.dimension = spec.dims.length;
    this.nomatchFeature = spec.dims.includes('net');
    this.family = family;
    this.aw = aw;
    this.host = family === 4 ? 32 : 128;
    this.offs = offs;
    this.netDim = spec.dims.indexOf('net');
    this.cidrOff = this.netDim >= 0 ? offs[this.netDim] + aw : -1;
    this.key = new Int32Array(w);
    this.masks = new Int32Array(129 * 4);
    for (let c = 0; c <= this.host; c++) {
      const m = maskAddr([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], this.family, c);
      for (let i = 0; i < 4; i++) this.masks[c * 4 + i] = m[i] | 0;
    }
  }

  /** The packet's key in this.key (the net dimension unmasked, in netAddr); false when a port cannot be read. */
  private packetKey(ctx: PacketContext, flags: number): boolean {
    const v = ctx.view;
    const key = this.key;
    const dims = this.spec.dims;
    const aw = this.aw;
    const nm = this.opts.netmask >= 0 ? this.opts.netmask * 4 : this.host * 4;
    for (let i = 0; i < dims.length; i++) {
      const src = ((flags >>> (i + 1)) & 1) === 1;
      const o = this.offs[i];
      const d = dims[i];
      if (d === 'port') {
        const p = packetPort(ctx, src);
        if (p < 0) return false;
        key[o] = p;
        continue;
      }
      const a = src ? v.src : v.dst;
      if (d === 'ip') for (let k = 0; k < aw; k++) key[o + k] = a[k] & this.masks[nm + k];
      else for (let k = 0; k < aw; k++) this.netAddr[k] = a[k];
    }
    return true;
  }

  private setNet(cidr: number): void {
    const o = this.offs[this.netDim];
    for (let k = 0; k < this.aw; k++) this.key[o + k] = this.netAddr[k] & this.masks[cidr * 4 + k];
    this.key[this.cidrOff] = cidr;
  }

  ktest(ctx: PacketContext, o: AdtOpt, now: number): number {
    if (!this.packetKey(ctx, o.flags)) return 0;
    const s = this.store;
    s.lock();
    let r = 0;
    if (this.netDim < 0) {
      const e = s.find(this.key);
      if (e >= 0) r = decide(s, e, o, now, ctx.length, this.opts.counters);
    } else {
      for (let c = this.host; c > 0; c--) {
        if (s.cidrCount(c) === 0) continue;
        this.setNet(c);
        const e = s.find(this.key);
        if (e >= 0) {
          r = decide(s, e, o, now, ctx.length, this.opts.counters);
          if (r !== 0) break;
        }
      }
    }
    s.unlock();
    return r;
  }

  /** the prefix a packet's net dimension is added or deleted at: the most specific one in the set, else the host's */
  private kernelCidr(): number {
    for (let c = this.host; c > 0; c--) if (this.store.cidrCount(c) > 0) return c;
    return this.host;
  }

  kadd(ctx: PacketContext, o: AdtOpt, now: number): number {
    if (!this.packetKey(ctx, o.flags)) return -1;
    const s = this.store;
    s.lock();
    if (this.netDim >= 0) this.setNet(this.kernelCidr());
    const r = this.addKey(this.key, this.kadtArgs(o, ctx.length), now);
    s.unlock();
    return r;
  }

  kdel(ctx: PacketContext, o: AdtOpt, now: number): number {
    if (!this.packetKey(ctx, o.flags)) return -1;
    const s = this.store;
    s.lock();
    if (this.netDim >= 0) this.setNet(this.kernelCidr());
    const r = this.delKey(this.key, now);
    s.unlock();
    return r;
  }

  /** The keys an element text stands for (ranges, networks and port ranges expanded), with their net prefix. */
  protected userKeys(elem: string): Int32Array[] {
    const parts = elem.split(',');
    const dims = this.spec.dims;
    if (parts.length !== dims.length)
      throw new IpsetError(`Syntax error: Element ${elem} has ${parts.length} part(s), ${this.typeName} takes ${dims.length} separated by ','`);
    let keys: Int32Array[] = [new Int32Array(this.key.length)];
    const limit = this.opts.maxelem;
    for (let i = 0; i < dims.length; i++) {
      const o = this.offs[i];
      const fill: ((k: Int32Array) => void)[] = [];
      if (dims[i] === 'ip') {
        for (const a of parseIpPart(parts[i], this.family, this.opts.netmask, limit))
          fill.push((k) => {
            for (let w = 0; w < this.aw; w++) k[o + w] = a[w] | 0;
          });
      } else if (dims[i] === 'net') {
        for (const [a, c] of parseNetPart(parts[i], this.family))
          fill.push((k) => {
            for (let w = 0; w < this.aw; w++) k[o + w] = a[w] | 0;
            k[o + this.aw] = c;
          });
      } else {
        const [proto, lo, hi] = parsePortPart(parts[i], this.family);
        if (hi - lo + 1 > limit) throw new IpsetError('Hash is full, cannot add more elements');
        for (let p = lo; p <= hi; p++) fill.push((k) => (k[o] = (proto << 16) | p));
      }
      if (keys.length * fill.length > limit) throw new IpsetError('Hash is full, cannot add more elements');
      const next: Int32Array[] = [];
      for (const k of keys)
        for (const f of fill) {
          const c = k.slice();
          f(c);
          next.push(c);
        }
      keys = next;
    }
    return keys;
  }

  header(): string {
    const o = this.opts;
    let h = `family ${this.family === 4 ? 'inet' : 'inet6'} hashsize ${o.hashsize} maxelem ${o.maxelem}`;
    if (o.netmask >= 0) h += ` netmask ${o.netmask}`;
    h += formatExt(o);
    h += ` bucketsize ${o.bucketsize}`;
    if (o.initval !== null) h += ` initval ${o.initval}`;
    return h;
  }

  protected formatKey(k: Int32Array): string {
    const out: string[] = [];
    for (let i = 0; i < this.spec.dims.length; i++) {
      const o = this.offs[i];
      const d = this.spec.dims[i];
      if (d === 'port') out.push(formatPort(k[o]));
      else {
        const a = Array.from(k.subarray(o, o + this.aw), (x) => x >>> 0);
        out.push(d === 'net' ? `${formatAddr(this.family, a)}/${k[o + this.aw]}` : formatAddr(this.family, a));
      }
    }
    return out.join(',');
  }

  /**
   * ipset test: an address given for the net dimension (no prefix) is tested at every prefix
   * the set holds, most specific first, as mtype_test does (a nomatch element: not in the set);
   * a network given tests that very network.
   */
  override utest(elem: string, now: number): boolean {
    if (this.netDim < 0) return super.utest(elem, now);
    const keys = this.userKeys(elem);
    const s = this.store;
    const o = this.offs[this.netDim];
    s.lock();
    try {
      return keys.every((k) => {
        if (k[this.cidrOff] !== this.host) {
          const e = s.find(k);
          return e >= 0 && !s.expired(e, now) && !s.nomatch(e);
        }
        const addr = k.slice(o, o + this.aw);
        for (let c = this.host; c > 0; c--) {
          if (s.cidrCount(c) === 0) continue;
          for (let w = 0; w < this.aw; w++) k[o + w] = addr[w] & this.masks[c * 4 + w];
          k[this.cidrOff] = c;
          const e = s.find(k);
          if (e >= 0 && !s.expired(e, now)) return !s.nomatch(e);
        }
        return false;
      });
    } finally {
      s.unlock();
    }
  }

  protected cidrOf(key: Int32Array): number {
    return this.netDim >= 0 ? key[this.cidrOff] : -1;
  }
}
