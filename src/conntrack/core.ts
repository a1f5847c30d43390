/**
 * The per-packet path of nf_conntrack_core.c: nf_conntrack_in (resolve_normal_ct,
 * init_conntrack, the protocol tracker, the ICMP error path of proto/icmp*.ts) before the rules,
 * nf_confirm / __nf_conntrack_confirm (helper, clash and chain-length checks, insertion) after
 * an ACCEPT, and the discard of an unconfirmed entry after a DROP.
 *
 * Conntrack is the top of the layers described in entries.ts; everything else it offers (lookups,
 * GC, the tracker and helper hosts, listings, export/import) comes from the files below it.
 * Hot path: integers and typed arrays, no allocation per packet.
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_NONE, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, type PacketView } from '../packet/view';
import { verifyL4Checksum } from '../packet/checksum';
import { NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, PKTF_CSUM_NOT_READY, PKTF_CSUM_VERIFIED, VERDICT_SET_PAYLOAD } from '../queue/layout';
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
  IPS_DST_NAT,
  IPS_HELPER,
  IPS_NAT_DONE_MASK,
  IPS_NAT_MASK,
  IPS_SRC_NAT,
  IPS_SEEN_REPLY,
  PKT_DROP,
  PKT_INVALID,
  PKT_REPEAT,
  ctstateBit,
} from './constants';
import type { PacketContext } from './context';
import { NF_CT_EXPECT_PERMANENT } from './expect';
import { R_STATUS, TUPLE_WORDS, T_META, T_PORTS, T_SRC, nodeEquals, nodeTuple, recBase, recProto, storeTuple } from './layout';
import { admissionLimit } from './mgmt';
import { ConntrackNat, NAT_MANIP_DST, NAT_MANIP_SRC, NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED, NatRange } from './nat';
import { ICMP_NOT_ERROR, ICMP_UNTRACKED, icmpv4Error } from './proto/icmp';
import { icmpv6Error } from './proto/icmpv6';
import { IPS_SEQ_ADJUST } from './seqadj';
import { invertPorts, invertTuple, tupleFromView } from './tuple';
import { F_PENDING } from './table';

/** The loopback device's ifindex (registered first in every network namespace). */
const LOOPBACK_IFINDEX = 1;

export const TABLE_FULL_MSG = 'nf_conntrack: table full, dropping packet';
export const PER_SOURCE_MSG = 'nfqwall: per-source limit reached, dropping packet';

/** MIN_CHAINLEN / MAX_CHAINLEN of __nf_conntrack_confirm: limit drawn from [50, 80) */
const MIN_CHAINLEN = 50;
const MAX_CHAINLEN = 30;

/** Protocols with allow_clash (UDP, UDP-Lite, ICMP, ICMPv6). */
function allowClash(proto: number): boolean {
  return proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6;
}

export class Conntrack extends ConntrackNat {
  /** the packet's tuple (scratch) */
  private readonly key = new Uint32Array(TUPLE_WORDS);
  /** the hash of newRow's ORIG tuple, for its confirm */
  private newHash = 0;
  /** nf_nat_follow_master's range (scratch) */
  private readonly followRange = new NatRange();
  /** the packet's tuple inverted (resume) */
  private readonly invKey = new Uint32Array(TUPLE_WORDS);
  /** the entry insertEntry last inserted (not an existing one a clash resolved to) */
  private lastInserted = -1;
  private readonly masterConfirmed = (m: number): boolean => (this.table.status(m) & IPS_CONFIRMED) !== 0;

