/**
 * The FTP helper's NAT part: net/netfilter/nf_nat_ftp.c with nf_nat_helper.c's
 * nf_nat_exp_find_port. A PORT / EPRT command or a 227 / 229 answer of a NATed control
 * connection is rewritten to the address the peer sees (the destination of the tuple the
 * packet goes to: ct->tuplehash[!dir].tuple.dst) and a port the expectation could take; the
 * expectation records the announced port and the direction it will come from, so that the
 * data connection is NATed as its master (nf_nat_follow_master). The bytes change through
 * HelperHost.mangleTcp (nf_nat_mangle_tcp_packet: length, checksums, sequence adjustment).
 * The replacement text is built (one string) only for a command that is rewritten, then copied
 * into a reused byte buffer; other packets allocate nothing.
 */
import { formatIp6Full } from '../../packet/format';
import { EXP_EBUSY, EXP_OK } from '../expect';
import { PKT_ACCEPT, PKT_DROP } from '../constants';
import type { HelperHost } from './helper';

/** enum nf_ct_ftp_type (nf_conntrack_ftp.h) */
export const NF_CT_FTP_PORT = 0;
export const NF_CT_FTP_PASV = 1;
export const NF_CT_FTP_EPRT = 2;
export const NF_CT_FTP_EPSV = 3;

/** nf_nat_exp_find_port's max_attempts */
const MAX_ATTEMPTS = 128;

export class FtpNat {
  private readonly newAddr = new Uint32Array(4);
  /** the replacement text (longest: "|2|" + 39 + "|65535|") */
  private readonly text = new Uint8Array(64);
  private textLen = 0;

  /**
   * nf_nat_ftp for the command of type `type` of entry e, direction dir, whose numbers are
   * buf[matchOff, +matchLen) of the packet: the expectation (protocol TCP, from `src` to
   * `dst`:`port`, any source port) is added at a free port, the packet rewritten.
   * PKT_ACCEPT or PKT_DROP.
   */
  help(
    host: HelperHost,
    e: number,
    dir: number,
    type: number,
    matchOff: number,
    matchLen: number,
    src: Uint32Array,
    dst: Uint32Array,
    port: number,
    policy: { maxExpected: number; timeoutSec: number },
    now: number,
  ): number {
    // Connection will come from wherever this packet goes, hence !dir
    const odir = dir ^ 1;
    host.tupleAddr(e, odir, 1, this.newAddr);
    const saved = port;
    const nport = this.findPort(host, e, src, dst, saved, odir, policy, now);
    if (nport === 0) {
      host.log('all ports in use');
      return PKT_DROP;
    }
    this.format(type, host.family(e), this.newAddr, nport);
    if (!host.mangleTcp(e, dir, matchOff, matchLen, this.text, this.textLen)) {
      host.log('cannot mangle packet');
      host.unexpectLast();
      return PKT_DROP;
    }
    return PKT_ACCEPT;
  }

  /**
   * nf_nat_exp_find_port: the announced port if the expectation takes it, else up to 128
   * random ports from [port, 65535); only a clash (-EBUSY) makes it try again. 0 = none.
   */
  private findPort(
    host: HelperHost,
    e: number,
    src: Uint32Array,
    dst: Uint32Array,
    port: number,
    natDir: number,
    policy: { maxExpected: number; timeoutSec: number },
    now: number,
  ): number {
    const min = port;
    const range = 0xffff - port;
    let attemptsLeft = range > MAX_ATTEMPTS ? MAX_ATTEMPTS : range;
    for (;;) {
      const r = host.expect(e, 6, src, -1, dst, port, policy, now, natDir, min);
      if (r === EXP_OK) return port;
      if (r !== EXP_EBUSY || --attemptsLeft < 0) return 0;
      port = min + Math.floor(Math.random() * range);
    }
  }

  /** nf_nat_ftp_fmt_cmd into this.text */
  private format(type: number, family: number, a: Uint32Array, port: number): void {
    let s: string;
    if (type === NF_CT_FTP_PORT || type === NF_CT_FTP_PASV) {
      const w = a[0];
      s = `${w >>> 24},${(w >>> 16) & 0xff},${(w >>> 8) & 0xff},${w & 0xff},${port >>> 8},${port & 0xff}`;
    } else if (type === NF_CT_FTP_EPRT) {
      // %pI4 / %pI6: dotted quad / eight groups of four hex digits
      s = family === 4 ? `|1|${a[0] >>> 24}.${(a[0] >>> 16) & 0xff}.${(a[0] >>> 8) & 0xff}.${a[0] & 0xff}|${port}|` : `|2|${formatIp6Full(a)}|${port}|`;
    } else {
      s = `|||${port}|`;
    }
    const t = this.text;
    for (let i = 0; i < s.length; i++) t[i] = s.charCodeAt(i);
    this.textLen = s.length;
  }
}
