/**
 * The conntrack statistics (struct ip_conntrack_stat, plus nfqwall's own), listed once: the
 * counters' type, `conntrack -S`'s line (format.ts) and the metrics (src/daemon/metrics.ts) are
 * derived from this list.
 */

/**
 * Every counter; `cpuLine`: printed on `conntrack -S`'s per-cpu line, which has them in this
 * order (ctnetlink_cpu_stat_fill_info's).
 */
const STATS = {
  found: { cpuLine: true },
  invalid: { cpuLine: true },
  ignore: { cpuLine: false },
  insert: { cpuLine: true },
  insert_failed: { cpuLine: true },
  drop: { cpuLine: true },
  early_drop: { cpuLine: true },
  error: { cpuLine: true },
  search_restart: { cpuLine: true },
  clash_resolve: { cpuLine: true },
  chaintoolong: { cpuLine: true },
  expect_new: { cpuLine: false },
  expect_create: { cpuLine: false },
  expect_delete: { cpuLine: false },
  /** nfqwall: NEW packets dropped because their source address reached nfqwall.per_source_max */
  per_source_drop: { cpuLine: false },
  /** nfqwall: first packets dropped because NAT found no free tuple in the range (get_unique_tuple exhausted or clashed) */
  nat_drop: { cpuLine: false },
} as const;

export type StatName = keyof typeof STATS;

/** `conntrack -S` counters (struct ip_conntrack_stat) plus nfqwall's own. */
export type ConntrackStats = Record<StatName, number>;

/** Every counter's name, in the order above (the metrics export them all). */
export const STAT_NAMES: readonly StatName[] = Object.keys(STATS) as StatName[];

/** The counters `conntrack -S` prints, in its order. */
export const CPU_LINE_STATS: readonly StatName[] = STAT_NAMES.filter((n) => STATS[n].cpuLine);

/** All counters at 0. */
export function newStats(): ConntrackStats {
  const s = {} as ConntrackStats;
  for (const n of STAT_NAMES) s[n] = 0;
  return s;
}