  /**
   * nf_conntrack_in: resolve the packet's entry, run the tracker, fill ctx.
   * Returns NF_ACCEPT, or NF_DROP when conntrack itself drops the packet.
   */
  in(ctx: PacketContext, now: number): number {
    this.clearCt(ctx, now);
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
      this.logInvalid(v, this.byProto[proto].badChecksumReason ?? 'bad checksum');
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
      const ev = this.events;
      const stateBefore = ev !== undefined && !isNew ? tr.stateName(e) : '';
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
      if (ev !== undefined && !isNew && (((tb.status(e) ^ st) & (IPS_SEEN_REPLY | IPS_ASSURED)) !== 0 || tr.stateName(e) !== stateBefore)) ev.changed(e);
      ctx.entry = e;
      ctx.ctstatus = tb.status(e);
      ctx.masterHelper = tb.masterHelper[e];
      ctx.ctmark = tb.mark[e];
      ctx.unconfirmed = isNew ? 1 : 0;
      return NF_ACCEPT;
    }
  }

  /** ctx's conntrack fields before a lookup: no entry, INVALID. */
  private clearCt(ctx: PacketContext, now: number): void {
    ctx.entry = -1;
    ctx.ctinfo = IP_CT_NONE;
    ctx.ctstate = CTSTATE_INVALID;
    ctx.ctstatus = 0;
    ctx.masterHelper = 0;
    ctx.unconfirmed = 0;
    ctx.pending = 0;
    this.lastNow = now;
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
        this.helpCtx = ctx;
        const hr = helper.help(this, e, dir, ctinfo, v, now);
        this.helpCtx = null;
        if (hr === PKT_DROP) {
          if (ctx.unconfirmed) this.abort(ctx);
          return NF_DROP;
        }
      }
    }
    if ((tb.status(e) & IPS_SEQ_ADJUST) !== 0 && ctinfo !== IP_CT_RELATED_REPLY && this.seqAdjust(ctx, e) < 0) {
      this.stats.drop++;
      if (ctx.unconfirmed) this.abort(ctx);
      return NF_DROP;
    }
    if (ctx.unconfirmed) {
      ctx.unconfirmed = 0;
      e = this.insertEntry(e, now);
      ctx.entry = e;
      if (e < 0) return NF_DROP;
      if (this.events !== undefined) this.events.created(e);
      ctx.ctstatus = tb.status(e);
    } else if (ctx.pending) {
      ctx.pending = 0;
      tb.flags[e] &= ~F_PENDING;
    }
    return NF_ACCEPT;
  }

  /**
   * nf_confirm's nf_ct_seq_adjust, after the helper: the packet's seq/ack (and SACK edges) moved
   * by the offsets of the payload a NAT helper resized, the bytes then go back in the verdict.
   * Only TCP packets (the kernel would also run it on an ICMP error of the original direction,
   * reading the ICMP header as TCP); not a packet that came in over loopback
   * (nf_is_loopback_packet). -1: malformed options, the packet is dropped.
   */
  private seqAdjust(ctx: PacketContext, e: number): number {
    const v = ctx.view;
    if (v.proto !== IPPROTO_TCP || v.malformed !== 0 || (ctx.hook === NF_INET_LOCAL_IN && ctx.indev === LOOPBACK_IFINDEX)) return 0;
    const dir = ctx.ctinfo === IP_CT_ESTABLISHED_REPLY ? 1 : 0;
    const r = this.seqadj.adjust(v, e, dir, (ctx.pktFlags & PKTF_CSUM_NOT_READY) !== 0);
    if (r > 0) ctx.verdictFlags |= VERDICT_SET_PAYLOAD;
    return r;
  }

  /** The rules dropped the packet: an entry it created goes away unconfirmed (or pending: hashed at the pre-routing crossing). */
  abort(ctx: PacketContext): void {
    const e = ctx.entry;
    const tb = this.table;
    if (ctx.unconfirmed && e >= 0 && tb.isAlloc(e) && (tb.status(e) & IPS_CONFIRMED) === 0) {
      this.destroy(e);
      ctx.entry = -1;
    } else if (ctx.pending && e >= 0 && tb.isAlloc(e) && (tb.flags[e] & F_PENDING) !== 0) {
      this.destroy(e);
      ctx.entry = -1;
    }
    ctx.unconfirmed = 0;
    ctx.pending = 0;
  }

  /**
   * The pre-routing crossing accepted the first packet of a new entry: it is hashed now, so
   * that the packet's second crossing (and the next packets) find it, and marked F_PENDING
   * until that crossing decides the packet (confirm clears the mark, abort destroys the entry).
   */
  confirmEarly(ctx: PacketContext, now: number): number {
    if (!ctx.unconfirmed) return NF_ACCEPT;
    ctx.unconfirmed = 0;
    const e = this.insertEntry(ctx.entry, now);
    ctx.entry = e;
    if (e < 0) return NF_DROP;
    const tb = this.table;
    if (e === this.lastInserted) tb.flags[e] |= F_PENDING;
    ctx.ctstatus = tb.status(e);
    return NF_ACCEPT;
  }

  /**
   * The second crossing of a packet tracked at the pre-routing crossing in direction dir: its
   * entry found again from the packet's tuple as that crossing left it (destination rewritten:
   * the ORIG direction's (orig src → reply src), the REPLY's (reply src → orig src)), without
   * running the tracker again; ctx filled as in(). No entry (gone since): ctx stays INVALID.
   * An entry both SNATed and DNATed (hairpin) has neither tuple: it is found in ConntrackNat's
   * crossing index (TCP/UDP; a hairpin ICMP echo is not found after its first packet). Not found:
   * counted in nat_drop, the pipeline drops the packet.
   */
  resume(ctx: PacketContext, dir: number, now: number): void {
    this.clearCt(ctx, now);
    const v = ctx.view;
    const key = this.key;
    if (v.malformed !== 0 || v.fragOffset !== 0 || !tupleFromView(v, key, 0)) return;
    const tb = this.table;
    // the node that tuple must be, and the NAT bits its entry must (not) have
    let n = this.find(key, this.hkey.hashTuple(key, 0), now);
    let e = -1;
    if (n >= 0 && (n & 1) === dir && (tb.status(n >> 1) & (dir === 0 ? IPS_DST_NAT : IPS_SRC_NAT)) === 0) e = n >> 1;
    else {
      const inv = this.invKey;
      if (!invertTuple(key, 0, inv, 0)) return;
      n = this.find(inv, this.hkey.hashTuple(inv, 0), now);
      if (n >= 0 && (n & 1) !== dir) {
        const st = tb.status(n >> 1) & IPS_NAT_MASK;
        if (st === (dir === 0 ? IPS_DST_NAT : IPS_SRC_NAT)) e = n >> 1;
      }
      // both SNATed and DNATed: the crossing tuple is the ORIG packet's, the REPLY's inverted
      if (e < 0) e = this.mixFind(dir === 0 ? key : inv, now);
    }
    if (e < 0) {
      this.stats.nat_drop++;
      return;
    }
    const st = tb.status(e);
    const ctinfo = dir === 1 ? IP_CT_ESTABLISHED_REPLY : st & IPS_SEEN_REPLY ? IP_CT_ESTABLISHED : st & IPS_EXPECTED ? IP_CT_RELATED : IP_CT_NEW;
    ctx.entry = e;
    ctx.ctinfo = ctinfo;
    ctx.ctstate = ctstateBit(ctinfo);
    ctx.ctstatus = st;
    ctx.masterHelper = tb.masterHelper[e];
    ctx.ctmark = tb.mark[e];
    ctx.pending = (tb.flags[e] & F_PENDING) !== 0 ? 1 : 0;
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
      // the error's skb is attached to the entry (nf_ct_set), so its mark is the entry's
      ctx.ctmark = this.table.mark[e];
    }
  }

  /**
   * init_conntrack for the tuple in this.key (hash h): returns the new,
   * unconfirmed entry, -1 when the tuple has no inverse (INVALID), -2 when the
   * packet must be dropped (table full, per-source limit).
   */
  protected initConntrack(ctx: PacketContext, h: number, now: number): number {
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
    const limit = admissionLimit(this.tun, ctx.hook, key);
    const sh = this.shared;
    if (limit !== 0 && (sh !== undefined ? Atomics.add(sh, 0, 1) + 1 : tb.count + 1) > limit) {
      if (!this.earlyDrop(h, now)) {
        if (sh !== undefined) Atomics.sub(sh, 0, 1);
        this.gcEarlyDropLeft = tb.nbuckets;
        this.stats.drop++;
        this.ratelimit.warn(now, this.logger, TABLE_FULL_MSG);
        return -2;
      }
    } else if (limit === 0 && sh !== undefined) Atomics.add(sh, 0, 1);
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
        const natDir = this.expectations.natDir[x];
        const saved = this.expectations.savedPort[x];
        if ((this.expectations.flags[x] & NF_CT_EXPECT_PERMANENT) === 0) this.expectations.remove(x);
        expected = true;
        if (natDir >= 0 && !this.natFollowMaster(e, m, natDir, saved, now)) {
          this.destroy(e);
          return -2;
        }
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

  /**
   * nf_nat_follow_master (the expectfn of a NATed helper's expectation): the new entry e of
   * master m gets its source mapped to where the master sends to (the destination of m's
   * tuple of direction !expDir) and its destination to the master's peer (the source of that
   * tuple) at the announced port. False when no binding could be made (the packet and entry
   * are dropped, as the kernel's confirm would).
   */
  private natFollowMaster(e: number, m: number, expDir: number, savedPort: number, now: number): boolean {
    const r = this.followRange;
    r.flags = NF_NAT_RANGE_MAP_IPS;
    this.tupleAddr(m, expDir ^ 1, 1, r.minAddr);
    r.maxAddr.set(r.minAddr);
    if (!this.natSetup(e, r, NAT_MANIP_SRC, now)) return false;
    r.flags = NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED;
    r.minProto = r.maxProto = savedPort;
    this.tupleAddr(m, expDir ^ 1, 0, r.minAddr);
    r.maxAddr.set(r.minAddr);
    return this.natSetup(e, r, NAT_MANIP_DST, now);
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
      nodeTuple(tb.rec, tb.nat, 2 * e + d, k, 0);
      // the ORIG hash was computed for the lookup that created e (unless another entry came since)
      const h = d === 0 && e === this.newRow ? this.newHash : this.hkey.hashTuple(k, 0);
      if (d === 0) h0 = h;
      else h1 = h;
      let chainlen = 0;
      for (let n = tb.head(tb.bucketOf(h)); n >= 0; n = tb.next(n)) {
        if (nodeEquals(tb.rec, tb.nat, n, k)) {
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
    this.lastInserted = e;
    return e;
  }

  private sameReply(a: number, b: number): boolean {
    const tb = this.table;
    const k = this.key;
    nodeTuple(tb.rec, tb.nat, 2 * a + 1, k, 0);
    return nodeEquals(tb.rec, tb.nat, 2 * b + 1, k);
  }

  /** nf_ct_resolve_clash: our tuple of direction d equals node n of an existing entry. */
  private resolveClash(e: number, n: number, d: number): number {
    const tb = this.table;
    const proto = recProto(tb.rec, e);
    const existing = n >> 1;
    // __nf_ct_resolve_clash: merged when the existing ORIG tuple is ours and the existing entry
    // has no NAT binding, or the same REPLY tuple (nf_ct_match)
    if (allowClash(proto) && d === 0 && (n & 1) === 0 && ((tb.status(existing) & IPS_NAT_DONE_MASK) === 0 || this.sameReply(e, existing))) {
      this.destroy(e);
      this.stats.clash_resolve++;
      return existing;
    }
    this.destroy(e);
    this.stats.drop++;
    this.stats.insert_failed++;
    return -1;
  }
}
