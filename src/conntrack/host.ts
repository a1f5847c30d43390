/**
 * What the conntrack core offers protocol trackers (TrackerHost, proto/tracker.ts), the ICMP
 * error path (IcmpErrorHost, proto/icmp.ts) and helpers (HelperHost, helpers/helper.ts): an
 * entry's status, timeout, tuple, and expectations (nf_ct_expect_related).
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, type PacketView } from '../packet/view';
import { addrToString } from '../packet/format';
import { IPS_CONFIRMED, IPS_FIXED_TIMEOUT, IPS_NAT_MASK } from './constants';
import type { PacketContext } from './context';
import { put16 } from '../packet/bytes';
import { ipv4HeaderChecksum, l4Checksum } from '../packet/checksum';
import { parsePacket } from '../packet/parse';
import { PKTF_TRUNCATED, VERDICT_SET_PAYLOAD } from '../queue/layout';
import { EXP_ESHUTDOWN, EXP_MASK_SRC_ADDR, EXP_MASK_SRC_PORT, EXP_OK, EXP_TABLE_FULL } from './expect';
import { ConntrackExpiry } from './gc';
import type { HelperHost } from './helpers/helper';
import { TUPLE_WORDS, T_DST, T_META, T_PORTS, T_SRC, addrWord, hasNatReply, portsIndex, recFamily, recProto } from './layout';
import type { IcmpErrorHost } from './proto/icmp';
import { logsInvalid, type TrackerHost } from './proto/tracker';
import { IPS_SEQ_ADJUST } from './seqadj';

export const EXPECT_FULL_MSG = 'nf_conntrack: expectation table full';

export class ConntrackHost extends ConntrackExpiry implements TrackerHost, HelperHost, IcmpErrorHost {
  /** the `now` of the packet being tracked (createdAt) */
  protected lastNow = 0;
  /** the packet a helper is looking at (Conntrack.confirm sets it around help()), for mangleTcp */
  protected helpCtx: PacketContext | null = null;
  /** scratch tuple of expect() */
  private readonly expectScratch = new Uint32Array(TUPLE_WORDS);

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

  seqOffset(e: number, dir: number, seq: number): number {
    return (this.table.status(e) & IPS_SEQ_ADJUST) === 0 ? 0 : this.seqadj.offset(e, dir, seq);
  }

  logInvalid(pkt: PacketView, reason: string): void {
    if (this.logger === undefined || !logsInvalid(this.tun, pkt.proto)) return;
    let msg = `nf_ct_proto_${pkt.proto}: ${reason} SRC=${addrToString(pkt.ipVersion, pkt.src)} DST=${addrToString(pkt.ipVersion, pkt.dst)}`;
    if (pkt.proto === IPPROTO_TCP || pkt.proto === IPPROTO_UDP || pkt.proto === IPPROTO_UDPLITE) msg += ` SPT=${pkt.sport} DPT=${pkt.dport}`;
    else if (pkt.proto === IPPROTO_ICMP || pkt.proto === IPPROTO_ICMPV6) msg += ` TYPE=${pkt.icmpType} CODE=${pkt.icmpCode}`;
    else msg += ` PROTO=${pkt.proto}`;
    this.logger!.info(msg);
  }

  /** IcmpErrorHost: the entry an ICMP error quotes. */
  findNode(key: Uint32Array, now: number): number {
    return this.findOrClaim(key, this.hkey.hashTuple(key, 0), now);
  }

  // ---------------------------------------------------------------- HelperHost

  family(e: number): number {
    return recFamily(this.table.rec, e);
  }

  proto(e: number): number {
    return recProto(this.table.rec, e);
  }

  /** An address of the tuple of direction dir (which 0 source, 1 destination); a NATed entry's REPLY tuple from the NAT column. */
  tupleAddr(e: number, dir: number, which: number, out: Uint32Array): void {
    const tb = this.table;
    let off: number;
    let t: Uint32Array;
    if (dir === 1 && hasNatReply(tb.rec, e)) {
      off = e * TUPLE_WORDS + (which === 0 ? T_SRC : T_DST);
      t = tb.nat;
    } else {
      off = addrWord(e, dir, which);
      t = tb.rec;
    }
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
    natDir = -1,
    savedPort = 0,
  ): number {
    const tb = this.table;
    if (!tb.isAlloc(e) || tb.helper[e] === 0) return EXP_ESHUTDOWN; // master without helper
    const t = this.expectScratch;
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
    else if (r === EXP_OK && natDir >= 0) {
      const x = this.expectations.lastAdded;
      this.expectations.natDir[x] = natDir;
      this.expectations.savedPort[x] = savedPort;
    }
    return r;
  }

  unexpectLast(): void {
    const x = this.expectations.lastAdded;
    if (x >= 0 && this.expectations.isLive(x)) this.expectations.remove(x);
  }

  natted(e: number): boolean {
    return (this.table.status(e) & IPS_NAT_MASK) !== 0;
  }

  mangleTcp(e: number, dir: number, matchOff: number, matchLen: number, text: Uint8Array, textLen: number): boolean {
    const ctx = this.helpCtx;
    if (ctx === null || (ctx.pktFlags & PKTF_TRUNCATED) !== 0) return false;
    const v = ctx.view;
    const buf = v.buf;
    const diff = textLen - matchLen;
    const newLen = v.len + diff;
    // enlarge_skb: at most 65535 bytes; here also within the packet's room in the queue's slot
    if (newLen > 0xffff || newLen > ctx.room || v.off + newLen > buf.length) return false;
    const seq = v.seq;
    buf.copyWithin(matchOff + textLen, matchOff + matchLen, v.off + v.len);
    for (let i = 0; i < textLen; i++) buf[matchOff + i] = text[i];
    if (v.ipVersion === 4) {
      put16(buf, v.off + 2, newLen);
      put16(buf, v.off + 10, ipv4HeaderChecksum(buf, v.off));
    } else put16(buf, v.off + 4, newLen - 40);
    const th = v.l4off;
    put16(buf, th + 16, 0);
    put16(buf, th + 16, l4Checksum(v.ipVersion, v.src, v.dst, IPPROTO_TCP, buf, th, v.off + newLen - th));
    parsePacket(buf, v.off, newLen, v, v.ipVersion);
    if (diff !== 0) this.seqAdjustSet(e, dir, seq, diff);
    ctx.verdictFlags |= VERDICT_SET_PAYLOAD;
    return true;
  }

  seqAdjustSet(e: number, dir: number, seq: number, off: number): void {
    if (off === 0) return;
    const st = this.table.status(e);
    if ((st & IPS_SEQ_ADJUST) === 0) {
      this.seqadj.clear(e);
      this.table.setStatus(e, st | IPS_SEQ_ADJUST);
    }
    this.seqadj.set(e, dir, seq, off);
  }

  log(msg: string): void {
    if (!this.logger) return;
    if (this.tun.nf_conntrack_log_invalid !== 0) this.logger.info(msg);
    else this.logger.debug(msg);
  }
}
