/**
 * The conntrack core: nf_conntrack_in / resolve_normal_ct / init_conntrack /
 * __nf_conntrack_confirm / early_drop / gc_worker of nf_conntrack_core.c, the
 * ICMP/ICMPv6 error path (nf_conntrack_inet_error), expectations, statistics,
 * over the typed-array table of table.ts.
 *
 * Hot path (in, confirm, abort, lookups, trackers): integers and typed arrays,
 * no allocation per packet. Objects appear only for listings and export.
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_NONE, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/view';
import { randomFillSync } from 'node:crypto';
import type { PacketView } from '../packet/view';
import { verifyL4Checksum } from '../packet/checksum';
import { addrToString } from '../packet/format';
import type { PacketContext } from './context';
import { NF_ACCEPT, NF_DROP, NF_INET_LOCAL_OUT, PKTF_CSUM_NOT_READY, PKTF_CSUM_VERIFIED } from '../queue/layout';
import {
  CTSTATE_INVALID,
  CTSTATE_UNTRACKED,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NEW,
  IP_CT_NONE,
  IP_CT_RELATED,
  IP_CT_RELATED_REPLY,
  IP_CT_UNTRACKED,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_EXPECTED,
  IPS_FIXED_TIMEOUT,
  IPS_HELPER,
  IPS_SEEN_REPLY,
  PKT_DROP,
  PKT_INVALID,
  PKT_REPEAT,
  ctstateBit,
} from './constants';
import type { TunableValues } from './sysctl';
import { logsInvalid, type ProtoTracker, type TrackerHost } from './proto/tracker';
import type { ConntrackHelper, HelperHost } from './helpers/helper';
import { GenericTracker } from './proto/generic';
import { ICMP_NOT_ERROR, ICMP_UNTRACKED, icmpv4Error, type IcmpErrorHost } from './proto/icmp';
import { icmpv6Error } from './proto/icmpv6';
import { createDefaultTrackers } from './trackers';
import { newStats, type ConntrackStats } from './stats';
import { ConnTable } from './table';
import { HashKey } from './hash';
import { RateLimiter } from './ratelimit';
import { SourceCounter } from './persource';
import { EXP_MASK_SRC_ADDR, EXP_MASK_SRC_PORT, EXP_OK, EXP_TABLE_FULL, ExpectTable, NF_CT_EXPECT_PERMANENT } from './expect';
import { invertPorts, tupleFromView } from './tuple';
import {
  R_STATUS,
  TUPLE_WORDS,
  T_DST,
  T_META,
  T_PORTS,
  T_SRC,
  addrWord,
  nodeEquals,
  nodeLink,
  nodeTuple,
  origTuple,
  portsIndex,
  recBase,
  recFamily,
  recProto,
  storeTuple,
  timeoutIndex,
} from './layout';

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
}

export const TABLE_FULL_MSG = 'nf_conntrack: table full, dropping packet';
export const EXPECT_FULL_MSG = 'nf_conntrack: expectation table full';
export const PER_SOURCE_MSG = 'nfqwall: per-source limit reached, dropping packet';

/** NF_CT_EVICTION_RANGE */
const EVICTION_RANGE = 8;
/** MIN_CHAINLEN / MAX_CHAINLEN of __nf_conntrack_confirm: limit drawn from [50, 80) */
const MIN_CHAINLEN = 50;
const MAX_CHAINLEN = 30;

/** Protocols with allow_clash (UDP, UDP-Lite, ICMP, ICMPv6). */
function allowClash(proto: number): boolean {
  return proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6;
}

export class Conntrack implements TrackerHost, HelperHost, IcmpErrorHost {
  readonly tun: TunableValues;
  readonly stats: ConntrackStats = newStats();
  readonly table: ConnTable;
  readonly expectations: ExpectTable;
  /** net_ratelimit, shared by the table-full, expectation-full and per-source messages */
  readonly ratelimit = new RateLimiter();

