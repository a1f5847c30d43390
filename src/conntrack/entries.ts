/**
 * The connection table's operations, the part of nf_conntrack_core.c around the hash: lookup
 * (____nf_conntrack_find, reaping the expired entries met), removal (nf_ct_delete), early drop,
 * the trackers and helpers entries use, and the count nf_conntrack_max bounds, over the
 * typed-array table of table.ts.
 *
 * Conntrack (core.ts) is built in layers, one job per file, each class extending the one before:
 * ConntrackEntries (here) → ConntrackExpiry (gc.ts) → ConntrackHost (host.ts: what trackers
 * and helpers call) → ConntrackOps (ops.ts: the operator's operations) → Conntrack (core.ts: the
 * per-packet path). One object, one hidden class: calls between the layers are plain method
 * calls V8 inlines as before. Hot path (lookups, destroy): integers and typed arrays, no allocation.
 */
import { randomFillSync } from 'node:crypto';
import type { PacketView } from '../packet/view';
import { IPS_ASSURED } from './constants';
import type { ConntrackEvents } from './events';
import type { ConntrackHelper } from './helpers/helper';
import { SeqAdjust } from './seqadj';
import { ExpectTable } from './expect';
import { HashKey } from './hash';
import { T_SRC, TUPLE_WORDS, nodeEquals, nodeLink, recBase, recFamily, timeoutIndex } from './layout';
import { SourceCounter } from './persource';
import { GenericTracker } from './proto/generic';
import type { ProtoTracker } from './proto/tracker';
import { RateLimiter } from './ratelimit';
import { newStats, type ConntrackStats } from './stats';
import type { TunableValues } from './sysctl';
import { ConnTable } from './table';
import { createDefaultTrackers } from './trackers';
import { tupleFromView } from './tuple';

/** pino-like logger */
export interface ConntrackLog {
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

export interface ConntrackOptions {
  /** protocol trackers, by protonum (default: createDefaultTrackers()); generic for the rest */
  trackers?: ProtoTracker[];
  /** helpers, index = helper id (0 unused) */
  helpers?: (ConntrackHelper | undefined)[];
  log?: ConntrackLog;
  /** random source for the hash keys (default crypto.randomFillSync) */
  random?: (buf: Uint8Array) => void;
}

/** NF_CT_EVICTION_RANGE */
const EVICTION_RANGE = 8;

export class ConntrackEntries {
  readonly tun: TunableValues;
  readonly stats: ConntrackStats = newStats();
  readonly table: ConnTable;
  readonly expectations: ExpectTable;
  /** the TCP sequence offsets of entries whose payload a NAT helper resized (IPS_SEQ_ADJUST) */
  readonly seqadj = new SeqAdjust();
  /** net_ratelimit, shared by the table-full, expectation-full and per-source messages */
  readonly ratelimit = new RateLimiter();

  protected readonly logger: ConntrackLog | undefined;
  protected readonly byProto: ProtoTracker[] = new Array(256);
  private readonly trackerList: ProtoTracker[] = [];
  protected readonly helpers: (ConntrackHelper | undefined)[];
  protected readonly hkey: HashKey;
  protected readonly perSource: SourceCounter;
  /** entries are counted per source (from the first time nfqwall.per_source_max > 0, ops.ts) */
  protected countingSources = false;
  /** scratch tuple of hashPacket */
  private readonly hashScratch = new Uint32Array(TUPLE_WORDS);
  private pfNodes = new Uint32Array(64);
  /** prefetchBatch pays off from this many hashed entries on (tests set 0 to force it) */
  prefetchMinEntries = 65536;
  /** xorshift state (the chain-length limit of a confirm) */
  protected readonly rnd: Uint32Array;
  /** the entry the last initConntrack created (core.ts), for its confirm; -1 once gone */
  protected newRow = -1;
  /** worker threads: cell 0 counts the entries of every worker's table; nf_conntrack_max bounds that sum */
  protected shared: Int32Array | undefined;
  /**
   * Called on a lookup miss with the packet's tuple (which it must leave as it found it): may
   * insert that tuple's entry from elsewhere (a restored entry no worker has claimed yet) and
   * return true, so that the lookup is repeated. Not per packet: only new tuples miss.
   */
  claimer: ((key: Uint32Array, now: number) => boolean) | undefined;
  /** told about confirmed entries created, changed and destroyed (state sync); none by default */
  events: ConntrackEvents | undefined;

