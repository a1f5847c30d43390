/**
 * The external cache: the connections the peer told us about (conntrackd's external cache,
 * src/external_cache.c). Kept apart from the live table until a commit makes them live
 * entries (conntrackd -c). Not on the per-packet path: filled by received messages.
 */
import { IPS_ASSURED, IPS_SEEN_REPLY } from '../conntrack/constants';
import type { Conntrack } from '../conntrack/core';
import { l4Name } from '../conntrack/format';
import { T_DST, T_META, T_PORTS, T_SRC } from '../conntrack/layout';
import { TCP_STATE_NAMES } from '../conntrack/proto/tcp';
import { invertPorts } from '../conntrack/tuple';
import { addrToString } from '../packet/format';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP } from '../packet/view';
import { copyConn, type SyncConn } from './conn-msg';
import { NET_T_STATE_CT_DEL } from './nethdr';
import { entryFromConn } from './table-conn';

interface Cached {
  conn: SyncConn;
  /** when it arrived (ms, monotonic) */
  at: number;
}

export interface CommitResult {
  committed: number;
  /** not committed: already live, or refused (reasons counted) */
  failed: number;
  reasons: Record<string, number>;
}

function keyOf(t: Uint32Array): string {
  return t.join(',');
}

function l4Part(proto: number, ports: number): string {
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) return `type=${(ports >>> 8) & 0xff} code=${ports & 0xff} id=${ports >>> 16} `;
  return ports !== 0 || proto === IPPROTO_TCP ? `sport=${ports >>> 16} dport=${ports & 0xffff} ` : '';
}

export class ExternalCache {
  private readonly map = new Map<string, Cached>();

  get size(): number {
    return this.map.size;
  }

  /** A received NEW / UPD (kept, replacing what was there) or DEL (forgotten). */
  apply(type: number, c: SyncConn, now: number): void {
    const k = keyOf(c.tuple);
    if (type === NET_T_STATE_CT_DEL) this.map.delete(k);
    else this.map.set(k, { conn: copyConn(c), at: now });
  }

  flush(): number {
    const n = this.map.size;
    this.map.clear();
    return n;
  }

  /**
   * Makes every cached connection a live entry of ct (conntrackd -c), each as the table takes
   * a received entry (table-conn.ts), and empties the cache.
   */
  commit(ct: Conntrack, now: number): CommitResult {
    const res: CommitResult = { committed: 0, failed: 0, reasons: {} };
    const fail = (why: string) => {
      res.failed++;
      res.reasons[why] = (res.reasons[why] ?? 0) + 1;
    };
    for (const { conn, at } of this.map.values()) {
      const d = entryFromConn(ct, conn, now - at);
      if (typeof d === 'string') fail(d);
      else if (!(d.timeoutMs > 0)) fail('expired');
      else if (ct.lookup(conn.tuple, now) >= 0) fail('already in the table');
      else if (ct.importEntry(d, now) < 0) fail('the table is full, or its reply tuple is taken');
      else res.committed++;
    }
    this.map.clear();
    return res;
  }

  /** `conntrack -L` lines of the cached connections, the timeout counted down since they arrived. */
  lines(now: number): string[] {
    const out: string[] = [];
    for (const { conn: c, at } of this.map.values()) {
      const t = c.tuple;
      const fam = t[T_META] >>> 8;
      const proto = t[T_META] & 0xff;
      const src = addrToString(fam, t.subarray(T_SRC, T_SRC + 4));
      const dst = addrToString(fam, t.subarray(T_DST, T_DST + 4));
      const rports = invertPorts(proto, t[T_PORTS]);
      let s = `${l4Name(proto).padEnd(8)} ${proto} `;
      if (c.timeout >= 0) s += `${Math.max(0, Math.floor(c.timeout - (now - at) / 1000))} `;
      if (proto === IPPROTO_TCP && c.tcpState >= 0) s += `${TCP_STATE_NAMES[c.tcpState] ?? 'NONE'} `;
      s += `src=${src} dst=${dst} ${l4Part(proto, t[T_PORTS])}`;
      if ((c.status & IPS_SEEN_REPLY) === 0) s += '[UNREPLIED] ';
      s += `src=${dst} dst=${src} ${l4Part(proto, rports < 0 ? t[T_PORTS] : rports)}`;
      if (c.status & IPS_ASSURED) s += '[ASSURED] ';
      s += `mark=${c.mark >= 0 ? c.mark : 0} `;
      if (c.helper) s += `helper=${c.helper} `;
      out.push(s + `[active since ${Math.floor((now - at) / 1000)}s]`);
    }
    return out;
  }
}