  private readonly logger: ConntrackLog | undefined;
  private readonly byProto: ProtoTracker[] = new Array(256);
  private readonly trackerList: ProtoTracker[] = [];
  private readonly helpers: (ConntrackHelper | undefined)[];
  private readonly hkey: HashKey;
  private readonly perSource: SourceCounter;
  private countingSources = false;
  /** scratch tuples */
  private readonly key = new Uint32Array(TUPLE_WORDS);
  private readonly key2 = new Uint32Array(TUPLE_WORDS);
  private readonly key3 = new Uint32Array(TUPLE_WORDS);
  private pfNodes = new Uint32Array(64);
  /** prefetchBatch pays off from this many hashed entries on (tests set 0 to force it) */
  prefetchMinEntries = 65536;
  private readonly rnd: Uint32Array;
  private readonly masterConfirmed = (m: number): boolean => (this.table.status(m) & IPS_CONFIRMED) !== 0;
  /** the `now` of the packet being tracked (createdAt) */
  private lastNow = 0;
  /** the entry the last initConntrack created and the hash of its ORIG tuple, for its confirm */
  private newRow = -1;
  private newHash = 0;

  private gcCursor = 0;
  /** worker threads: cell 0 counts the entries of every worker's table; nf_conntrack_max bounds that sum */
  private shared: Int32Array | undefined;
  /**
   * Called on a lookup miss with the packet's tuple (which it must leave as it found it): may
   * insert that tuple's entry from elsewhere (a restored entry no worker has claimed yet) and
   * return true, so that the lookup is repeated. Not per packet: only new tuples miss.
   */
  claimer: ((key: Uint32Array, now: number) => boolean) | undefined;
  /** GC-assisted early drop: buckets left in the current early-drop pass (0 = off) */
  private gcEarlyDropLeft = 0;

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

  // ---------------------------------------------------------------- per packet

  /**
   * nf_conntrack_in: resolve the packet's entry, run the tracker, fill ctx.
   * Returns NF_ACCEPT, or NF_DROP when conntrack itself drops the packet.
   */
  in(ctx: PacketContext, now: number): number {
    ctx.entry = -1;
    ctx.ctinfo = IP_CT_NONE;
    ctx.ctstate = CTSTATE_INVALID;
    ctx.ctstatus = 0;
    ctx.masterHelper = 0;
    ctx.unconfirmed = 0;
    this.lastNow = now;
    if (ctx.notrack) {
      ctx.ctinfo = IP_CT_UNTRACKED;
      ctx.ctstate = CTSTATE_UNTRACKED;
      return NF_ACCEPT;
    }
    const v = ctx.view;
    const proto = v.proto;
    if (v.fragOffset !== 0 || (proto === IPPROTO_NONE && v.ipVersion === 6)) {
      // not the first fragment, or IPv6 "no next header" (ipv6_skip_exthdr fails on 59):
      // get_l4proto finds no layer-4 header, so the packet is not tracked
      this.stats.invalid++;
      return NF_ACCEPT;
    }
    if (proto === IPPROTO_ICMP ? v.ipVersion === 4 : proto === IPPROTO_ICMPV6 && v.ipVersion === 6) {
      // nf_conntrack_handle_icmp: errors are RELATED to the entry of the packet they quote
      const csumOk = this.checksumOk(ctx, v);
      const r = proto === IPPROTO_ICMP ? icmpv4Error(this, v, csumOk, now) : icmpv6Error(this, v, csumOk, now);
      if (r !== ICMP_NOT_ERROR) {
        this.icmpVerdict(ctx, r);
        return NF_ACCEPT;
      }
    } else if (v.malformed !== 0) {
      this.stats.invalid++;
      return NF_ACCEPT;
    } else if (!this.checksumOk(ctx, v)) {
      this.logInvalid(v, 'bad checksum');
      this.stats.invalid++;
      return NF_ACCEPT;
    }

    const tr = this.byProto[proto];
    if (!tr.validate(this, v)) {
      this.stats.invalid++;
      return NF_ACCEPT;
    }
    const key = this.key;
    if (!tupleFromView(v, key, 0)) {
      this.stats.invalid++;
      return NF_ACCEPT;
    }
    const h = this.hkey.hashTuple(key, 0);
    const tb = this.table;

    for (let attempt = 0; ; attempt++) {
      const node = this.findOrClaim(key, h, now);
      let e: number;
      let dir: number;
      let isNew = false;
      if (node < 0) {
        e = this.initConntrack(ctx, h, now);
        if (e === -1) {
          this.stats.invalid++;
          return NF_ACCEPT;
        }
        if (e === -2) return NF_DROP;
        dir = 0;
        isNew = true;
      } else {
        e = node >> 1;
        dir = node & 1;
      }
      const st = tb.status(e);
      const ctinfo = dir === 1 ? IP_CT_ESTABLISHED_REPLY : st & IPS_SEEN_REPLY ? IP_CT_ESTABLISHED : st & IPS_EXPECTED ? IP_CT_RELATED : IP_CT_NEW;
      if (isNew && !tr.newConnection(this, e, v, now)) {
        this.destroy(e);
        this.stats.invalid++;
        return NF_ACCEPT;
      }
      const gen = tb.gen[e];
      const ret = tr.packet(this, e, dir, ctinfo, v, now);
      const alive = tb.gen[e] === gen && tb.isAlloc(e);
      if (ret === PKT_REPEAT) {
        // the tracker killed the old entry (TCP reopening a closed connection): start over
        if (alive && isNew) this.destroy(e);
        if (attempt < 2) continue;
        this.stats.invalid++;
        return NF_ACCEPT;
      }
      if (ret === PKT_INVALID || ret === PKT_DROP) {
        if (alive && isNew) this.destroy(e);
        this.stats.invalid++;
        if (ret === PKT_DROP) {
          this.stats.drop++;
          return NF_DROP;
        }
        return NF_ACCEPT;
      }
      // PKT_ACCEPT / PKT_IGNORE
      ctx.ctinfo = ctinfo;
      ctx.ctstate = ctstateBit(ctinfo);
      if (!alive) {
        // the tracker removed the entry while accepting the packet (RST before any reply);
        // the kernel's skb still holds the ct, with its mark
        ctx.ctstatus = st;
        ctx.ctmark = tb.mark[e];
        return NF_ACCEPT;
      }
      if (ctinfo === IP_CT_ESTABLISHED_REPLY) tb.setStatus(e, tb.status(e) | IPS_SEEN_REPLY);
      ctx.entry = e;
      ctx.ctstatus = tb.status(e);
      ctx.masterHelper = tb.masterHelper[e];
      ctx.ctmark = tb.mark[e];
      ctx.unconfirmed = isNew ? 1 : 0;
      return NF_ACCEPT;
    }
  }

