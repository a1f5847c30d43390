/**
 * -j TCPMSS (libxt_TCPMSS.c, xt_TCPMSS.c tcpmss_mangle_packet): --set-mss N (0-65515 for
 * IPv4, 0-65495 for IPv6) lowers the MSS option of a TCP packet to N, never raises it, and keeps
 * the TCP checksum valid. The kernel requires -p tcp (.proto); through iptables-nft (nft_compat)
 * it does not require --syn. A non-first fragment passes; a TCP header that does not fit the
 * packet is dropped, as the kernel does.
 *
 * Two things nfqwall cannot do exactly and does not pretend to:
 *  - --clamp-mss-to-pmtu: the kernel takes min(dst_mtu of the packet's route, dst_mtu of a route
 *    lookup back to its source) — device MTUs, route mtu metrics and learned PMTU exceptions the
 *    queue does not deliver and a userspace lookup could not read without waiting: refused.
 *  - a SYN without an MSS option and without data: the kernel inserts one (min(N, 536) for IPv4,
 *    1220 for IPv6), 4 bytes longer; a queue verdict carries the payload at its length, so nfqwall
 *    passes it unchanged and logs that (the receiver then assumes the same default MSS).
 */
import type { PacketContext } from '../../conntrack/context';
import { replaceChecksum16 } from '../../packet/checksum';
import { NF_DROP } from '../../queue/layout';
import { parseUint } from '../matches/util';
import { XT_CONTINUE, type CompiledTarget, type TargetModule, type TargetServices } from '../types';
import { canRewrite, rewritten } from './rewrite';

export interface TcpmssState {
  /** -1 before an option */
  mss: number;
}

/** at most one "not added" warning per this many ms per rule (net_err_ratelimited's 5 s) */
const WARN_INTERVAL_MS = 5000;

export const tcpmssTarget: TargetModule<TcpmssState> = {
  name: 'TCPMSS',
  tables: ['raw', 'mangle', 'nat', 'filter'],
  options: [
    { name: 'set-mss', invertible: false, args: 1 },
    { name: 'clamp-mss-to-pmtu', invertible: false, args: 0 },
  ],
  create: () => ({ mss: -1 }),
  parse(s, opt, args, _inv, optTok, env) {
    if (opt === 'clamp-mss-to-pmtu')
      return env.error(
        optTok,
        "TCPMSS --clamp-mss-to-pmtu is not supported: the kernel takes the path MTU from the packet's route and from a route back to its source " +
          '(device MTU, route mtu metric, learned PMTU exceptions), which the queue does not deliver; use --set-mss with the MTU of the path less 40 (IPv4) or 60 (IPv6)',
      );
    if (s.mss >= 0) return env.error(optTok, 'TCPMSS: option "--set-mss" can only be used once');
    // xt_tcpmss_info.mss is 16 bits; 0xffff is XT_TCPMSS_CLAMP_PMTU, libxt_TCPMSS allows up to 65535 - 20
    const v = parseUint(args[0].text, 0xffff - 20);
    if (v < 0) return env.error(args[0], 'TCPMSS: bad value for option "--set-mss", or out of range (0-65515)');
    s.mss = v;
  },
  finalize(s, rule, at, env) {
    if (s.mss < 0) return env.error(at, 'TCPMSS target: At least one parameter is required');
    if (rule.proto !== 6 || rule.protoInv) return env.error(at, 'TCPMSS target needs "-p tcp" (the kernel registers it for TCP only)');
    // libip6t's range leaves room for the 40-byte IPv6 header: a rule for both families is an IPv6 rule too
    if (rule.family !== 4 && s.mss > 0xffff - 40) env.error(at, 'TCPMSS: bad value for option "--set-mss", or out of range (0-65495) for IPv6');
  },
  familyOf: () => 0,
  save: (s) => ['--set-mss', String(s.mss)],
  compile: (s, env) => new TcpmssAction(s.mss, env.services),
};

class TcpmssAction implements CompiledTarget {
  private warnedAt = -Infinity;
  constructor(
    private readonly mss: number,
    private readonly services: TargetServices,
  ) {}
  run(ctx: PacketContext, now: number): number {
    const v = ctx.view;
    if (v.fragOffset !== 0) return XT_CONTINUE;
    const buf = v.buf;
    const l4 = v.l4off;
    const len = v.off + v.len - l4;
    if (l4 === 0 || len < 20) return NF_DROP;
    const hdr = (buf[l4 + 12] >>> 4) << 2;
    if (len < hdr || hdr < 20) return NF_DROP;
    const mss = this.mss;
    for (let i = 20; i <= hdr - 4;) {
      const kind = buf[l4 + i];
      const olen = buf[l4 + i + 1];
      if (kind === 2 && olen === 4) {
        const old = (buf[l4 + i + 2] << 8) | buf[l4 + i + 3];
        if (old <= mss) return XT_CONTINUE;
        if (!canRewrite(ctx)) return NF_DROP;
        buf[l4 + i + 2] = mss >>> 8;
        buf[l4 + i + 3] = mss & 0xff;
        replaceChecksum16(buf, l4 + 16, old, mss);
        if (v.optMss === old) v.optMss = mss;
        rewritten(ctx);
        return XT_CONTINUE;
      }
      i += kind <= 1 || olen === 0 ? 1 : olen;
    }
    // no MSS option: with data after the header, or no room in doff, the kernel leaves it too
    if (len > hdr || hdr >= 60) return XT_CONTINUE;
    if (now - this.warnedAt >= WARN_INTERVAL_MS) {
      this.warnedAt = now;
      this.services.log(
        'TCPMSS: a TCP packet without an MSS option passed unchanged (the kernel would add one; a queue verdict cannot make a packet longer)',
        4,
      );
    }
    return XT_CONTINUE;
  }
}
