/**
 * The tables iptables knows with their built-in chains (nft_table_builtin_find in
 * iptables/nft.c), and the ones nfqwall implements: adding a table is one entry in
 * SUPPORTED_TABLES (plus its hooks in the engine).
 */
export const IPTABLES_TABLES: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

export const SUPPORTED_TABLES = ['raw', 'mangle', 'nat', 'filter'] as const;

export type SupportedTable = (typeof SUPPORTED_TABLES)[number];

export function isSupportedTable(name: string): name is SupportedTable {
  return (SUPPORTED_TABLES as readonly string[]).includes(name);
}

/** Built-in chains of the tables nfqwall implements. */
export const BUILTIN_CHAINS: Readonly<Record<SupportedTable, readonly string[]>> = Object.fromEntries(
  SUPPORTED_TABLES.map((t) => [t, IPTABLES_TABLES[t]]),
) as Record<SupportedTable, readonly string[]>;
