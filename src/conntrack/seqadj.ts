/**
 * TCP sequence adjustment of a connection whose payload changed length (an FTP command
 * rewritten by NAT): net/netfilter/nf_conntrack_seqadj.c.
 *
 * Per entry and direction the kernel keeps struct nf_ct_seqadj { correction_pos,
 * offset_before, offset_after }: a sequence number of that direction after correction_pos
 * is shifted by offset_after, one at or before it by offset_before (one change "in the
 * window" is remembered, as the kernel does). Every packet of an entry with IPS_SEQ_ADJUST
 * gets its seq shifted by its own direction's offset and its ack (and SACK blocks) shifted
 * back by the other direction's, after the helper ran (nf_confirm); the TCP tracker reads
 * the receiver's offset to judge acks in the sender's own space (tcp_in_window).
 *
 * The records are few (only NATed connections with a helper that mangles), so the arrays
 * grow on demand up to the table's capacity. Hot path: no allocation.
 */
import { get32, put16, put32 } from '../packet/bytes';
import { l4Checksum, updateChecksum32 } from '../packet/checksum';
import type { PacketView } from '../packet/view';

/** IPS_SEQ_ADJUST (nf_conntrack_common.h: IPS_SEQ_ADJUST_BIT 6) */
export const IPS_SEQ_ADJUST = 1 << 6;

const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_SACK = 5;
const TCPOLEN_SACK_PERBLOCK = 8;

