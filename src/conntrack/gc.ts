/**
 * Expiry (gc_worker of nf_conntrack_core.c): an incremental sweep over the buckets that reaps
 * expired entries and, while a GC-assisted early drop is pending, evicts what early drop may.
 * Lookups reap the expired entries they meet on their own (entries.ts).
 */
import { IPS_ASSURED } from './constants';
import { ConntrackEntries } from './entries';
import { recProto } from './layout';

export class ConntrackExpiry extends ConntrackEntries {
  /** the bucket the next gc step starts at */
  protected gcCursor = 0;
  /** GC-assisted early drop: buckets left in the current early-drop pass (0 = off) */
  protected gcEarlyDropLeft = 0;

  /**
   * One incremental step of the garbage collector (gc_worker): scans buckets from
   * where the previous call stopped, at most `maxWork` buckets + entries, reaping
   * expired entries; while a GC-assisted early drop is pending and the table is
   * at least 95 % full, also evicts non-ASSURED entries and those the tracker
   * allows (tcp_can_early_drop). Also expires expectations. Returns the number of
   * entries removed.
   */
  gc(now: number, maxWork: number): number {
    const tb = this.table;
    let work = 0;
    let removed = 0;
    const max = this.tun.nf_conntrack_max;
    const max95 = Math.floor(max / 100) * 95;
    while (work < maxWork) {
      if (this.gcCursor >= tb.nbuckets) this.gcCursor = 0;
      const b = this.gcCursor;
      work++;
      const early = this.gcEarlyDropLeft > 0;
      for (let n = tb.head(b); n >= 0;) {
        work++;
        const e = n >> 1;
        const nx = tb.next(n);
        let kill = tb.timeout(e) <= now;
        if (!kill && early && max95 > 0 && this.globalCount() >= max95) {
          const st = tb.status(e);
          kill = (st & IPS_ASSURED) === 0 || this.byProto[recProto(tb.rec, e)].canEarlyDrop(e);
        }
        if (kill) {
          this.destroy(e);
          removed++;
          n = tb.head(b); // the chain changed: start the bucket again
        } else n = nx;
      }
      this.gcCursor = b + 1;
      if (early) this.gcEarlyDropLeft--;
    }
    this.expectations.expire(now, maxWork);
    return removed;
  }
}
