/** One queue batch as the addon hands it over (src/queue/layout.ts), IPv4 packets back to back in data, hook FORWARD. */
import { INDEX_STRIDE, IX_CAPLEN, IX_FAMILY, IX_HOOK, IX_OFFSET, IX_ORIGLEN, NF_INET_FORWARD } from '../../src/queue/layout';
import type { Batch } from '../../src/queue/queue';

export function batchOf(pkts: Uint8Array[]): Batch {
  const data = new Uint8Array(pkts.reduce((n, p) => n + p.length, 0));
  const index = new Uint32Array(pkts.length * INDEX_STRIDE);
  let off = 0;
  pkts.forEach((p, i) => {
    data.set(p, off);
    index[i * INDEX_STRIDE + IX_OFFSET] = off;
    index[i * INDEX_STRIDE + IX_CAPLEN] = p.length;
    index[i * INDEX_STRIDE + IX_ORIGLEN] = p.length;
    index[i * INDEX_STRIDE + IX_HOOK] = NF_INET_FORWARD;
    index[i * INDEX_STRIDE + IX_FAMILY] = 2; // AF_INET
    off += p.length;
  });
  return { queue: 0, count: pkts.length, data, index, verdicts: new Uint32Array(pkts.length), marks: new Uint32Array(pkts.length) } as unknown as Batch;
}
