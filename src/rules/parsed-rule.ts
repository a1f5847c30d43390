/** A ParsedRule with no test and no target yet: what each front end (iptables text, nft JSON) fills in. */
import type { ParsedRule } from './types';

export function emptyRule(table: string, chain: string, line: number, counters: [number, number] | null = null): ParsedRule {
  return {
    table,
    chain,
    line,
    family: 0,
    familyFlag: 0,
    proto: 0,
    protoInv: false,
    src: null,
    srcInv: false,
    dst: null,
    dstInv: false,
    inIface: null,
    inInv: false,
    outIface: null,
    outInv: false,
    fragment: 0,
    matches: [],
    target: { kind: 'none', name: '', at: null, state: null },
    counters,
  };
}
