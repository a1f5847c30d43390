/**
 * -j CHECKSUM --checksum-fill (libxt_CHECKSUM.c, xt_CHECKSUM.c checksum_tg): a packet whose L4
 * checksum the kernel left for the device to finish (CHECKSUM_PARTIAL: PKTF_CSUM_NOT_READY)
 * and that is not GSO gets it computed (skb_checksum_help); others are left alone. mangle
 * table only; the kernel accepts it for any protocol (it only warns without "-p udp").
 */
import type { PacketContext } from '../../conntrack/context';
import { NF_DROP, PKTF_CSUM_NOT_READY, PKTF_GSO } from '../../queue/layout';
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../types';
import { canRewrite, rewritten } from './rewrite';

export interface ChecksumState {
  fill: boolean;
}

export const checksumTarget: TargetModule<ChecksumState> = {
  name: 'CHECKSUM',
  tables: ['mangle'],
  options: [{ name: 'checksum-fill', invertible: false, args: 0 }],
  create: () => ({ fill: false }),
  parse(s, _opt, _args, _inv, optTok, env) {
    if (s.fill) return env.error(optTok, 'CHECKSUM: option "--checksum-fill" can only be used once');
    s.fill = true;
  },
  finalize(s, _rule, at, env) {
    if (!s.fill) env.error(at, 'CHECKSUM: option "--checksum-fill" must be specified');
  },
  familyOf: () => 0,
  save: () => ['--checksum-fill'],
  compile: () => new ChecksumAction(),
};

class ChecksumAction implements CompiledTarget {
  run(ctx: PacketContext): number {
    if ((ctx.pktFlags & (PKTF_CSUM_NOT_READY | PKTF_GSO)) !== PKTF_CSUM_NOT_READY) return XT_CONTINUE;
    if (!canRewrite(ctx)) return NF_DROP;
    rewritten(ctx);
    return XT_CONTINUE;
  }
}