  constructor(tun: TunableValues, opts: ConntrackOptions = {}) {
    this.tun = tun;
    this.logger = opts.log;
    const random = opts.random ?? ((b: Uint8Array) => void randomFillSync(b));
    this.hkey = new HashKey(random);
    const sk = new HashKey(random);
    this.perSource = new SourceCounter(sk.k0, sk.k1);
    this.expectations = new ExpectTable(new HashKey(random), this.stats);
    const seed = new Uint8Array(4);
    random(seed);
    this.rnd = new Uint32Array([(seed[0] | (seed[1] << 8) | (seed[2] << 16) | (seed[3] << 24)) >>> 0 || 0x9e3779b9]);

    const generic = new GenericTracker();
    this.byProto.fill(generic);
    this.trackerList.push(generic);
    for (const t of opts.trackers ?? createDefaultTrackers()) {
      this.byProto[t.protonum & 0xff] = t;
      if (!this.trackerList.includes(t)) this.trackerList.push(t);
    }
    this.helpers = opts.helpers ?? [];

    this.table = new ConnTable(tun.nf_conntrack_buckets, tun.nf_conntrack_max, this.hkey);
    this.table.onResize = (cap) => this.resizeAll(cap);
    this.resizeAll(this.table.capacity);
    tun.nf_conntrack_count = 0;
  }

  private resizeAll(cap: number): void {
    for (const t of this.trackerList) t.resize(cap);
    for (const h of this.helpers) {
      if (h?.reserve) h.reserve(cap);
      else h?.resize(cap);
    }
    this.expectations.resizeMasters(cap);
    this.seqadj.reserve(cap);
  }

  /** Number of entries (confirmed + unconfirmed), nf_conntrack_count. */
  get count(): number {
    return this.table.count;
  }

  /**
   * Count this table's entries in a cell shared by several tables (SharedArrayBuffer, one per
   * worker thread): nf_conntrack_max then bounds the sum, reserved before allocation as
   * __nf_conntrack_alloc does with atomic_inc_return(&cnet->count).
   */
  attachSharedCount(cell: Int32Array): void {
    this.shared = cell;
    Atomics.add(cell, 0, this.table.count);
  }

  /** The count nf_conntrack_max bounds: every table's when shared, else this one's. */
  globalCount(): number {
    return this.shared !== undefined ? Atomics.load(this.shared, 0) : this.table.count;
  }

  /** Tracker for a protocol number (generic if none). */
  tracker(proto: number): ProtoTracker {
    return this.byProto[proto & 0xff];
  }

  helper(id: number): ConntrackHelper | undefined {
    return this.helpers[id];
  }

  /** Helper id by name (0 if none). */
  helperId(name: string): number {
    for (let i = 1; i < this.helpers.length; i++) if (this.helpers[i]?.name === name) return i;
    return 0;
  }

  /** Entry e gets helper `id` (its per-entry helper state reset). */
  protected attachHelper(e: number, id: number): void {
    const hp = this.helpers[id];
    if (hp === undefined) return;
    this.table.helper[e] = id;
    hp.init(e);
  }

  /** xorshift32: chain-length limits, NAT port offsets */
  protected nextRandom(): number {
    let x = this.rnd[0];
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rnd[0] = x;
    return this.rnd[0];
  }

  // ---------------------------------------------------------------- lookup

  /**
   * Look up a tuple (hash h) among confirmed entries: the node (2e + dir) or -1.
   * Expired entries met on the way are reaped. One record (cache line) per node.
   */
  protected find(k: Uint32Array, h: number, now: number): number {
    const tb = this.table;
    const b = tb.bucketOf(h);
    for (;;) {
      const rec = tb.rec;
      const recf = tb.recf;
      const nat = tb.nat;
      let n = tb.heads[b] - 1;
      let reaped = false;
      while (n >= 0) {
        const e = n >> 1;
        if (recf[timeoutIndex(e)] <= now) {
          this.destroy(e);
          reaped = true;
          break;
        }
        if (nodeEquals(rec, nat, n, k)) return n;
        n = rec[nodeLink(n)] - 1;
      }
      if (!reaped) return -1;
    }
  }

