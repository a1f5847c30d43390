/**
 * NAT bindings in the connection table, as nf_nat_core.c builds them on nf_conntrack: a binding
 * is the entry's REPLY tuple (nf_conntrack_alter_reply) plus the IPS_SRC_NAT / IPS_DST_NAT and
 * …_DONE status bits; every packet of either direction is then rewritten from the two tuples
 * (nf_nat_packet / nf_nat_manip_pkt). Tuple selection is get_unique_tuple's: the original tuple
 * when it is free and in range, the address by a hash of the source (and the destination unless
 * --persistent) over the range, the port by the kernel's classes and a random offset with
 * bounded attempts. Not done here: find_appropriate_src (the bysource hash reusing an existing
 * mapping of the same source address and port: nfqwall maps such a flow afresh, which keeps
 * its port when free, as that lookup would in the common case).
 *
 * A layer of the Conntrack object (see entries.ts): ConntrackOps → ConntrackNat → Conntrack.
 * Everything here is integers and typed arrays: no allocation per packet.
 */
import { bswap32, jhashAddr, reciprocalScale } from './jhash';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/view';
import { rewriteEndpoint } from '../packet/rewrite';
import { PKTF_TRUNCATED, VERDICT_SET_PAYLOAD } from '../queue/layout';
import { IPS_DST_NAT, IPS_DST_NAT_DONE, IPS_NAT_MASK, IPS_SRC_NAT, IPS_SRC_NAT_DONE } from './constants';
import type { PacketContext } from './context';
import {
  NAT_MASQ_WORD,
  R_RPORTS,
  TUPLE_WORDS,
  T_DST,
  T_META,
  T_PORTS,
  T_SRC,
  nodeEquals,
  nodeTuple,
  recBase,
  recProto,
  storeNatReply,
  timeoutIndex,
} from './layout';
import { ConntrackOps } from './ops';
import { invertTuple, tupleEquals } from './tuple';

/** enum nf_nat_manip_type */
export const NAT_MANIP_SRC = 0;
export const NAT_MANIP_DST = 1;

/** nf_nat_range2 flags (include/uapi/linux/netfilter/nf_nat.h) */
export const NF_NAT_RANGE_MAP_IPS = 1 << 0;
export const NF_NAT_RANGE_PROTO_SPECIFIED = 1 << 1;
export const NF_NAT_RANGE_PROTO_RANDOM = 1 << 2;
export const NF_NAT_RANGE_PERSISTENT = 1 << 3;
export const NF_NAT_RANGE_PROTO_RANDOM_FULLY = 1 << 4;
export const NF_NAT_RANGE_PROTO_OFFSET = 1 << 5;
export const NF_NAT_RANGE_NETMAP = 1 << 6;
const NF_NAT_RANGE_PROTO_RANDOM_ALL = NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PROTO_RANDOM_FULLY;

/** NF_NAT_MAX_ATTEMPTS */
const NAT_MAX_ATTEMPTS = 128;

/** struct nf_nat_range2: addresses as 4 words each (IPv4: word 0), ports / ICMP ids as numbers. */
export class NatRange {
  flags = 0;
  readonly minAddr = new Uint32Array(4);
  readonly maxAddr = new Uint32Array(4);
  minProto = 0;
  maxProto = 0;
  baseProto = 0;

  copyFrom(r: NatRange): void {
    this.flags = r.flags;
    this.minAddr.set(r.minAddr);
    this.maxAddr.set(r.maxAddr);
    this.minProto = r.minProto;
    this.maxProto = r.maxProto;
    this.baseProto = r.baseProto;
  }
}

/**
 * Protocols whose tuple carries ports that NAT maps (nf_nat_l4proto_unique_tuple's case; SCTP
 * and DCCP are tracked by nfqwall without ports, so NAT maps only their addresses).
 */
function natPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE;
}

/** The port (manip SRC: source, DST: destination) or ICMP id of tuple t@o. */
function manipPort(t: Uint32Array, o: number, proto: number, manip: number): number {
  const p = t[o + T_PORTS];
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) return p >>> 16;
  return manip === NAT_MANIP_SRC ? p >>> 16 : p & 0xffff;
}

function setManipPort(t: Uint32Array, o: number, proto: number, manip: number, port: number): void {
  const p = t[o + T_PORTS];
  t[o + T_PORTS] =
    proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6 || manip === NAT_MANIP_SRC ? ((port << 16) | (p & 0xffff)) >>> 0 : ((p & 0xffff0000) | port) >>> 0;
}

