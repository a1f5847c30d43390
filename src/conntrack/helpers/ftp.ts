/**
 * The FTP connection-tracking helper: net/netfilter/nf_conntrack_ftp.c.
 *
 * Reproduces the kernel module's behaviour byte for byte:
 *  - only ESTABLISHED / ESTABLISHED_REPLY packets carrying TCP payload are looked at;
 *  - a segment is parsed only when it starts at a sequence number remembered as
 *    "just after a newline" in its direction (NUM_SEQ_TO_REMEMBER = 2 per direction);
 *  - ORIGINAL direction: `PORT` (RFC 959) and `EPRT` (RFC 2428); REPLY direction:
 *    `227 ` (RFC 1123 scan to the first digit) and `229 ` (EPSV `(|||port|)`);
 *  - a partial match (segment shorter than / equal to a pattern prefix, skip
 *    character missing, numbers unparsable) drops the packet;
 *  - the announced address must equal the sender's address of the control
 *    connection unless `loose` (tunable ftp_loose) is set;
 *  - an expectation that cannot be added drops the packet;
 *  - on a NATed connection the command is rewritten to the NATed address and port and the
 *    expectation NATed as its master (nf_nat_ftp, ftp-nat.ts).
 *
 * Parsing works directly on pkt.buf and allocates nothing per packet: numbers go
 * into preallocated typed arrays, addresses into scratch Uint32Arrays.
 */
import type { PacketView } from '../../packet/view';
import { IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY, PKT_ACCEPT, PKT_DROP } from '../constants';
import type { ConntrackHelper, HelperHost } from './helper';
import { EXP_OK } from '../expect';
import { FtpNat, NF_CT_FTP_EPRT, NF_CT_FTP_EPSV, NF_CT_FTP_PASV, NF_CT_FTP_PORT } from './ftp-nat';
import type { TunableValues } from '../sysctl';

/** include/linux/netfilter/nf_conntrack_ftp.h */
export const NUM_SEQ_TO_REMEMBER = 2;

export { NF_CT_FTP_PORT, NF_CT_FTP_PASV, NF_CT_FTP_EPRT, NF_CT_FTP_EPSV };

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_CR = 0x0d;
const CH_NL = 0x0a;
const CH_SPACE = 0x20;
const CH_LPAREN = 0x28;
const CH_RPAREN = 0x29;
const CH_COMMA = 0x2c;
const CH_DOT = 0x2e;
const CH_COLON = 0x3a;
const CH_1 = 0x31;
const CH_2 = 0x32;

const GETNUM_RFC959 = 0;
const GETNUM_RFC1123 = 1;
const GETNUM_EPRT = 2;
const GETNUM_EPSV = 3;

interface FtpSearch {
  /** the pattern as text (for log messages) */
  readonly pattern: string;
  /** the pattern as lowercase bytes */
  readonly bytes: Uint8Array;
  readonly plen: number;
  /** skip character (0 = none) */
  readonly skip: number;
  /** terminator handed to getnum */
  readonly term: number;
  readonly ftptype: number;
  readonly getnum: number;
  /** "partial matching of `PATTERN'" prebuilt */
  readonly partialMsg: string;
}

function mkSearch(pattern: string, skip: number, term: number, ftptype: number, getnum: number): FtpSearch {
  const bytes = new Uint8Array(pattern.length);
  for (let k = 0; k < pattern.length; k++) bytes[k] = asciiLower(pattern.charCodeAt(k));
  return { pattern, bytes, plen: pattern.length, skip, term, ftptype, getnum, partialMsg: 'partial matching of `' + pattern + "'" };
}

/** search[IP_CT_DIR_MAX][2] of the kernel module */
const SEARCH: readonly (readonly FtpSearch[])[] = [
  [mkSearch('PORT', CH_SPACE, CH_CR, NF_CT_FTP_PORT, GETNUM_RFC959), mkSearch('EPRT', CH_SPACE, CH_CR, NF_CT_FTP_EPRT, GETNUM_EPRT)],
  [mkSearch('227 ', 0, 0, NF_CT_FTP_PASV, GETNUM_RFC1123), mkSearch('229 ', CH_LPAREN, CH_RPAREN, NF_CT_FTP_EPSV, GETNUM_EPSV)],
];