/** after(a, b) of include/net/tcp.h: (s32)(b - a) < 0 */
function after(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

export class SeqAdjust {
  /** correction_pos, offset_before, offset_after of entry e, direction dir at e * 2 + dir */
  private pos = new Uint32Array(0);
  private before = new Int32Array(0);
  private afterOff = new Int32Array(0);
  private capacity = 0;
  private limit = 0;

  /** The table's capacity: on-demand growth stops there. */
  reserve(capacity: number): void {
    this.limit = capacity;
  }

  private ensure(e: number): void {
    if (e < this.capacity) return;
    const cap = Math.max(e + 1, Math.min(Math.max(this.capacity * 2, 64), Math.max(this.limit, e + 1)));
    const p = new Uint32Array(cap * 2);
    p.set(this.pos);
    const b = new Int32Array(cap * 2);
    b.set(this.before);
    const a = new Int32Array(cap * 2);
    a.set(this.afterOff);
    this.pos = p;
    this.before = b;
    this.afterOff = a;
    this.capacity = cap;
  }

  /** A fresh record for entry e (the extension is zeroed when added: first IPS_SEQ_ADJUST). */
  clear(e: number): void {
    this.ensure(e);
    this.pos.fill(0, e * 2, e * 2 + 2);
    this.before.fill(0, e * 2, e * 2 + 2);
    this.afterOff.fill(0, e * 2, e * 2 + 2);
  }

  /**
   * nf_ct_seqadj_set: the payload of direction dir changed by off bytes in the segment
   * starting at seq. Only the first change, or one later than the last correction, moves the
   * position (a retransmission of the changed segment keeps it). The caller sets IPS_SEQ_ADJUST
   * (and calls clear() the first time).
   */
  set(e: number, dir: number, seq: number, off: number): void {
    if (off === 0) return;
    this.ensure(e);
    const i = e * 2 + dir;
    if (this.before[i] === this.afterOff[i] || ((this.pos[i] - seq) | 0) < 0) {
      this.pos[i] = seq >>> 0;
      this.before[i] = this.afterOff[i];
      this.afterOff[i] = (this.afterOff[i] + off) | 0;
    }
  }

  /** nf_ct_seq_offset: the offset of sequence number seq of direction dir. */
  offset(e: number, dir: number, seq: number): number {
    if (e >= this.capacity) return 0;
    const i = e * 2 + dir;
    return after(seq, this.pos[i]) ? this.afterOff[i] : this.before[i];
  }

  /** correction_pos, offset_before, offset_after of each direction (state file, listings). */
  save(e: number): number[] {
    if (e >= this.capacity) return [0, 0, 0, 0, 0, 0];
    const i = e * 2;
    return [this.pos[i], this.before[i], this.afterOff[i], this.pos[i + 1], this.before[i + 1], this.afterOff[i + 1]];
  }

  restore(e: number, d: readonly number[]): void {
    this.clear(e);
    const i = e * 2;
    this.pos[i] = d[0] >>> 0;
    this.before[i] = d[1] | 0;
    this.afterOff[i] = d[2] | 0;
    this.pos[i + 1] = d[3] >>> 0;
    this.before[i + 1] = d[4] | 0;
    this.afterOff[i + 1] = d[5] | 0;
  }

  /**
   * nf_ct_seq_adjust on the TCP packet v of entry e, direction dir: seq += this direction's
   * offset, ack and the SACK blocks -= the other direction's, checksum updated (incrementally,
   * or in full when fullChecksum: a packet whose checksum the kernel had not computed yet).
   * v.seq / v.ack follow. Returns -1 when the options are malformed (the kernel drops the
   * packet), 1 when bytes changed, 0 when nothing did.
   */
  adjust(v: PacketView, e: number, dir: number, fullChecksum: boolean): number {
    this.ensure(e);
    const buf = v.buf;
    const th = v.l4off;
    const csum = th + 16;
    const t = e * 2 + dir;
    const o = e * 2 + (dir ^ 1);
    const seq = get32(buf, th + 4);
    const ack = get32(buf, th + 8);
    const seqoff = after(seq, this.pos[t]) ? this.afterOff[t] : this.before[t];
    const ackoff = after((ack - this.before[o]) >>> 0, this.pos[o]) ? this.afterOff[o] : this.before[o];
    const newseq = (seq + seqoff) >>> 0;
    const newack = (ack - ackoff) >>> 0;
    let changed = newseq !== seq || newack !== ack;
    if (newseq !== seq) {
      put32(buf, th + 4, newseq);
      if (!fullChecksum) updateChecksum32(buf, csum, seq, newseq);
    }
    if (newack !== ack) {
      put32(buf, th + 8, newack);
      if (!fullChecksum) updateChecksum32(buf, csum, ack, newack);
    }
    v.seq = newseq;
    v.ack = newack;

    // nf_ct_sack_adjust: the SACK blocks acknowledge the other direction's bytes
    let optoff = th + 20;
    const optend = th + v.tcpHeaderLen;
    let res = 1;
    while (optoff < optend) {
      const kind = buf[optoff];
      if (kind === TCPOPT_EOL) break;
      if (kind === TCPOPT_NOP) {
        optoff++;
        continue;
      }
      const olen = buf[optoff + 1];
      // no partial options
      if (optoff + 1 === optend || optoff + olen > optend || olen < 2) {
        res = -1;
        break;
      }
      if (kind === TCPOPT_SACK && olen >= 2 + TCPOLEN_SACK_PERBLOCK && (olen - 2) % TCPOLEN_SACK_PERBLOCK === 0) {
        for (let p = optoff + 2; p < optoff + olen; p += 4) {
          const edge = get32(buf, p);
          const ne = (edge - (after((edge - this.before[o]) >>> 0, this.pos[o]) ? this.afterOff[o] : this.before[o])) >>> 0;
          if (ne !== edge) {
            put32(buf, p, ne);
            if (!fullChecksum) updateChecksum32(buf, csum, edge, ne);
            changed = true;
          }
        }
      }
      optoff += olen;
    }
    if (changed && fullChecksum) {
      const l4len = v.off + v.len - th;
      put16(buf, csum, 0);
      put16(buf, csum, l4Checksum(v.ipVersion, v.src, v.dst, 6, buf, th, l4len));
    }
    if (res < 0) return -1;
    return changed ? 1 : 0;
  }
}
