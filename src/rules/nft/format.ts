/**
 * `rules -L` of an nftables rule set: the JSON as it was read, one line as `nft -j` writes
 * it; with counters (-v), each rule's `counter` statement holds the packets and bytes the
 * engine counted for it.
 */
import type { Counters } from '../eval';
import type { NftSource } from '../types';
import { isObject, kindOf } from './path';

export function formatNft(src: NftSource, counters?: Counters): string {
  const doc = structuredClone(src.doc);
  if (counters) {
    const pkts = new Map<number, number>();
    const bytes = new Map<number, number>();
    src.counts.forEach((item, n) => {
      if (item < 0) return;
      pkts.set(item, (pkts.get(item) ?? 0) + counters.rulePkts[n]);
      bytes.set(item, (bytes.get(item) ?? 0) + counters.ruleBytes[n]);
    });
    doc.nftables.forEach((it, i) => {
      const rule = isObject(it) && isObject(it.rule) ? it.rule : null;
      if (!rule || !Array.isArray(rule.expr)) return;
      for (const st of rule.expr)
        if (kindOf(st) === 'counter' && isObject(st.counter)) Object.assign(st.counter, { packets: pkts.get(i) ?? 0, bytes: bytes.get(i) ?? 0 });
    });
  }
  return JSON.stringify(doc) + '\n';
}
