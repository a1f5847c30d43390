/**
 * The mark operations MARK and CONNMARK share (libxt_MARK.c / libxt_CONNMARK.c, revision 2
 * and 1): every form becomes one (value, mask) pair applied as the kernel does,
 * new = (old & ~mask) ^ value, and iptables-save prints it back as --set-xmark VALUE/MASK:
 *   --set-xmark V[/M]  value V, mask M (default 0xffffffff)
 *   --set-mark V[/M]   value V, mask V | M (default mask 0xffffffff)
 *   --and-mark B       value 0, mask ~B
 *   --or-mark B        value B, mask B
 *   --xor-mark B       value B, mask 0
 */
import type { OptSpec, ParseEnv, Token } from '../types';
import { parseMarkMask, parseUint } from '../matches/util';

export const MARK_OPS = ['set-xmark', 'set-mark', 'and-mark', 'or-mark', 'xor-mark'] as const;

export const MARK_OP_OPTIONS: readonly OptSpec[] = MARK_OPS.map((name) => ({ name, invertible: false, args: 1 }));

/** What an operation option was read into: the option that gave it (for the exclusion messages) and the pair. */
export interface MarkOp {
  op: string | null;
  value: number;
  mask: number;
}

/**
 * Reads --OP ARG into s (prefix: the target's name in iptables' messages). The caller has
 * checked that opt is one of MARK_OPS and that no other exclusive option was given.
 */
export function parseMarkOp(s: MarkOp, prefix: string, opt: string, arg: Token, env: ParseEnv): void {
  if (opt === 'set-xmark' || opt === 'set-mark') {
    const vm = parseMarkMask(arg, env);
    if (!vm) return;
    s.value = vm[0];
    s.mask = opt === 'set-mark' ? (vm[0] | vm[1]) >>> 0 : vm[1];
  } else {
    const b = parseUint(arg.text);
    if (b < 0) return env.error(arg, `${prefix}: bad value for option "--${opt}", or out of range (0-4294967295)`);
    s.value = opt === 'and-mark' ? 0 : b;
    s.mask = opt === 'and-mark' ? ~b >>> 0 : opt === 'or-mark' ? b : 0;
  }
  s.op = opt;
}

/**
 * The complaint when opt comes after `given` and the two exclude each other, in iptables'
 * words (xtables_options_fcheck names the one first in the option table, `order`, first),
 * or null when given is null.
 */
export function exclusive(prefix: string, given: string | null, opt: string, order: readonly string[]): string | null {
  if (given === null) return null;
  if (given === opt) return `${prefix}: option "--${opt}" can only be used once`;
  const [a, b] = order.indexOf(given) <= order.indexOf(opt) ? [given, opt] : [opt, given];
  return `${prefix}: option "--${a}" cannot be used together with "--${b}"`;
}

/** libxt_MARK/CONNMARK save: 0xVALUE/0xMASK, always both. */
export function formatXmark(value: number, mask: number): string {
  return `0x${(value >>> 0).toString(16)}/0x${(mask >>> 0).toString(16)}`;
}
