/**
 * Conntrack micro-benchmark: bytes per connection (from process memory) and
 * lookups per second at 1k, 100k and 1M entries. Prints numbers, checks nothing.
 *
 * Two memory figures per connection: `rss` is the growth of the resident set (pages
 * the kernel actually committed: what the entries use), `reserved` the growth of
 * heapUsed + arrayBuffers (what V8 has allocated, including the columns reserved at
 * nf_conntrack_max whose pages are not touched yet). `slowest insert` is the longest
 * single insert while the table grows from empty (every insert timed), overall and after
 * the first 10,000 (JIT warm-up). `batched`: the
 * same work in batches of 64 with Conntrack.prefetchBatch first (as Firewall.processBatch
 * does once the table holds 64k entries; here at every size, to compare).
 *
 *   node --expose-gc dist/bench/micro/conntrack.js [--json] [N | tcp:N ...]   (after npm run build)
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { Conntrack } from '../../src/conntrack/core';
import { defaultTunables } from '../../src/conntrack/sysctl';
import { TUPLE_WORDS, T_DST, T_META, T_PORTS, T_SRC } from '../../src/conntrack/layout';
import { parsePacket } from '../../src/packet/parse';
import { PacketContext } from '../../src/conntrack/context';

/** inserts counted as warm-up for the slowest-insert figure after warm-up */
const WARM = 10_000;
const gc = (globalThis as { gc?: () => void }).gc;
const JSON_OUT = process.argv.includes('--json');

/** Garbage collections (perf_hooks 'gc' entries: start, duration in ms); delivered asynchronously. */
const gcs: { start: number; duration: number }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ start: e.startTime, duration: e.duration });
}).observe({ entryTypes: ['gc'] });
/** Longest pause and count of the collections that started inside one of the windows. */
function gcIn(windows: [number, number][]): { max: number; count: number } {
  let max = 0;
  let count = 0;
  for (const g of gcs) {
    if (!windows.some(([a, b]) => g.start >= a && g.start <= b)) continue;
    count++;
    if (g.duration > max) max = g.duration;
  }
  return { max, count };
}

