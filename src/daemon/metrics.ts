/**
 * Prometheus metrics at http://HOST:PORT/metrics (`run --metrics HOST:PORT`).
 *
 * A private prom-client Registry; every nfqwall value is read from the live counters when
 * Prometheus scrapes (custom collectors), so nothing is added to the packet path beyond the
 * counters the pipeline keeps anyway. Names of the conntrack metrics mirror node-exporter's
 * (`node_nf_conntrack_*` → `nfqwall_nf_conntrack_*`) and have its types (gauges).
 */
import type { SyncStats } from '../sync/service';
import * as http from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { STAT_NAMES, type ConntrackStats } from '../conntrack/stats';
import { MALFORMED_NAMES } from '../packet/view';
import { HOOK_NAMES } from '../pipeline/firewall';
import { readKernelQueues, type Queue, type QueueStats } from '../queue/queue';
import type { TunableValues } from '../conntrack/sysctl';
import type { RuleCounters } from '../pipeline/load-rules';
import type { Logger } from './log';
import { BATCH_BUCKETS, type FirewallService } from './service';
import { rejectRateLimited } from '../pipeline/load-rules';

type Labels = Record<string, string | number>;
interface Value {
  value: number;
  labels?: Labels;
  metricName?: string;
}

/** One table's figures (one FirewallService: the daemon's, or one worker thread's). */
export interface ServiceSnapshot {
  queue: number;
  count: number;
  stats: ConntrackStats;
  expectCount: number;
  packets: number[];
  bytes: number[];
  malformed: number[];
  batchHist: number[];
  batches: number;
  batchPackets: number;
  rules: RuleCounters;
  ruleCount: number;
  queueStats?: QueueStats;
  /** REJECT's ICMP errors held back by the rate limits (this thread's sender) */
  rejectLimited: { host: number; global: number };
}

export function snapshotService(svc: FirewallService, q?: Queue): ServiceSnapshot {
  const ct = svc.fw.ct;
  return {
    queue: q?.queue ?? -1,
    count: ct.count,
    stats: { ...ct.stats },
    expectCount: ct.expectations.count,
    packets: Array.from(svc.fw.packets),
    bytes: Array.from(svc.fw.bytes),
    malformed: Array.from(svc.fw.malformed),
    batchHist: Array.from(svc.batchHist),
    batches: svc.batches,
    batchPackets: svc.batchPackets,
    rules: svc.rules.ruleCounters(),
    ruleCount: svc.rules.ruleCount,
    queueStats: q?.stats(),
    rejectLimited: rejectRateLimited(),
  };
}

/** Everything a scrape shows, merged over the tables. */
export interface Collected {
  tun: TunableValues;
  /** nf_conntrack_count: every table's entries (and restored ones no worker has claimed yet) */
  entries: number;
  tables: ServiceSnapshot[];
  queues: QueueStats[];
  ruleCount: number;
  reloads: number;
  reloadFailures: number;
  /** state sync (--sync), when on */
  sync?: SyncStats;
}

export interface MetricsSources {
  /** every table's figures, merged (src/daemon/backend.ts) */
  collect: () => Promise<Collected>;
  /** /proc/net/netfilter/nfnetlink_queue (tests replace it) */
  kernelQueuesFile?: string;
  /** control socket counters, when there is one */
  control?: () => { requests: number; badRequests: number; connections: number; refusedConnections: number };
}

const sum = (c: Collected, f: (t: ServiceSnapshot) => number) => c.tables.reduce((a, t) => a + f(t), 0);

/** Per-rule counters summed over the tables (same rule file everywhere; keyed to survive a reload between reads). */
function sumRules(c: Collected): RuleCounters {
  if (c.tables.length === 1) return c.tables[0].rules;
  const rules = new Map<string, RuleCounters['rules'][number]>();
  const policies = new Map<string, RuleCounters['policies'][number]>();
  for (const t of c.tables) {
    for (const r of t.rules.rules) {
      const k = `${r.table} ${r.chain} ${r.rule}`;
      const o = rules.get(k);
      if (o) {
        o.packets += r.packets;
        o.bytes += r.bytes;
      } else rules.set(k, { ...r });
    }
    for (const r of t.rules.policies) {
      const k = `${r.table} ${r.chain}`;
      const o = policies.get(k);
      if (o) {
        o.packets += r.packets;
        o.bytes += r.bytes;
      } else policies.set(k, { ...r });
    }
  }
  return { rules: [...rules.values()], policies: [...policies.values()] };
}