  /**
   * Whether a batch is worth pre-touching (prefetchBatch): the table has outgrown the CPU
   * caches. Below that the extra parse and hash per packet cost more than they save.
   */
  wantsPrefetch(): boolean {
    return this.table.hashed >= this.prefetchMinEntries;
  }

  /** The keyed hash of a tuple (layout.ts): prefetchBatch's input. */
  hashTuple(k: Uint32Array): number {
    return this.hkey.hashTuple(k, 0);
  }

  /** The keyed hash of a parsed packet's ORIG tuple (0 when it has none): prefetchBatch's input. */
  hashPacket(v: PacketView): number {
    const k = this.hashScratch;
    return v.malformed === 0 && tupleFromView(v, k, 0) ? this.hkey.hashTuple(k, 0) : 0;
  }

  /**
   * Memory-level parallelism for a batch: reads the bucket heads of n hashes, then the first
   * record of each chain, in two tight loops of independent loads, so that their cache misses
   * overlap instead of each lookup waiting for its own misses in turn. Changes nothing;
   * returns a word read (so that the loads are not optimised away).
   */
  prefetchBatch(hashes: Int32Array, n: number): number {
    const tb = this.table;
    if (this.pfNodes.length < n) this.pfNodes = new Uint32Array(n);
    const nodes = this.pfNodes;
    const heads = tb.heads;
    for (let i = 0; i < n; i++) nodes[i] = heads[tb.bucketOf(hashes[i])];
    const rec = tb.rec;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const x = nodes[i];
      if (x !== 0) acc ^= rec[recBase((x - 1) >> 1)];
    }
    return acc;
  }

  /** Public lookup of a tuple (layout.ts): node 2e + dir, or -1. */
  lookup(tuple: Uint32Array, now: number): number {
    return this.find(tuple, this.hkey.hashTuple(tuple, 0), now);
  }

  /** Lookup of a packet's tuple (hash h): node 2e + dir, or -1; a miss may claim a restored entry (claimer). */
  protected findOrClaim(k: Uint32Array, h: number, now: number): number {
    const node = this.find(k, h, now);
    return node < 0 && this.claimer !== undefined && this.claimer(k, now) ? this.find(k, h, now) : node;
  }

  // ---------------------------------------------------------------- removal

  /**
   * early_drop: evict every non-ASSURED confirmed entry of the first of
   * NF_CT_EVICTION_RANGE buckets (from the new tuple's) that has any. Expired
   * entries met are reaped (not counted).
   */
  protected earlyDrop(h: number, now: number): boolean {
    const tb = this.table;
    let b = tb.bucketOf(h);
    for (let i = 0; i < EVICTION_RANGE; i++) {
      if (i > 0) b = (b + 1) % tb.nbuckets;
      let drops = 0;
      for (;;) {
        let victim = -1;
        for (let n = tb.head(b); n >= 0; n = tb.next(n)) {
          const e = n >> 1;
          if (tb.timeout(e) <= now || (tb.status(e) & IPS_ASSURED) === 0) {
            victim = e;
            break;
          }
        }
        if (victim < 0) break;
        if (tb.timeout(victim) > now) drops++;
        this.destroy(victim);
      }
      if (drops > 0) {
        this.stats.early_drop += drops;
        return true;
      }
    }
    return false;
  }

  /** Remove entry e (confirmed or not) with its expectations. */
  destroy(e: number): void {
    const tb = this.table;
    if (tb.isHashed(e)) {
      if (this.events !== undefined) this.events.destroyed(e);
      tb.unlink(e);
    }
    if (this.expectations.hasExpectations(e)) this.expectations.removeForMaster(e);
    if (this.countingSources) this.perSource.dec(recFamily(tb.rec, e), tb.rec, recBase(e) + T_SRC);
    if (e === this.newRow) this.newRow = -1;
    tb.free(e);
    if (this.shared !== undefined) Atomics.sub(this.shared, 0, 1);
    this.tun.nf_conntrack_count = tb.count;
  }
}