function mem(): { reserved: number; rss: number } {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { reserved: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

/** An IPv4 TCP SYN whose source address and port are rewritten per flow (checksums off). */
function tcpSyn(): Uint8Array {
  const b = new Uint8Array(20 + 20);
  b[0] = 0x45;
  b[3] = b.length;
  b[8] = 64;
  b[9] = 6;
  b.set([198, 19, 0, 2], 16);
  b[20 + 3] = 80; // dport 80
  b[20 + 7] = 1; // seq 1
  b[20 + 12] = 5 << 4; // data offset 5
  b[20 + 13] = 0x02; // SYN
  b[20 + 14] = 0xff; // window
  return b;
}

/** An IPv4/UDP packet whose source address and port are rewritten per flow (checksums off). */
function udpPacket(): Uint8Array {
  const b = new Uint8Array(20 + 8 + 4);
  b[0] = 0x45;
  b[3] = b.length;
  b[8] = 64;
  b[9] = 17;
  b.set([198, 19, 0, 2], 16);
  b[20 + 3] = 53; // dport 53
  b[20 + 5] = 12; // udp length
  return b;
}

function setFlow(b: Uint8Array, i: number): void {
  // source 198.18.x.y (16 bits of i), source port 1024 + (i >> 16)
  b[12] = 198;
  b[13] = 18;
  b[14] = (i >>> 8) & 0xff;
  b[15] = i & 0xff;
  const sport = 1024 + (i >>> 16);
  b[20] = sport >>> 8;
  b[21] = sport & 0xff;
}

function run(n: number, proto: 'udp' | 'tcp'): () => void {
  const tun = defaultTunables();
  tun.nf_conntrack_max = n;
  tun.nf_conntrack_buckets = Math.max(1024, Math.ceil(n / 512) * 512);
  tun.nf_conntrack_checksum = 0;
  tun.nf_conntrack_udp_timeout = 3600;
  const before = mem();
  const ct = new Conntrack(tun);
  const ctx = new PacketContext();
  const pkt = proto === 'tcp' ? tcpSyn() : udpPacket();
  let now = 1;
  const t0 = performance.now();
  let worstMs = 0;
  let worstAt = 0;
  // past the warm-up: JIT compiles early on, and pinned to one CPU the compiler thread preempts the inserts
  let worstWarmMs = 0;
  let worstWarmAt = 0;
  for (let i = 0; i < n; i++) {
    const ti = performance.now();
    setFlow(pkt, i);
    ctx.reset();
    parsePacket(pkt, 0, pkt.length, ctx.view);
    ct.in(ctx, now);
    ct.confirm(ctx, now);
    const dt = performance.now() - ti;
    if (dt > worstMs) {
      worstMs = dt;
      worstAt = i;
    }
    if (i >= WARM && dt > worstWarmMs) {
      worstWarmMs = dt;
      worstWarmAt = i;
    }
  }
  const insertMs = performance.now() - t0;
  const insertWindow: [number, number][] = [[t0, t0 + insertMs]];
  const windows: [number, number][] = [];
  const after = mem();
  if (ct.count !== n) throw new Error(`expected ${n} entries, have ${ct.count}`);

  // lookups of existing flows through the full per-packet path (parse + in + confirm)
  const rounds = Math.max(1, Math.floor(2_000_000 / n));
  const stride = 7919; // visit entries out of insertion order
  const t1 = performance.now();
  let hits = 0;
  for (let r = 0; r < rounds; r++) {
    for (let k = 0, i = 0; k < n; k++, i = (i + stride) % n) {
      setFlow(pkt, i);
      ctx.reset();
      parsePacket(pkt, 0, pkt.length, ctx.view);
      ct.in(ctx, now);
      ct.confirm(ctx, now);
      if (ctx.unconfirmed === 0 && ctx.entry >= 0) hits++;
    }
    now += 1;
  }
  const pathMs = performance.now() - t1;
  windows.push([t1, t1 + pathMs]);

  // bare table lookups of ready-made tuples
  const tuple = new Uint32Array(TUPLE_WORDS);
  tuple[T_META] = (4 << 8) | (proto === 'tcp' ? 6 : 17);
  tuple[T_DST] = (198 << 24) | (19 << 16) | 2;
  const t2 = performance.now();
  let found = 0;
  for (let r = 0; r < rounds; r++) {
    for (let k = 0, i = 0; k < n; k++, i = (i + stride) % n) {
      tuple[T_SRC] = ((198 << 24) | (18 << 16) | (i & 0xffff)) >>> 0;
      tuple[T_PORTS] = (((1024 + (i >>> 16)) << 16) | (proto === 'tcp' ? 80 : 53)) >>> 0;
      if (ct.lookup(tuple, now) >= 0) found++;
    }
  }
  const lookupMs = performance.now() - t2;
  windows.push([t2, t2 + lookupMs]);
  if (found !== rounds * n || hits !== rounds * n) throw new Error('lookups missed entries');

  // batches of 64 as Firewall.processBatch does on a large table: hash every tuple of the
  // batch, prefetchBatch (the misses overlap), then the lookups (which hash again)
  const BATCH = 64;
  const batch: Uint32Array[] = [];
  for (let j = 0; j < BATCH; j++) batch.push(tuple.slice());
  const hs = new Int32Array(BATCH);
  let sink = 0;
  const t3 = performance.now();
  let found2 = 0;
  for (let r = 0; r < rounds; r++) {
    for (let k = 0, i = 0; k < n;) {
      const m = Math.min(BATCH, n - k);
      for (let j = 0; j < m; j++, k++, i = (i + stride) % n) {
        const t = batch[j];
        t[T_SRC] = ((198 << 24) | (18 << 16) | (i & 0xffff)) >>> 0;
        t[T_PORTS] = (((1024 + (i >>> 16)) << 16) | (proto === 'tcp' ? 80 : 53)) >>> 0;
        hs[j] = ct.hashTuple(t);
      }
      sink ^= ct.prefetchBatch(hs, m);
      for (let j = 0; j < m; j++) if (ct.lookup(batch[j], now) >= 0) found2++;
    }
  }
  const batchedMs = performance.now() - t3;
  windows.push([t3, t3 + batchedMs]);
  // the packet path in batches: parse + hashPacket for the batch, prefetchBatch, then parse + in + confirm
  const pkts: Uint8Array[] = [];
  for (let j = 0; j < BATCH; j++) pkts.push(pkt.slice());
  const t4 = performance.now();
  let hits2 = 0;
  for (let r = 0; r < rounds; r++) {
    for (let k = 0, i = 0; k < n;) {
      const m = Math.min(BATCH, n - k);
      for (let j = 0; j < m; j++, k++, i = (i + stride) % n) {
        const p = pkts[j];
        setFlow(p, i);
        parsePacket(p, 0, p.length, ctx.view);
        hs[j] = ct.hashPacket(ctx.view);
      }
      sink ^= ct.prefetchBatch(hs, m);
      for (let j = 0; j < m; j++) {
        const p = pkts[j];
        ctx.reset();
        parsePacket(p, 0, p.length, ctx.view);
        ct.in(ctx, now);
        ct.confirm(ctx, now);
        if (ctx.unconfirmed === 0 && ctx.entry >= 0) hits2++;
      }
    }
  }
  const batchedPathMs = performance.now() - t4;
  windows.push([t4, t4 + batchedPathMs]);
  if (found2 !== rounds * n || hits2 !== rounds * n) throw new Error(`batched lookups missed entries (${sink})`);

  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
  return () => {
    const g = gcIn(windows);
    const gi = gcIn(insertWindow);
    const row: ConntrackRow = {
      entries: n,
      proto,
      bytes_per_conn_rss: Math.round((after.rss - before.rss) / n),
      bytes_per_conn_reserved: Math.round((after.reserved - before.reserved) / n),
      create_per_s: Math.round((n / insertMs) * 1000),
      packet_path_per_s: Math.round(((rounds * n) / pathMs) * 1000),
      packet_path_batched_per_s: Math.round(((rounds * n) / batchedPathMs) * 1000),
      lookups_per_s: Math.round(((rounds * n) / lookupMs) * 1000),
      lookups_batched_per_s: Math.round(((rounds * n) / batchedMs) * 1000),
      buckets: tun.nf_conntrack_buckets,
      gc_max_ms_at_size: g.max,
      gc_max_ms_growing: gi.max,
      slowest_insert_ms: worstMs,
      slowest_insert_after_warmup_ms: n > WARM ? worstWarmMs : null,
    };
    if (JSON_OUT) {
      console.log(JSON.stringify(row));
      return;
    }
    console.log(
      `${fmt(n).padStart(9)} entries${proto === 'tcp' ? ' (tcp)' : ''}: ${fmt(row.bytes_per_conn_rss).padStart(4)} bytes/conn rss, ${fmt(row.bytes_per_conn_reserved)} reserved` +
        ` | create ${fmt(row.create_per_s)}/s` +
        ` | packet path ${fmt(row.packet_path_per_s)}/s (batched ${fmt(row.packet_path_batched_per_s)}/s)` +
        ` | lookup ${fmt(row.lookups_per_s)}/s (batched ${fmt(row.lookups_batched_per_s)}/s)` +
        ` | buckets ${row.buckets}` +
        ` | gc max ${g.max.toFixed(1)} ms (${g.count} gcs) at size, while growing gc max ${gi.max.toFixed(1)} ms (${gi.count} gcs), slowest insert ${worstMs.toFixed(1)} ms (#${worstAt})` +
        (n > WARM ? `, after #${WARM} ${worstWarmMs.toFixed(1)} ms (#${worstWarmAt})` : ''),
    );
  };
}

/** One size's figures; `--json` prints them as one JSON line each (what bench/run.ts reads). */
export interface ConntrackRow {
  entries: number;
  proto: 'udp' | 'tcp';
  bytes_per_conn_rss: number;
  bytes_per_conn_reserved: number;
  create_per_s: number;
  packet_path_per_s: number;
  packet_path_batched_per_s: number;
  lookups_per_s: number;
  lookups_batched_per_s: number;
  buckets: number;
  gc_max_ms_at_size: number;
  gc_max_ms_growing: number;
  slowest_insert_ms: number;
  slowest_insert_after_warmup_ms: number | null;
}

// sizes: N (UDP flows) or tcp:N (TCP SYN_SENT entries: with the TCP tracker's per-entry state)
async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => a !== '--json');
  if (!gc && !JSON_OUT) console.log('(run with node --expose-gc for steadier memory numbers)');
  for (const a of args.length ? args : ['1000', '100000', '1000000']) {
    const tcp = a.startsWith('tcp:');
    const n = Number(tcp ? a.slice(4) : a);
    if (n > 0) {
      const print = run(n, tcp ? 'tcp' : 'udp');
      await new Promise((r) => setTimeout(r, 50)); // let the gc entries arrive
      print();
    }
  }
}

void main();