/** Builds the registry with every nfqwall metric and the process/Node.js default metrics. */
export function createRegistry(src: MetricsSources): Registry {
  const reg = new Registry();
  const collect = src.collect;
  // one collection per scrape (prom-client asks each metric separately)
  let cache: { at: number; p: Promise<Collected> } | undefined;
  const current = (): Promise<Collected> => {
    const now = Date.now();
    if (!cache || now - cache.at > 200) cache = { at: now, p: collect() };
    return cache.p;
  };
  const add = (name: string, help: string, type: 'gauge' | 'counter' | 'histogram', values: (c: Collected) => Value[]) => {
    reg.registerMetric({
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values(await current()) }),
    } as never);
  };

  add('nfqwall_nf_conntrack_entries', 'Number of currently allocated flow entries for connection tracking.', 'gauge', (c) => [{ value: c.entries }]);
  add('nfqwall_nf_conntrack_entries_limit', 'Maximum size of connection tracking table (net.netfilter.nf_conntrack_max).', 'gauge', (c) => [
    { value: c.tun.nf_conntrack_max },
  ]);
  add('nfqwall_nf_conntrack_buckets', 'Size of the connection tracking hash table (net.netfilter.nf_conntrack_buckets).', 'gauge', (c) => [
    { value: c.tun.nf_conntrack_buckets },
  ]);
  for (const s of STAT_NAMES) {
    add(`nfqwall_nf_conntrack_stat_${s}`, `Connection tracking statistic ${s} (conntrack -S).`, 'gauge', (c) => [{ value: sum(c, (t) => t.stats[s]) }]);
  }
  add('nfqwall_queue_conntrack_entries', 'Flow entries in the connection table of the worker thread serving the queue (run --queues A:B).', 'gauge', (c) =>
    c.tables.filter((t) => t.queue >= 0).map((t) => ({ value: t.count, labels: { queue: t.queue } })),
  );
  add('nfqwall_nf_conntrack_expect_entries', 'Number of current expectations.', 'gauge', (c) => [{ value: sum(c, (t) => t.expectCount) }]);
  add('nfqwall_nf_conntrack_expect_limit', 'Maximum number of expectations (net.netfilter.nf_conntrack_expect_max).', 'gauge', (c) => [
    { value: c.tun.nf_conntrack_expect_max },
  ]);

  const sync = (f: (s: SyncStats) => Value[]) => (c: Collected) => (c.sync ? f(c.sync) : []);
  add(
    'nfqwall_sync_messages_total',
    'State sync messages sent to and received from the peer (--sync), control messages included.',
    'counter',
    sync((s) => [
      { value: s.msgSent, labels: { direction: 'sent' } },
      { value: s.msgReceived, labels: { direction: 'received' } },
    ]),
  );
  add(
    'nfqwall_sync_messages_lost_total',
    "Peer's messages that never arrived (gaps in its sequence numbers).",
    'counter',
    sync((s) => [{ value: s.msgLost }]),
  );
  add(
    'nfqwall_sync_malformed_total',
    'Received sync messages refused as malformed.',
    'counter',
    sync((s) => [{ value: s.malformed }]),
  );
  add(
    'nfqwall_sync_resyncs_total',
    'Resyncs: requests sent to the peer, requests received, whole-table sends (answers, commits, overruns).',
    'counter',
    sync((s) => [
      { value: s.resyncRequestsSent, labels: { kind: 'requested' } },
      { value: s.resyncRequestsReceived, labels: { kind: 'received' } },
      { value: s.bulkSends, labels: { kind: 'table_sent' } },
    ]),
  );
  add(
    'nfqwall_sync_overruns_total',
    'Times the queue of table events overflowed (the whole table was sent instead).',
    'counter',
    sync((s) => [{ value: s.overruns }]),
  );
  add(
    'nfqwall_sync_committed_total',
    'External entries made live by commits, and those that could not be.',
    'counter',
    sync((s) => [
      { value: s.committed, labels: { result: 'committed' } },
      { value: s.commitFailed, labels: { result: 'failed' } },
    ]),
  );
  add(
    'nfqwall_sync_external_entries',
    "Entries in the external cache (the peer's).",
    'gauge',
    sync((s) => [{ value: s.externalEntries }]),
  );
  add(
    'nfqwall_sync_peer_up',
    'Whether the sync peer was heard within peer-timeout.',
    'gauge',
    sync((s) => [{ value: s.peerUp ? 1 : 0 }]),
  );
  add(
    'nfqwall_sync_peer_losses_total',
    'Times the sync peer fell silent for peer-timeout.',
    'counter',
    sync((s) => [{ value: s.peerLosses }]),
  );

  const byHook = (f: (t: ServiceSnapshot) => number[]) => (c: Collected) => {
    const out: Value[] = [];
    for (let h = 0; h < HOOK_NAMES.length; h++) {
      for (let v = 0; v < 2; v++) {
        const n = sum(c, (t) => f(t)[h * 2 + v]);
        if (n > 0) out.push({ value: n, labels: { hook: HOOK_NAMES[h], verdict: v === 1 ? 'accept' : 'drop' } });
      }
    }
    return out;
  };
  add(
    'nfqwall_packets_total',
    'Packets decided, by hook and verdict.',
    'counter',
    byHook((t) => t.packets),
  );
  add(
    'nfqwall_bytes_total',
    'Bytes of the packets decided (original length), by hook and verdict.',
    'counter',
    byHook((t) => t.bytes),
  );
  add(
    'nfqwall_reject_icmp_ratelimited_total',
    'ICMP errors REJECT did not send: over the per-host (icmp_ratelimit) or the global (icmp_msgs_per_sec) limit.',
    'counter',
    (c) => [
      { value: sum(c, (t) => t.rejectLimited.host), labels: { limit: 'host' } },
      { value: sum(c, (t) => t.rejectLimited.global), labels: { limit: 'global' } },
    ],
  );
  add('nfqwall_malformed_packets_total', 'Malformed or truncated packets (treated as INVALID), by reason.', 'counter', (c) => {
    const out: Value[] = [];
    for (let i = 1; i < MALFORMED_NAMES.length; i++) out.push({ value: sum(c, (t) => t.malformed[i]), labels: { reason: MALFORMED_NAMES[i] } });
    return out;
  });

  const perQueue = (field: 'packets' | 'batches' | 'enobufs' | 'overflow' | 'truncated' | 'handlerErrors') => (c: Collected) =>
    c.queues.map((q) => ({ value: q[field], labels: { queue: q.queue } }));
  add('nfqwall_queue_packets_total', 'Packets received from the queue.', 'counter', perQueue('packets'));
  add('nfqwall_queue_batches_total', 'Batches received from the queue.', 'counter', perQueue('batches'));
  add('nfqwall_queue_enobufs_total', 'Queue overflows (ENOBUFS): packet messages the kernel could not deliver to nfqwall.', 'counter', perQueue('enobufs'));
  add('nfqwall_queue_overflow_total', 'Receive overflows counted by the queue binding.', 'counter', perQueue('overflow'));
  add('nfqwall_queue_truncated_total', 'Packets delivered truncated to the copy range.', 'counter', perQueue('truncated'));
  add(
    'nfqwall_queue_handler_errors_total',
    'Batches whose handler threw (their undecided packets got the error verdict).',
    'counter',
    perQueue('handlerErrors'),
  );
  const kernel = (field: 'qlen' | 'queueDropped' | 'userDropped') => (c: Collected) => {
    const mine = new Set(c.queues.map((q) => q.queue));
    return readKernelQueues(src.kernelQueuesFile)
      .filter((k) => mine.has(k.queue))
      .map((k) => ({ value: k[field], labels: { queue: k.queue } }));
  };
  add('nfqwall_queue_in_flight', 'Packets queued by the kernel and waiting for a verdict (nfnetlink_queue queue_total).', 'gauge', kernel('qlen'));
  add(
    'nfqwall_queue_full_dropped_total',
    'Packets the kernel dropped because the queue was full (nfnetlink_queue queue_dropped).',
    'counter',
    kernel('queueDropped'),
  );
  add('nfqwall_queue_user_dropped_total', 'Packets the kernel could not send to nfqwall (nfnetlink_queue user_dropped).', 'counter', kernel('userDropped'));

  add('nfqwall_batch_size', 'Packets per received batch.', 'histogram', (c) => {
    const out: Value[] = [];
    let cum = 0;
    for (let i = 0; i < BATCH_BUCKETS.length; i++) {
      cum += sum(c, (t) => t.batchHist[i]);
      out.push({ metricName: 'nfqwall_batch_size_bucket', value: cum, labels: { le: BATCH_BUCKETS[i] } });
    }
    const batches = sum(c, (t) => t.batches);
    out.push({ metricName: 'nfqwall_batch_size_bucket', value: batches, labels: { le: '+Inf' } });
    out.push({ metricName: 'nfqwall_batch_size_sum', value: sum(c, (t) => t.batchPackets) });
    out.push({ metricName: 'nfqwall_batch_size_count', value: batches });
    return out;
  });

  add('nfqwall_rule_packets_total', 'Packets matched per rule (rule = number within its chain, from 1).', 'counter', (c) =>
    sumRules(c).rules.map((r) => ({ value: r.packets, labels: { table: r.table, chain: r.chain, rule: r.rule } })),
  );
  add('nfqwall_rule_bytes_total', 'Bytes matched per rule (rule = number within its chain, from 1).', 'counter', (c) =>
    sumRules(c).rules.map((r) => ({ value: r.bytes, labels: { table: r.table, chain: r.chain, rule: r.rule } })),
  );
  add('nfqwall_chain_policy_packets_total', 'Packets that met the policy of a built-in chain.', 'counter', (c) =>
    sumRules(c).policies.map((r) => ({ value: r.packets, labels: { table: r.table, chain: r.chain } })),
  );
  add('nfqwall_chain_policy_bytes_total', 'Bytes of the packets that met the policy of a built-in chain.', 'counter', (c) =>
    sumRules(c).policies.map((r) => ({ value: r.bytes, labels: { table: r.table, chain: r.chain } })),
  );
  add('nfqwall_rules', 'Rules loaded.', 'gauge', (c) => [{ value: c.ruleCount }]);
  add('nfqwall_reloads_total', 'Rule reloads that took effect.', 'counter', (c) => [{ value: c.reloads }]);
  add('nfqwall_reload_failures_total', 'Rule reloads refused because the file was invalid.', 'counter', (c) => [{ value: c.reloadFailures }]);
  if (src.control) {
    const ctl = src.control;
    add('nfqwall_control_requests_total', 'Control socket requests.', 'counter', () => [{ value: ctl().requests }]);
    add(
      'nfqwall_control_bad_requests_total',
      'Control socket requests answered with an error (malformed, oversized, unknown op, bad arguments).',
      'counter',
      () => [{ value: ctl().badRequests }],
    );
    add('nfqwall_control_refused_connections_total', 'Control socket connections refused because --control-max-clients were already served.', 'counter', () => [
      { value: ctl().refusedConnections },
    ]);
  }
  collectDefaultMetrics({ register: reg, prefix: 'nfqwall_' });
  return reg;
}

/** Parses HOST:PORT ([v6]:PORT accepted). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s.trim());
  if (!m || Number(m[3]) > 65535) throw new Error(`--metrics: expected HOST:PORT (got '${s}')`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}

export class MetricsServer {
  private server: http.Server | undefined;
  constructor(
    private readonly reg: Registry,
    private readonly log: Logger,
  ) {}

  async listen(listen: string): Promise<{ host: string; port: number }> {
    const { host, port } = parseListen(listen);
    const server = http.createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' }).end();
        return;
      }
      if (url !== '/metrics') {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found; metrics are at /metrics\n');
        return;
      }
      this.reg.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': this.reg.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: Error) => {
          this.log.error({ err }, 'metrics collection failed');
          res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${err.message}\n`);
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'metrics server error'));
    this.server = server;
    const addr = server.address() as { address: string; port: number };
    this.log.info({ host: addr.address, port: addr.port }, 'metrics listening at /metrics');
    return { host: addr.address, port: addr.port };
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
