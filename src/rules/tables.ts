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

/**
 * Why a built-in chain cannot hold rules (or a DROP policy) in nfqwall, or null. mangle
 * PREROUTING runs before the kernel routes the packet (ip_rcv → PRE_ROUTING → ip_route_input):
 * a mark set there steers policy routing (`ip rule fwmark`), a TTL or DSCP set there is what
 * the routing decision and ip_forward's TTL decrement see. nfqwall sees packets only at its
 * queue crossing at filter INPUT/FORWARD/OUTPUT, after routing, so such a rule cannot be
 * evaluated where the kernel does; it is refused until a pre-routing crossing exists.
 */
export function chainRefusal(table: string, chain: string): string | null {
  if (table === 'mangle' && chain === 'PREROUTING')
    return (
      'mangle PREROUTING is not supported yet: nfqwall sees packets only after the kernel has routed them ' +
      '(its queue is at filter INPUT/FORWARD/OUTPUT), so a mark, TTL or DSCP set here could not steer routing ' +
      'as the kernel does; use mangle FORWARD/INPUT for what does not need to act before routing'
    );
  return null;
}