  /**
   * After the rules accepted the packet: run the entry's helper, confirm an
   * unconfirmed entry (nf_confirm → __nf_conntrack_confirm). NF_ACCEPT or NF_DROP.
   */
  confirm(ctx: PacketContext, now: number): number {
    let e = ctx.entry;
    if (e < 0) return NF_ACCEPT;
    const tb = this.table;
    const ctinfo = ctx.ctinfo;
    const hid = tb.helper[e];
    if (hid !== 0 && (ctinfo === IP_CT_ESTABLISHED || ctinfo === IP_CT_ESTABLISHED_REPLY)) {
      const helper = this.helpers[hid];
      const v = ctx.view;
      if (helper !== undefined && (helper.protonum !== IPPROTO_TCP || v.payloadLen > 0)) {
        const dir = ctinfo === IP_CT_ESTABLISHED_REPLY ? 1 : 0;
        if (helper.help(this, e, dir, ctinfo, v, now) === PKT_DROP) {
          if (ctx.unconfirmed) this.abort(ctx);
          return NF_DROP;
        }
      }
    }
    if (ctx.unconfirmed) {
      ctx.unconfirmed = 0;
      e = this.insertEntry(e, now);
      ctx.entry = e;
      if (e < 0) return NF_DROP;
      ctx.ctstatus = tb.status(e);
    }
    return NF_ACCEPT;
  }

  /** The rules dropped the packet: an entry it created goes away unconfirmed. */
  abort(ctx: PacketContext): void {
    const e = ctx.entry;
    if (ctx.unconfirmed && e >= 0 && this.table.isAlloc(e) && (this.table.status(e) & IPS_CONFIRMED) === 0) {
      this.destroy(e);
      ctx.entry = -1;
    }
    ctx.unconfirmed = 0;
  }

