/** Verdict statements: accept, drop, continue, return, jump, goto. */
import type { ParsedTarget } from '../types';
import { nftToken } from './build';
import { isObject, NftError } from './path';

export const VERDICTS = new Set(['accept', 'drop', 'continue', 'return', 'jump', 'goto']);

/** kind and value of { KIND: VALUE }; chainName maps an nft chain of the rule's table to the engine's chain name. */
export function verdictTarget(kind: string, value: unknown, path: string, chainName: (name: string, path: string) => string): ParsedTarget {
  switch (kind) {
    case 'accept':
      return { kind: 'standard', name: 'ACCEPT', at: nftToken('accept'), state: null };
    case 'drop':
      return { kind: 'standard', name: 'DROP', at: nftToken('drop'), state: null };
    case 'return':
      return { kind: 'standard', name: 'RETURN', at: nftToken('return'), state: null };
    case 'continue':
      return { kind: 'none', name: '', at: null, state: null };
    case 'jump':
    case 'goto': {
      if (!isObject(value) || typeof value.target !== 'string') throw new NftError(`${path}.${kind}`, `${kind} needs { target: CHAIN }`);
      return { kind, name: chainName(value.target, `${path}.${kind}.target`), at: nftToken(value.target), state: null };
    }
  }
  throw new NftError(path, `unsupported verdict "${kind}"`);
}