/** Compares address words a@ao and b@bo (n words) as unsigned big-endian numbers: <0, 0, >0. */
function addrCmp(a: Uint32Array, ao: number, b: Uint32Array, bo: number, n: number): number {
  for (let i = 0; i < n; i++) {
    const x = a[ao + i] >>> 0;
    const y = b[bo + i] >>> 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export class ConntrackNat extends ConntrackOps {
  /** the current tuple (inverse of the REPLY tuple), the candidate, and the inverse of a candidate */
  private readonly natCur = new Uint32Array(TUPLE_WORDS);
  private readonly natNew = new Uint32Array(TUPLE_WORDS);
  private readonly natInv = new Uint32Array(TUPLE_WORDS);
  private readonly natTarget = new Uint32Array(TUPLE_WORDS);
  /** the null binding's range (nf_nat_alloc_null_binding) */
  private readonly nullRange = new NatRange();

  /**
   * Entries both SNATed and DNATed (hairpin), by the hash of their crossing tuple (orig src:port
   * → reply src:port, what the filter crossing sees of either direction after the pre-routing
   * one rewrote its destination; no other node of theirs has it): head entry + 1, chained
   * through ConnTable.mixNext. TCP/UDP/UDP-Lite only.
   */
  private readonly mixHeads = new Map<number, number>();
  private readonly mixKey = new Uint32Array(TUPLE_WORDS);

  /** The crossing tuple of entry e into k (see mixHeads). */
  private mixTuple(e: number, k: Uint32Array): void {
    const tb = this.table;
    nodeTuple(tb.rec, tb.nat, 2 * e, k, 0);
    const r = e * TUPLE_WORDS;
    for (let i = 0; i < 4; i++) k[T_DST + i] = tb.nat[r + T_SRC + i];
    k[T_PORTS] = ((k[T_PORTS] & 0xffff0000) | (tb.rec[recBase(e) + R_RPORTS] >>> 16)) >>> 0;
  }

  private mixHash(k: Uint32Array): number {
    return this.hkey.hashTuple(k, 0) & 0x3fffffff;
  }

  private mixInsert(e: number): void {
    const k = this.mixKey;
    this.mixTuple(e, k);
    const h = this.mixHash(k);
    this.table.mixNext[e] = this.mixHeads.get(h) ?? 0;
    this.mixHeads.set(h, e + 1);
  }

  private mixRemove(e: number): void {
    const tb = this.table;
    const k = this.mixKey;
    this.mixTuple(e, k);
    const h = this.mixHash(k);
    let p = this.mixHeads.get(h) ?? 0;
    if (p === e + 1) {
      const nx = tb.mixNext[e];
      if (nx === 0) this.mixHeads.delete(h);
      else this.mixHeads.set(h, nx);
    } else {
      while (p !== 0) {
        const q = tb.mixNext[p - 1];
        if (q === e + 1) {
          tb.mixNext[p - 1] = tb.mixNext[e];
          break;
        }
        p = q;
      }
    }
    tb.mixNext[e] = 0;
  }

  /** The hairpin entry whose crossing tuple is k, -1 if none (expired entries do not count). */
  protected mixFind(k: Uint32Array, now: number): number {
    if (this.mixHeads.size === 0) return -1;
    const tb = this.table;
    const t = this.mixKey;
    for (let p = this.mixHeads.get(this.mixHash(k)) ?? 0; p !== 0; p = tb.mixNext[p - 1]) {
      const e = p - 1;
      if (tb.timeout(e) <= now) continue;
      this.mixTuple(e, t);
      if (tupleEquals(t, 0, k, 0)) return e;
    }
    return -1;
  }

  override destroy(e: number): void {
    if ((this.table.status(e) & IPS_NAT_MASK) === IPS_NAT_MASK && natPorts(recProto(this.table.rec, e))) this.mixRemove(e);
    super.destroy(e);
  }

  /** Whether entry e has its binding of manip type `manip` (nf_nat_initialized). */
  natInitialized(e: number, manip: number): boolean {
    return (this.table.status(e) & (manip === NAT_MANIP_SRC ? IPS_SRC_NAT_DONE : IPS_DST_NAT_DONE)) !== 0;
  }

  /**
   * nf_nat_setup_info: bind entry e (not yet through its first packet's last NAT hook) for
   * manip type `manip` within `range`. The REPLY tuple changes when the chosen tuple differs
   * from the current one (a hashed entry's REPLY node is moved to its new chain). Returns false
   * when the chosen REPLY tuple is another entry's (the range is exhausted, or a clash): the
   * caller drops the packet and the entry, as the kernel's confirm would (counted in nat_drop).
   */
  natSetup(e: number, range: NatRange, manip: number, now: number): boolean {
    const tb = this.table;
    const cur = this.natCur;
    const nw = this.natNew;
    nodeTuple(tb.rec, tb.nat, 2 * e + 1, this.natInv, 0);
    invertTuple(this.natInv, 0, cur, 0);
    this.uniqueTuple(nw, cur, range, e, manip, now);
    const st = tb.status(e);
    if (!tupleEquals(nw, 0, cur, 0)) {
      const reply = this.natInv;
      invertTuple(nw, 0, reply, 0);
      const hashed = tb.isHashed(e);
      const mixed = (st & IPS_NAT_MASK) === IPS_NAT_MASK && natPorts(reply[T_META] & 0xff);
      if (mixed) this.mixRemove(e);
      if (hashed) tb.unlinkNode(2 * e + 1);
      storeNatReply(tb.rec, tb.nat, e, reply, 0);
      const nst = st | (manip === NAT_MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT);
      tb.setStatus(e, nst);
      if (hashed) tb.linkNode(2 * e + 1, this.hkey.hashTuple(reply, 0));
      if ((nst & IPS_NAT_MASK) === IPS_NAT_MASK && natPorts(reply[T_META] & 0xff)) this.mixInsert(e);
    }
    tb.setStatus(e, tb.status(e) | (manip === NAT_MANIP_SRC ? IPS_SRC_NAT_DONE : IPS_DST_NAT_DONE));
    nodeTuple(tb.rec, tb.nat, 2 * e + 1, this.natInv, 0);
    if (this.tupleTaken(this.natInv, e, now)) {
      this.stats.nat_drop++;
      this.stats.drop++;
      return false;
    }
    return true;
  }

  /** nf_nat_alloc_null_binding: bind e to its current address (a port may still move when its tuple is taken). */
  natNullBinding(e: number, manip: number, now: number): boolean {
    const tb = this.table;
    const r = this.nullRange;
    r.flags = NF_NAT_RANGE_MAP_IPS;
    nodeTuple(tb.rec, tb.nat, 2 * e + 1, this.natInv, 0);
    const at = manip === NAT_MANIP_SRC ? T_DST : T_SRC;
    for (let i = 0; i < 4; i++) r.minAddr[i] = r.maxAddr[i] = this.natInv[at + i];
    return this.natSetup(e, r, manip, now);
  }

  /** The output interface entry e was masqueraded to (0 = none): its entries die with the interface's address. */
  masqIndex(e: number): number {
    return this.table.nat[e * TUPLE_WORDS + NAT_MASQ_WORD];
  }

  setMasqIndex(e: number, ifindex: number): void {
    this.table.masqUsed = true;
    this.table.nat[e * TUPLE_WORDS + NAT_MASQ_WORD] = ifindex;
  }

  /**
   * An address of interface ifindex went away (addr: its 4 words), or the interface went down
   * (addr null): the entries MASQUERADE bound to it die — for an address, those whose REPLY
   * destination it is (masq_inet_event / inet_cmp, masq_device_event). Returns how many.
   */
  masqueradeGone(ifindex: number, addr: Uint32Array | null): number {
    const tb = this.table;
    const t = this.natInv;
    let n = 0;
    for (let e = 0; e < tb.highWater; e++) {
      if (!tb.isAlloc(e) || tb.nat[e * TUPLE_WORDS + NAT_MASQ_WORD] !== ifindex) continue;
      if (addr !== null) {
        nodeTuple(tb.rec, tb.nat, 2 * e + 1, t, 0);
        const nw = t[T_META] >>> 8 === 4 ? 1 : 4;
        if (addrCmp(t, T_DST, addr, 0, nw) !== 0) continue;
      }
      this.destroy(e);
      n++;
    }
    return n;
  }

  /**
   * nf_nat_packet: rewrite the packet in ctx of direction dir of entry e for manip type `manip`
   * (the hook's: SRC at POSTROUTING / LOCAL_IN, DST at PREROUTING / LOCAL_OUT) when the binding
   * changes that side. Returns false when the packet would need a rewrite but cannot have one
   * (truncated by the queue): the caller drops it.
   */
  natPacket(ctx: PacketContext, e: number, dir: number, manip: number, full: boolean): boolean {
    const tb = this.table;
    if (!this.natRewrites(e, dir, manip)) return true;
    const t = this.natTarget;
    nodeTuple(tb.rec, tb.nat, 2 * e + (dir ^ 1), this.natInv, 0);
    invertTuple(this.natInv, 0, t, 0);
    const v = ctx.view;
    const proto = t[T_META] & 0xff;
    const port = natPorts(proto) || proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6 ? manipPort(t, 0, proto, manip) : -1;
    const which = manip === NAT_MANIP_SRC ? 0 : 1;
    const ao = which === 0 ? T_SRC : T_DST;
    if (v.malformed !== 0) return true;
    return this.rewrite(ctx, which, t, ao, port, full);
  }

  /** Whether packets of direction dir of entry e get a rewrite of manip type `manip` (nf_nat_packet's statusbit). */
  natRewrites(e: number, dir: number, manip: number): boolean {
    let bit = manip === NAT_MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT;
    if (dir === 1) bit ^= IPS_NAT_MASK;
    return (this.table.status(e) & bit) !== 0;
  }

  private rewrite(ctx: PacketContext, which: number, t: Uint32Array, ao: number, port: number, full: boolean): boolean {
    if ((ctx.pktFlags & PKTF_TRUNCATED) !== 0) return false;
    if (rewriteEndpoint(ctx.view, which, t, ao, port, full)) ctx.verdictFlags |= VERDICT_SET_PAYLOAD;
    return true;
  }

  // ------------------------------------------------------------- get_unique_tuple

  /** Is tuple k a node of an entry other than e (nf_conntrack_tuple_taken; expired entries do not count)? */
  protected tupleTaken(k: Uint32Array, e: number, now: number): boolean {
    const tb = this.table;
    const rec = tb.rec;
    const nat = tb.nat;
    const recf = tb.recf;
    for (let n = tb.head(tb.bucketOf(this.hkey.hashTuple(k, 0))); n >= 0; n = tb.next(n)) {
      const o = n >> 1;
      if (o === e || recf[timeoutIndex(o)] <= now) continue;
      if (nodeEquals(rec, nat, n, k)) return true;
    }
    return false;
  }

  /** nf_nat_used_tuple: is the REPLY tuple the candidate t implies taken by another entry? */
  private usedTuple(t: Uint32Array, e: number, now: number): boolean {
    const inv = this.natInv;
    invertTuple(t, 0, inv, 0);
    return this.tupleTaken(inv, e, now);
  }

  /** nf_in_range (the SRC manip's check of the original tuple) */
  private inRange(t: Uint32Array, range: NatRange): boolean {
    const nw = t[T_META] >>> 8 === 4 ? 1 : 4;
    if ((range.flags & NF_NAT_RANGE_MAP_IPS) !== 0) {
      if (addrCmp(t, T_SRC, range.minAddr, 0, nw) < 0 || addrCmp(t, T_SRC, range.maxAddr, 0, nw) > 0) return false;
    }
    if ((range.flags & NF_NAT_RANGE_PROTO_SPECIFIED) === 0) return true;
    return this.l4InRange(t, NAT_MANIP_SRC, range.minProto, range.maxProto);
  }

  private l4InRange(t: Uint32Array, manip: number, min: number, max: number): boolean {
    const proto = t[T_META] & 0xff;
    if (!natPorts(proto) && proto !== IPPROTO_ICMP && proto !== IPPROTO_ICMPV6) return true;
    const p = manipPort(t, 0, proto, manip);
    return p >= min && p <= max;
  }

  /** get_unique_tuple: the tuple the ORIG direction gets after this manip, into out. */
  private uniqueTuple(out: Uint32Array, orig: Uint32Array, range: NatRange, e: number, manip: number, now: number): void {
    const flags = range.flags;
    if (manip === NAT_MANIP_SRC && (flags & NF_NAT_RANGE_PROTO_RANDOM_ALL) === 0 && this.inRange(orig, range)) {
      if (!this.usedTuple(orig, e, now)) {
        out.set(orig);
        return;
      }
    }
    out.set(orig);
    this.bestIps(out, range, manip);
    if ((flags & NF_NAT_RANGE_PROTO_RANDOM_ALL) === 0) {
      if ((flags & NF_NAT_RANGE_PROTO_SPECIFIED) !== 0) {
        if (
          (flags & NF_NAT_RANGE_PROTO_OFFSET) === 0 &&
          this.l4InRange(out, manip, range.minProto, range.maxProto) &&
          (range.minProto === range.maxProto || !this.usedTuple(out, e, now))
        )
          return;
      } else if (!this.usedTuple(out, e, now)) return;
    }
    this.uniqueL4(out, range, manip, e, now);
  }

  /** find_best_ips_proto: the address by hash over the range. */
  private bestIps(t: Uint32Array, range: NatRange, manip: number): void {
    if ((range.flags & NF_NAT_RANGE_MAP_IPS) === 0) return;
    const at = manip === NAT_MANIP_SRC ? T_SRC : T_DST;
    const max = t[T_META] >>> 8 === 4 ? 0 : 3;
    if (addrCmp(range.minAddr, 0, range.maxAddr, 0, 4) === 0) {
      for (let i = 0; i < 4; i++) t[at + i] = range.minAddr[i];
      return;
    }
    const persistent = (range.flags & NF_NAT_RANGE_PERSISTENT) !== 0;
    let j = jhashAddr(t, T_SRC, persistent ? 0 : bswap32(t[T_DST + max]));
    let full = false;
    for (let i = 0; i <= max; i++) {
      let minip: number;
      let dist: number;
      if (!full) {
        minip = range.minAddr[i] >>> 0;
        dist = ((range.maxAddr[i] >>> 0) - minip + 1) >>> 0;
      } else {
        minip = 0;
        dist = 0xffffffff;
      }
      t[at + i] = (minip + reciprocalScale(j, dist)) >>> 0;
      if (t[at + i] !== range.maxAddr[i]) full = true;
      if (!persistent) j = (j ^ bswap32(t[T_DST + i])) >>> 0;
    }
  }

  /** nf_nat_l4proto_unique_tuple: a free port (ICMP: id) in the range or the port's class. */
  private uniqueL4(t: Uint32Array, range: NatRange, manip: number, e: number, now: number): void {
    const proto = t[T_META] & 0xff;
    const flags = range.flags;
    let min: number;
    let size: number;
    const icmp = proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6;
    if (icmp) {
      if ((flags & NF_NAT_RANGE_PROTO_SPECIFIED) === 0) {
        min = 0;
        size = 65536;
      } else {
        min = range.minProto;
        size = range.maxProto - range.minProto + 1;
      }
    } else if (natPorts(proto)) {
      if ((flags & NF_NAT_RANGE_PROTO_SPECIFIED) === 0) {
        if (manip === NAT_MANIP_DST) return; // a destination rewrite without ports keeps the port
        const p = manipPort(t, 0, proto, manip);
        if (p < 1024) {
          // loose convention: below 512 is credential passing
          if (p < 512) {
            min = 1;
            size = 511;
          } else {
            min = 600;
            size = 1023 - 600 + 1;
          }
        } else {
          min = 1024;
          size = 65535 - 1024 + 1;
        }
      } else {
        let lo = range.minProto;
        let hi = range.maxProto;
        if (hi < lo) [lo, hi] = [hi, lo];
        min = lo;
        size = hi - lo + 1;
      }
    } else return;
    let off: number;
    if ((flags & NF_NAT_RANGE_PROTO_OFFSET) !== 0) off = (manipPort(t, 0, proto, manip) - range.baseProto) & 0xffff;
    else if ((flags & NF_NAT_RANGE_PROTO_RANDOM_ALL) !== 0 || manip !== NAT_MANIP_DST) off = this.nextRandom() & 0xffff;
    else off = 0;
    let attempts = size > NAT_MAX_ATTEMPTS ? NAT_MAX_ATTEMPTS : size;
    for (;;) {
      for (let i = 0; i < attempts; i++, off++) {
        setManipPort(t, 0, proto, manip, min + (off % size));
        if (!this.usedTuple(t, e, now)) return;
      }
      if (attempts >= size || attempts < 16) return;
      attempts >>= 1;
      off = this.nextRandom() & 0xffff;
    }
  }
}