  /** Checksums are verified (nf_conntrack_checksum) unless locally generated or already verified / not ready (offload). */
  private checksumOk(ctx: PacketContext, v: PacketView): boolean {
    return (
      this.tun.nf_conntrack_checksum === 0 ||
      ctx.hook === NF_INET_LOCAL_OUT ||
      (ctx.pktFlags & (PKTF_CSUM_NOT_READY | PKTF_CSUM_VERIFIED)) !== 0 ||
      verifyL4Checksum(v)
    );
  }

  /** The outcome of icmpv4Error / icmpv6Error other than ICMP_NOT_ERROR into ctx. */
  private icmpVerdict(ctx: PacketContext, r: number): void {
    if (r === ICMP_UNTRACKED) {
      ctx.ctinfo = IP_CT_UNTRACKED;
      ctx.ctstate = CTSTATE_UNTRACKED;
    } else if (r >= 0) {
      const e = r >> 1;
      const ctinfo = (r & 1) === 0 ? IP_CT_RELATED : IP_CT_RELATED_REPLY;
      ctx.entry = e;
      ctx.ctinfo = ctinfo;
      ctx.ctstate = ctstateBit(ctinfo);
      ctx.ctstatus = this.table.status(e);
      ctx.masterHelper = this.table.masterHelper[e];
    }
  }

  // ---------------------------------------------------------------- table ops

