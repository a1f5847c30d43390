/**
 * What every target that rewrites the packet's bytes in place does around its edit (the
 * Targets contract in docs/ARCHITECTURE.md): it may not edit a PKTF_TRUNCATED packet (the
 * verdict could not carry all of it back; such a target drops it instead), and after the edit
 * the verdict carries the bytes (VERDICT_SET_PAYLOAD). nfqnl_mangle sets CHECKSUM_NONE on a
 * packet whose payload a verdict replaced, so a packet whose L4 checksum the kernel had left
 * for the device to finish (PKTF_CSUM_NOT_READY, GSO) gets it completed here.
 */
import type { PacketContext } from '../../conntrack/context';
import { fillL4Checksum } from '../../packet/checksum';
import { PKTF_CSUM_NOT_READY, PKTF_GSO, PKTF_TRUNCATED, VERDICT_SET_PAYLOAD } from '../../queue/layout';

/** Whether the packet's bytes can be edited and sent back. */
export function canRewrite(ctx: PacketContext): boolean {
  return (ctx.pktFlags & PKTF_TRUNCATED) === 0;
}

/** The bytes were edited (and ctx.view updated to them): complete a partial L4 checksum, send them back. */
export function rewritten(ctx: PacketContext): void {
  if ((ctx.pktFlags & (PKTF_CSUM_NOT_READY | PKTF_GSO)) !== 0) {
    fillL4Checksum(ctx.view);
    // complete now: a later edit of the same packet updates it incrementally
    ctx.pktFlags &= ~PKTF_CSUM_NOT_READY;
  }
  ctx.verdictFlags |= VERDICT_SET_PAYLOAD;
}
