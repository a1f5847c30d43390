/** Chain names and nesting as iptables and nf_tables limit them. */
import { KNOWN_UNSUPPORTED_TARGETS, STANDARD_VERDICTS, TARGETS } from './targets/index';
import type { ParseEnv, Token } from './types';

/** nf_tables' NFT_JUMP_STACK_SIZE (16): a built-in chain plus at most 15 levels of user chains. */
export const MAX_CHAIN_DEPTH = 15;
/** XT_EXTENSION_MAXNAMELEN - 1 */
export const MAX_CHAIN_NAME = 28;

const RESERVED_NAMES = new Set<string>([...STANDARD_VERDICTS, 'QUEUE', ...Object.keys(TARGETS), ...KNOWN_UNSUPPORTED_TARGETS]);

/** assert_valid_chain_name (iptables/xshared.c). */
export function checkChainName(tok: Token, sink: ParseEnv): boolean {
  const n = tok.text;
  if (n.length > MAX_CHAIN_NAME) {
    sink.error(tok, `chain name "${n}" is too long (at most ${MAX_CHAIN_NAME} characters)`);
    return false;
  }
  if (n.startsWith('-') || n.startsWith('!')) {
    sink.error(tok, `chain name "${n}" may not start with "${n[0]}"`);
    return false;
  }
  if (RESERVED_NAMES.has(n)) {
    sink.error(tok, `chain name "${n}" is a target name`);
    return false;
  }
  if (/[\s]/.test(n)) {
    sink.error(tok, `chain name "${n}" contains white space`);
    return false;
  }
  return true;
}