/** The kernel's tolower() on the ASCII range (Latin-1 upper-case letters never lower to a pattern letter). */
function asciiLower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

function isDigit(c: number): boolean {
  return c >= CH_0 && c <= CH_9;
}

/** hex_to_bin(): value of a hex digit or -1 */
function hexToBin(c: number): number {
  if (c >= CH_0 && c <= CH_9) return c - CH_0;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

// net/core/utils.c: in6_pton() state bits
const IN6PTON_XDIGIT = 0x00010000;
const IN6PTON_DIGIT = 0x00020000;
const IN6PTON_COLON_MASK = 0x00700000;
const IN6PTON_COLON_1 = 0x00100000;
const IN6PTON_COLON_2 = 0x00200000;
const IN6PTON_COLON_1_2 = 0x00400000;
const IN6PTON_DOT = 0x00800000;
const IN6PTON_DELIM = 0x10000000;
const IN6PTON_NULL = 0x20000000;
const IN6PTON_UNKNOWN = 0x40000000;

/** xdigit2bin(c, delim); c is the byte (0 when past the end) */
function xdigit2bin(c: number, delim: number): number {
  if (c === delim || c === 0) return IN6PTON_DELIM;
  if (c === CH_COLON) return IN6PTON_COLON_MASK;
  if (c === CH_DOT) return IN6PTON_DOT;
  const val = hexToBin(c);
  if (val >= 0) return val | IN6PTON_XDIGIT | (val < 10 ? IN6PTON_DIGIT : 0);
  if (delim === -1) return IN6PTON_DELIM;
  return IN6PTON_UNKNOWN;
}

export class FtpHelper implements ConntrackHelper {
  readonly name = 'ftp';
  readonly protonum = 6;

  expectTimeout(tun: TunableValues): number {
    return tun.ftp_expect_timeout;
  }

  /** seq_aft_nl[dir][k] of each entry at e * 4 + dir * 2 + k */
  private seqAftNl: Uint32Array = new Uint32Array(0);
  /** seq_aft_nl_num[dir] of each entry at e * 2 + dir */
  private seqAftNlNum: Uint8Array = new Uint8Array(0);
  private capacity = 0;

  // Scratch state of one help() call (the kernel's locals), reused.
  /** struct nf_conntrack_man cmd: the address (u32 words) and port */
  private readonly cmdAddr = new Uint32Array(4);
  private cmdPort = 0;
  private cmdFamily = 4;
  private readonly senderAddr = new Uint32Array(4);
  private readonly otherAddr = new Uint32Array(4);
  private readonly expDst = new Uint32Array(4);
  private readonly nums = new Uint32Array(6);
  private readonly in6buf = new Uint8Array(16);
  private readonly in6out = new Uint8Array(16);
  private readonly in4buf = new Uint8Array(4);
  /** find_pattern's numoff (from the payload start) and numlen of the last full match */
  private numOff = 0;
  private numLen = 0;
  private readonly nat = new FtpNat();
  /** end offset written by in4pton/in6pton (the kernel's **end) */
  private pEnd = 0;
  private readonly policy = { maxExpected: 1, timeoutSec: 300 };

  /** the table's capacity: on-demand growth (init / help) stops there */
  private limit = 0;

  reserve(capacity: number): void {
    this.limit = capacity;
  }

  private ensure(e: number): void {
    if (e < this.capacity) return;
    this.resize(Math.max(e + 1, Math.min(Math.max(this.capacity * 2, 64), Math.max(this.limit, e + 1))));
  }

  resize(capacity: number): void {
    if (capacity <= this.capacity) return;
    const s = new Uint32Array(capacity * 2 * NUM_SEQ_TO_REMEMBER);
    s.set(this.seqAftNl);
    const n = new Uint8Array(capacity * 2);
    n.set(this.seqAftNlNum);
    this.seqAftNl = s;
    this.seqAftNlNum = n;
    this.capacity = capacity;
  }

  init(e: number): void {
    this.ensure(e);
    const b = e * 2 * NUM_SEQ_TO_REMEMBER;
    this.seqAftNl.fill(0, b, b + 2 * NUM_SEQ_TO_REMEMBER);
    this.seqAftNlNum[e * 2] = 0;
    this.seqAftNlNum[e * 2 + 1] = 0;
  }

  /** Number of remembered line starts of entry e in direction dir (for tests and `conntrack -L`-style dumps). */
  nlSeqCount(e: number, dir: number): number {
    if (e >= this.capacity) return 0;
    return this.seqAftNlNum[e * 2 + dir];
  }

  /** Remembered line start k (0 or 1) of entry e in direction dir. */
  nlSeq(e: number, dir: number, k: number): number {
    if (e >= this.capacity) return 0;
    return this.seqAftNl[e * 4 + dir * 2 + k];
  }

  help(host: HelperHost, e: number, dir: number, ctinfo: number, pkt: PacketView, now: number): number {
    // Until there's been traffic both ways, don't look in packets.
    if (ctinfo !== IP_CT_ESTABLISHED && ctinfo !== IP_CT_ESTABLISHED_REPLY) return PKT_ACCEPT;
    const datalen = pkt.payloadLen;
    if (datalen <= 0) return PKT_ACCEPT;
    this.ensure(e);

    const buf = pkt.buf;
    const data = pkt.payloadOff;
    const endsInNl = buf[data + datalen - 1] === CH_NL;
    const th_seq = pkt.seq >>> 0;
    const nextSeq = (th_seq + datalen) >>> 0;
    let ret = PKT_ACCEPT;

    if (this.findNlSeq(th_seq, e, dir)) {
      // Initialise the address to the sender's own (not mentioned in EPSV responses).
      this.cmdFamily = host.family(e);
      host.tupleAddr(e, dir, 0, this.cmdAddr);
      this.cmdPort = 0;

      const searches = SEARCH[dir];
      let found = 0;
      let i = 0;
      for (; i < searches.length; i++) {
        found = this.findPattern(buf, data, datalen, searches[i]);
        if (found !== 0) break;
      }
      if (found === -1) {
        // The only place conntrack drops on content; no line-start update.
        host.log(searches[i].partialMsg);
        return PKT_DROP;
      }
      if (found === 1) {
        ret = this.expectData(host, e, dir, searches[i].ftptype, data, now);
      }
    }
    if (endsInNl) this.updateNlSeq(nextSeq, e, dir);
    return ret;
  }

  /** The part of help() after a full match: address check and nf_ct_expect_related(). */
  private expectData(host: HelperHost, e: number, dir: number, ftptype: number, data: number, now: number): number {
    const odir = dir ^ 1;
    const sender = this.senderAddr;
    host.tupleAddr(e, dir, 0, sender);
    // daddr = &ct->tuplehash[!dir].tuple.dst.u3
    const daddr = this.expDst;
    host.tupleAddr(e, odir, 1, daddr);
    const cmd = this.cmdAddr;
    if (cmd[0] !== sender[0] || cmd[1] !== sender[1] || cmd[2] !== sender[2] || cmd[3] !== sender[3]) {
      // Bounce / third-host address: only followed with loose=1.
      if (!host.tun.ftp_loose) return PKT_ACCEPT;
      daddr.set(cmd);
    }
    host.tupleAddr(e, odir, 0, this.otherAddr);
    const policy = this.policy;
    policy.maxExpected = host.tun.ftp_max_expected;
    policy.timeoutSec = host.tun.ftp_expect_timeout;
    // NAT might want to mangle the packet, and register the (possibly changed) expectation itself
    if (host.natted(e)) return this.nat.help(host, e, dir, ftptype, data + this.numOff, this.numLen, this.otherAddr, daddr, this.cmdPort, policy, now);
    if (host.expect(e, 6, this.otherAddr, -1, daddr, this.cmdPort, policy, now) !== EXP_OK) {
      host.log('cannot add expectation');
      return PKT_DROP;
    }
    return PKT_ACCEPT;
  }

  /** find_nl_seq() */
  private findNlSeq(seq: number, e: number, dir: number): boolean {
    const n = this.seqAftNlNum[e * 2 + dir];
    const b = e * 4 + dir * 2;
    for (let i = 0; i < n; i++) if (this.seqAftNl[b + i] === seq) return true;
    return false;
  }

  /** update_nl_seq(): remember nlSeq unless known; when full replace the older one if nlSeq is later. */
  private updateNlSeq(nlSeq: number, e: number, dir: number): void {
    const ni = e * 2 + dir;
    const n = this.seqAftNlNum[ni];
    const b = e * 4 + dir * 2;
    const s = this.seqAftNl;
    for (let i = 0; i < n; i++) if (s[b + i] === nlSeq) return;
    if (n < NUM_SEQ_TO_REMEMBER) {
      s[b + n] = nlSeq;
      this.seqAftNlNum[ni] = n + 1;
    } else {
      // before(a, b) = (s32)(a - b) < 0
      const oldest = ((s[b] - s[b + 1]) | 0) < 0 ? 0 : 1;
      // after(nlSeq, old) = (s32)(old - nlSeq) < 0
      if (((s[b + oldest] - nlSeq) | 0) < 0) s[b + oldest] = nlSeq;
    }
  }

  /** find_pattern(): 1 match, 0 no match, -1 partial. data is an offset into buf. */
  private findPattern(buf: Uint8Array, data: number, dlen: number, sr: FtpSearch): number {
    const plen = sr.plen;
    const pat = sr.bytes;
    if (dlen <= plen) {
      // Short packet: try for partial?
      for (let k = 0; k < dlen; k++) if (asciiLower(buf[data + k]) !== pat[k]) return 0;
      return -1;
    }
    for (let k = 0; k < plen; k++) if (asciiLower(buf[data + k]) !== pat[k]) return 0;

    let i = plen;
    if (sr.skip !== 0) {
      for (i = plen; buf[data + i] !== sr.skip; i++) if (i === dlen - 1) return -1;
      i++; // skip over the skip character
    }
    this.numOff = i;
    const numlen = this.getnum(sr.getnum, buf, data + i, dlen - i, sr.term);
    if (numlen === 0) return -1;
    this.numLen = numlen;
    return 1;
  }

  private getnum(which: number, buf: Uint8Array, data: number, dlen: number, term: number): number {
    switch (which) {
      case GETNUM_RFC959:
        return this.tryRfc959(buf, data, dlen, term);
      case GETNUM_RFC1123:
        return this.tryRfc1123(buf, data, dlen);
      case GETNUM_EPRT:
        return this.tryEprt(buf, data, dlen);
      default:
        return this.tryEpsvResponse(buf, data, dlen);
    }
  }

  /**
   * try_number(): fill `size` numbers separated by sep into this.nums; returns the
   * length consumed (at the terminator) or 0. Digits accumulate in u32 without
   * range checks, as in the kernel.
   */
  private tryNumber(buf: Uint8Array, data: number, dlen: number, size: number, sep: number, term: number): number {
    const a = this.nums;
    a.fill(0);
    let i = 0;
    for (let len = 0; len < dlen && i < size; len++) {
      const c = buf[data + len];
      if (c >= CH_0 && c <= CH_9) {
        a[i] = (Math.imul(a[i], 10) + (c - CH_0)) >>> 0;
      } else if (c === sep) {
        i++;
      } else {
        // Unexpected character: fine if it is the terminator (or we have none) and we're finished.
        if ((c === term || term === 0) && i === size - 1) return len;
        return 0;
      }
    }
    return 0;
  }

  /** try_rfc959(): h1,h2,h3,h4,p1,p2 */
  private tryRfc959(buf: Uint8Array, data: number, dlen: number, term: number): number {
    const length = this.tryNumber(buf, data, dlen, 6, CH_COMMA, term);
    if (length === 0) return 0;
    const a = this.nums;
    // cmd->u3.ip only: words 1..3 keep what was copied from the tuple.
    this.cmdAddr[0] = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
    this.cmdPort = ((a[4] << 8) | a[5]) & 0xffff;
    return length;
  }

  /** try_rfc1123(): scan to the first digit, then RFC 959 numbers with no terminator. */
  private tryRfc1123(buf: Uint8Array, data: number, dlen: number): number {
    let i = 0;
    for (; i < dlen; i++) if (isDigit(buf[data + i])) break;
    if (i === dlen) return 0;
    this.numOff += i;
    return this.tryRfc959(buf, data + i, dlen - i, 0);
  }

  /** get_port(): decimal (u16, wrapping) up to delim; non-zero. Returns index after delim or 0. */
  private getPort(buf: Uint8Array, data: number, start: number, dlen: number, delim: number): number {
    let tmp = 0;
    for (let i = start; i < dlen; i++) {
      const c = buf[data + i];
      if (c === delim) {
        if (tmp === 0) break;
        this.cmdPort = tmp;
        return i + 1;
      } else if (c >= CH_0 && c <= CH_9) {
        tmp = (tmp * 10 + (c - CH_0)) & 0xffff;
      } else {
        break;
      }
    }
    return 0;
  }

  /** try_eprt(): |1|132.235.1.2|6275| or |2|3ffe::1|6275| */
  private tryEprt(buf: Uint8Array, data: number, dlen: number): number {
    if (dlen <= 3) return 0;
    const delim = buf[data];
    if (isDigit(delim) || delim < 33 || delim > 126 || buf[data + 2] !== delim) return 0;
    const af = buf[data + 1];
    if ((this.cmdFamily === 4 && af !== CH_1) || (this.cmdFamily === 6 && af !== CH_2)) return 0;
    let length: number;
    if (af === CH_1) {
      length = this.tryNumber(buf, data + 3, dlen - 3, 4, CH_DOT, delim);
      if (length !== 0) {
        const a = this.nums;
        this.cmdAddr[0] = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
      }
    } else {
      // get_ipv6_addr()
      const srclen = Math.min(dlen - 3, 0xffff);
      if (this.in6pton(buf, data + 3, srclen, this.in6out, delim) > 0) {
        length = this.pEnd - (data + 3);
        const o = this.in6out;
        for (let w = 0; w < 4; w++) {
          this.cmdAddr[w] = ((o[w * 4] << 24) | (o[w * 4 + 1] << 16) | (o[w * 4 + 2] << 8) | o[w * 4 + 3]) >>> 0;
        }
      } else {
        length = 0;
      }
    }
    if (length === 0) return 0;
    // Start offset includes the initial "|1|" and the trailing delimiter.
    return this.getPort(buf, data, 3 + length + 1, dlen, delim);
  }

  /** try_epsv_response(): |||6446| */
  private tryEpsvResponse(buf: Uint8Array, data: number, dlen: number): number {
    if (dlen <= 3) return 0;
    const delim = buf[data];
    if (isDigit(delim) || delim < 33 || delim > 126 || buf[data + 1] !== delim || buf[data + 2] !== delim) return 0;
    return this.getPort(buf, data, 3, dlen, delim);
  }

  /**
   * in4_pton() of net/core/utils.c on buf[src .. src+srclen), writing 4 bytes to
   * dst at dstOff on success; this.pEnd = where parsing stopped. Returns 1 or 0.
   */
  private in4pton(buf: Uint8Array, src: number, srclen: number, dst: Uint8Array, dstOff: number, delim: number): number {
    const dbuf = this.in4buf;
    let s = src;
    let d = 0;
    let i = 0;
    let w = 0;
    let ret = 0;
    for (;;) {
      const c = xdigit2bin(srclen > 0 ? buf[s] : 0, delim);
      if (!(c & (IN6PTON_DIGIT | IN6PTON_DOT | IN6PTON_DELIM | IN6PTON_COLON_MASK))) break;
      if (c & (IN6PTON_DOT | IN6PTON_DELIM | IN6PTON_COLON_MASK)) {
        if (w === 0) break;
        dbuf[d++] = w & 0xff;
        w = 0;
        i++;
        if (c & (IN6PTON_DELIM | IN6PTON_COLON_MASK)) {
          if (i !== 4) break;
          ret = 1;
          break;
        }
      } else {
        w = (Math.imul(w, 10) + c) | 0;
        if ((w & 0xffff) > 255) break;
      }
      if (i >= 4) break;
      s++;
      srclen--;
    }
    if (ret) dst.set(dbuf, dstOff);
    this.pEnd = s;
    return ret;
  }

  /** in6_pton() of net/core/utils.c; see in4pton. */
  private in6pton(buf: Uint8Array, src: number, srclen: number, dst: Uint8Array, delim: number): number {
    const dbuf = this.in6buf;
    dbuf.fill(0);
    let s = src;
    let tok = -1;
    let d = 0;
    let dc = -1;
    let state = IN6PTON_COLON_1_2 | IN6PTON_XDIGIT | IN6PTON_NULL;
    let w = 0;
    for (;;) {
      const c = xdigit2bin(srclen > 0 ? buf[s] : 0, delim);
      if (!(c & state)) {
        this.pEnd = s;
        return 0;
      }
      if (c & (IN6PTON_DELIM | IN6PTON_COLON_MASK)) {
        // process one 16-bit word
        if (!(state & IN6PTON_NULL)) {
          dbuf[d++] = (w >> 8) & 0xff;
          dbuf[d++] = w & 0xff;
        }
        w = 0;
        if (c & IN6PTON_DELIM) break; // processed the last word
        switch (state & IN6PTON_COLON_MASK) {
          case IN6PTON_COLON_2:
            dc = d;
            state = IN6PTON_XDIGIT | IN6PTON_DELIM;
            if (dc >= 16) state |= IN6PTON_NULL;
            break;
          case IN6PTON_COLON_1 | IN6PTON_COLON_1_2:
            state = IN6PTON_XDIGIT | IN6PTON_COLON_2;
            break;
          case IN6PTON_COLON_1:
            state = IN6PTON_XDIGIT;
            break;
          case IN6PTON_COLON_1_2:
            state = IN6PTON_COLON_2;
            break;
          default:
            state = 0;
        }
        tok = s + 1;
      } else if (c & IN6PTON_DOT) {
        const start = tok >= 0 ? tok : s;
        const r = this.in4pton(buf, start, srclen + (s - start), dbuf, d, delim);
        s = this.pEnd;
        if (r > 0) {
          d += 4;
          break;
        }
        this.pEnd = s;
        return 0;
      } else {
        w = (w << 4) | (0xff & c);
        state = IN6PTON_COLON_1 | IN6PTON_DELIM;
        if (!(w & 0xf000)) state |= IN6PTON_XDIGIT;
        if (dc < 0 && d + 2 < 16) {
          state |= IN6PTON_COLON_1_2;
          state &= ~IN6PTON_DELIM;
        }
        if (d + 2 >= 16) state &= ~(IN6PTON_COLON_1 | IN6PTON_COLON_1_2);
      }
      // cont:
      if ((dc >= 0 && d + 4 < 16) || d + 4 === 16) state |= IN6PTON_DOT;
      if (d >= 16) state &= ~(IN6PTON_XDIGIT | IN6PTON_COLON_MASK);
      s++;
      srclen--;
    }

    let i = 15;
    d--;
    if (dc >= 0) {
      while (d >= dc) dst[i--] = dbuf[d--];
      while (i >= dc) dst[i--] = 0;
      while (i >= 0) dst[i--] = dbuf[d--];
    } else {
      dst.set(dbuf);
    }
    this.pEnd = s;
    return 1;
  }
}