  /**
   * Look up a tuple (hash h) among confirmed entries: the node (2e + dir) or -1.
   * Expired entries met on the way are reaped. One record (cache line) per node.
   */
  private find(k: Uint32Array, h: number, now: number): number {
    const tb = this.table;
    const b = tb.bucketOf(h);
    for (;;) {
      const rec = tb.rec;
      const recf = tb.recf;
      let n = tb.heads[b] - 1;
      let reaped = false;
      while (n >= 0) {
        const e = n >> 1;
        if (recf[timeoutIndex(e)] <= now) {
          this.destroy(e);
          reaped = true;
          break;
        }
        if (nodeEquals(rec, n, k)) return n;
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

  /** The keyed hash of a tuple (tuple.ts layout): prefetchBatch's input. */
  hashTuple(k: Uint32Array): number {
    return this.hkey.hashTuple(k, 0);
  }

  /** The keyed hash of a parsed packet's ORIG tuple (0 when it has none): prefetchBatch's input. */
  hashPacket(v: PacketView): number {
    const k = this.key3;
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
  private findOrClaim(k: Uint32Array, h: number, now: number): number {
    const node = this.find(k, h, now);
    return node < 0 && this.claimer !== undefined && this.claimer(k, now) ? this.find(k, h, now) : node;
  }

  /** IcmpErrorHost: the entry an ICMP error quotes. */
  findNode(key: Uint32Array, now: number): number {
    return this.findOrClaim(key, this.hkey.hashTuple(key, 0), now);
  }

  /**
   * init_conntrack for the tuple in this.key (hash h): returns the new,
   * unconfirmed entry, -1 when the tuple has no inverse (INVALID), -2 when the
   * packet must be dropped (table full, per-source limit).
   */
  private initConntrack(ctx: PacketContext, h: number, now: number): number {
    const key = this.key;
    const tb = this.table;
    const proto = key[T_META] & 0xff;
    const family = key[T_META] >>> 8;
    const rports = invertPorts(proto, key[T_PORTS]);
    if (rports < 0) return -1;

    const psMax = this.tun.per_source_max;
    if (psMax > 0 && !this.countingSources) this.startCountingSources();
    if (psMax > 0 && this.perSource.get(family, key, T_SRC) >= psMax) {
      this.stats.per_source_drop++;
      this.stats.drop++;
      this.ratelimit.warn(now, this.logger, PER_SOURCE_MSG);
      return -2;
    }
    const max = this.tun.nf_conntrack_max;
    const sh = this.shared;
    if (max !== 0 && (sh !== undefined ? Atomics.add(sh, 0, 1) + 1 : tb.count + 1) > max) {
      if (!this.earlyDrop(h, now)) {
        if (sh !== undefined) Atomics.sub(sh, 0, 1);
        this.gcEarlyDropLeft = tb.nbuckets;
        this.stats.drop++;
        this.ratelimit.warn(now, this.logger, TABLE_FULL_MSG);
        return -2;
      }
    } else if (max === 0 && sh !== undefined) Atomics.add(sh, 0, 1);
    if (max !== tb.limit) tb.reserve(max); // growth bound (0 = unlimited); reserves up to a raised max
    const e = tb.alloc();
    if (e < 0) {
      if (sh !== undefined) Atomics.sub(sh, 0, 1);
      this.stats.drop++;
      this.ratelimit.warn(now, this.logger, TABLE_FULL_MSG);
      return -2;
    }
    const rec = tb.rec;
    storeTuple(rec, e, key, rports);
    rec[recBase(e) + R_STATUS] = 0;
    tb.setTimeout(e, 0);
    tb.setCreated(e, now);
    tb.mark[e] = 0;
    tb.helper[e] = 0;
    tb.masterHelper[e] = 0;
    this.newRow = e;
    this.newHash = h;
    if (this.countingSources) this.perSource.inc(family, key, T_SRC);
    this.tun.nf_conntrack_count = tb.count;

    let expected = false;
    if (this.expectations.count > 0) {
      const x = this.expectations.find(key, 0, now, this.masterConfirmed);
      if (x >= 0) {
        const m = this.expectations.master[x];
        tb.setStatus(e, IPS_EXPECTED);
        tb.setMaster(e, m);
        tb.masterHelper[e] = tb.helper[m];
        tb.mark[e] = tb.mark[m];
        const xh = this.expectations.helper[x];
        if (xh !== 0) this.attachHelper(e, xh);
        this.stats.expect_new++;
        if ((this.expectations.flags[x] & NF_CT_EXPECT_PERMANENT) === 0) this.expectations.remove(x);
        expected = true;
      }
    }
    if (!expected && ctx.helper !== 0) {
      const hp = this.helpers[ctx.helper];
      if (hp !== undefined && hp.protonum === proto) {
        this.attachHelper(e, ctx.helper);
        tb.setStatus(e, tb.status(e) | IPS_HELPER);
      }
    }
    return e;
  }

  private attachHelper(e: number, id: number): void {
    const hp = this.helpers[id];
    if (hp === undefined) return;
    this.table.helper[e] = id;
    hp.init(e);
  }

  private nextRandom(): number {
    let x = this.rnd[0];
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rnd[0] = x;
    return this.rnd[0];
  }

  /**
   * __nf_conntrack_confirm for unconfirmed entry e: clash and chain-length checks
   * on both tuples' buckets, then insertion. Returns the entry the packet is now
   * attached to (e, or the existing entry after a resolved clash), or -1 (dropped).
   */
  private insertEntry(e: number, now: number): number {
    const tb = this.table;
    const maxChain = MIN_CHAINLEN + (this.nextRandom() % MAX_CHAINLEN);
    const k = this.key;
    let h0 = 0;
    let h1 = 0;
    for (let d = 0; d < 2; d++) {
      nodeTuple(tb.rec, 2 * e + d, k, 0);
      // the ORIG hash was computed for the lookup that created e (unless another entry came since)
      const h = d === 0 && e === this.newRow ? this.newHash : this.hkey.hashTuple(k, 0);
      if (d === 0) h0 = h;
      else h1 = h;
      let chainlen = 0;
      for (let n = tb.head(tb.bucketOf(h)); n >= 0; n = tb.next(n)) {
        if (nodeEquals(tb.rec, n, k)) {
          return this.resolveClash(e, n, d);
        }
        if (chainlen++ > maxChain) {
          this.stats.chaintoolong++;
          this.stats.insert_failed++;
          this.destroy(e);
          return -1;
        }
      }
    }
    tb.setStatus(e, tb.status(e) | IPS_CONFIRMED);
    tb.setTimeout(e, tb.timeout(e) + now);
    tb.insert(e, h0, h1);
    return e;
  }

  /** nf_ct_resolve_clash: our tuple of direction d equals node n of an existing entry. */
  private resolveClash(e: number, n: number, d: number): number {
    const tb = this.table;
    const proto = recProto(tb.rec, e);
    const existing = n >> 1;
    // without NAT the entries can be merged when the existing ORIG tuple is our ORIG tuple
    if (allowClash(proto) && d === 0 && (n & 1) === 0) {
      this.destroy(e);
      this.stats.clash_resolve++;
      return existing;
    }
    this.destroy(e);
    this.stats.drop++;
    this.stats.insert_failed++;
    return -1;
  }

  /**
   * early_drop: evict every non-ASSURED confirmed entry of the first of
   * NF_CT_EVICTION_RANGE buckets (from the new tuple's) that has any. Expired
   * entries met are reaped (not counted).
   */
  private earlyDrop(h: number, now: number): boolean {
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
    if (tb.isHashed(e)) tb.unlink(e);
    if (this.expectations.hasExpectations(e)) this.expectations.removeForMaster(e);
    if (this.countingSources) this.perSource.dec(recFamily(tb.rec, e), tb.rec, recBase(e) + T_SRC);
    if (e === this.newRow) this.newRow = -1;
    tb.free(e);
    if (this.shared !== undefined) Atomics.sub(this.shared, 0, 1);
    this.tun.nf_conntrack_count = tb.count;
  }

  // ---------------------------------------------------------------- GC

  /**
   * One incremental step of the garbage collector (gc_worker): scans buckets from
   * where the previous call stopped, at most `maxWork` buckets + entries, reaping
   * expired entries; while a GC-assisted early drop is pending and the table is
   * at least 95 % full, also evicts non-ASSURED entries and those the tracker
   * allows (tcp_can_early_drop). Also expires expectations. Returns the number of
   * entries removed.
   */
  gc(now: number, maxWork: number): number {
    const tb = this.table;
    let work = 0;
    let removed = 0;
    const max = this.tun.nf_conntrack_max;
    const max95 = Math.floor(max / 100) * 95;
    while (work < maxWork) {
      if (this.gcCursor >= tb.nbuckets) this.gcCursor = 0;
      const b = this.gcCursor;
      work++;
      const early = this.gcEarlyDropLeft > 0;
      for (let n = tb.head(b); n >= 0;) {
        work++;
        const e = n >> 1;
        const nx = tb.next(n);
        let kill = tb.timeout(e) <= now;
        if (!kill && early && max95 > 0 && this.globalCount() >= max95) {
          const st = tb.status(e);
          kill = (st & IPS_ASSURED) === 0 || this.byProto[recProto(tb.rec, e)].canEarlyDrop(e);
        }
        if (kill) {
          this.destroy(e);
          removed++;
          n = tb.head(b); // the chain changed: start the bucket again
        } else n = nx;
      }
      this.gcCursor = b + 1;
      if (early) this.gcEarlyDropLeft--;
    }
    this.expectations.expire(now, maxWork);
    return removed;
  }

  // ---------------------------------------------------------------- TrackerHost

  status(e: number): number {
    return this.table.status(e);
  }

  setStatusBits(e: number, bits: number): void {
    this.table.setStatus(e, this.table.status(e) | bits);
  }

  setTimeout(e: number, seconds: number, now: number): void {
    const tb = this.table;
    const st = tb.status(e);
    if (st & IPS_FIXED_TIMEOUT) return;
    tb.setTimeout(e, st & IPS_CONFIRMED ? now + seconds * 1000 : seconds * 1000);
  }

  timeoutLeft(e: number, now: number): number {
    const tb = this.table;
    return tb.status(e) & IPS_CONFIRMED ? (tb.timeout(e) - now) / 1000 : tb.timeout(e) / 1000;
  }

  /** Creation time in whole ms, read against the current packet's time (the table keeps 32 bits). */
  createdAt(e: number): number {
    const now = Math.floor(this.lastNow);
    return now - this.table.createdAge(e, now);
  }

  kill(e: number): void {
    if (this.table.isAlloc(e)) this.destroy(e);
  }

  logInvalid(pkt: PacketView, reason: string): void {
    if (this.logger === undefined || !logsInvalid(this.tun, pkt.proto)) return;
    let msg = `nf_ct_proto_${pkt.proto}: ${reason} SRC=${addrToString(pkt.ipVersion, pkt.src)} DST=${addrToString(pkt.ipVersion, pkt.dst)}`;
    if (pkt.proto === IPPROTO_TCP || pkt.proto === IPPROTO_UDP || pkt.proto === IPPROTO_UDPLITE) msg += ` SPT=${pkt.sport} DPT=${pkt.dport}`;
    else if (pkt.proto === IPPROTO_ICMP || pkt.proto === IPPROTO_ICMPV6) msg += ` TYPE=${pkt.icmpType} CODE=${pkt.icmpCode}`;
    else msg += ` PROTO=${pkt.proto}`;
    this.logger!.info(msg);
  }

  // ---------------------------------------------------------------- HelperHost

  family(e: number): number {
    return recFamily(this.table.rec, e);
  }

  proto(e: number): number {
    return recProto(this.table.rec, e);
  }

  tupleAddr(e: number, dir: number, which: number, out: Uint32Array): void {
    const off = addrWord(e, dir, which);
    const t = this.table.rec;
    out[0] = t[off];
    out[1] = t[off + 1];
    out[2] = t[off + 2];
    out[3] = t[off + 3];
  }

  /** The ports word (src.u << 16 | dst.u) of the tuple of direction dir. */
  portsWord(e: number, dir: number): number {
    return this.table.rec[portsIndex(e, dir)];
  }

  tuplePort(e: number, dir: number, which: number): number {
    const p = this.portsWord(e, dir);
    return which === 0 ? p >>> 16 : p & 0xffff;
  }

  expect(
    e: number,
    proto: number,
    src: Uint32Array | null,
    sport: number,
    dst: Uint32Array,
    dport: number,
    policy: { maxExpected: number; timeoutSec: number },
    now: number,
  ): boolean {
    const tb = this.table;
    if (!tb.isAlloc(e) || tb.helper[e] === 0) return false; // master without helper: -ESHUTDOWN
    const t = this.key2;
    t[T_META] = (this.family(e) << 8) | (proto & 0xff);
    let mask = 0;
    for (let i = 0; i < 4; i++) {
      t[T_SRC + i] = src ? src[i] >>> 0 : 0;
      t[T_DST + i] = dst[i] >>> 0;
    }
    if (src) mask |= EXP_MASK_SRC_ADDR;
    if (sport >= 0) mask |= EXP_MASK_SRC_PORT;
    t[T_PORTS] = (((sport >= 0 ? sport & 0xffff : 0) << 16) | (dport & 0xffff)) >>> 0;
    const r = this.expectations.add(e, t, 0, mask, 0, 0, 0, policy.maxExpected, policy.timeoutSec * 1000, this.tun.nf_conntrack_expect_max, now);
    if (r === EXP_TABLE_FULL) this.ratelimit.warn(now, this.logger, EXPECT_FULL_MSG);
    return r === EXP_OK;
  }

  log(msg: string): void {
    if (!this.logger) return;
    if (this.tun.nf_conntrack_log_invalid !== 0) this.logger.info(msg);
    else this.logger.debug(msg);
  }

  // ---------------------------------------------------------------- operations

  isConfirmed(e: number): boolean {
    return (this.table.status(e) & IPS_CONFIRMED) !== 0;
  }

  mark(e: number): number {
    return this.table.mark[e];
  }

  setMark(e: number, mark: number): void {
    this.table.mark[e] = mark >>> 0;
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
    };
  }

  /**
   * Insert an exported entry as confirmed. Returns its id, or -1 if it is
   * malformed, already present, expired, or the table is full.
   */
  importEntry(data: ConntrackEntryData, now: number): number {
    const tb = this.table;
    if (!data || !Array.isArray(data.tuple) || data.tuple.length !== TUPLE_WORDS) return -1;
    if (!(data.timeoutMs > 0)) return -1;
    const key = this.key;
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
    // the reply tuple must not clash either
    const rk = this.key2;
    nodeTuple(tb.rec, 2 * e + 1, rk, 0);
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
    if (this.countingSources) this.perSource.inc(family, key, T_SRC);
    tb.insert(e, h, hr);
    this.tun.nf_conntrack_count = tb.count;
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
  private startCountingSources(): void {
    const tb = this.table;
    this.perSource.clear();
    for (let e = 0; e < tb.highWater; e++) {
      if (!tb.isAlloc(e)) continue;
      this.perSource.inc(recFamily(tb.rec, e), tb.rec, recBase(e) + T_SRC);
    }
    this.countingSources = true;
  }
}
