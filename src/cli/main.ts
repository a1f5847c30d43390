/**
 * `nfqwall COMMAND …`: dispatches to one module per command (src/cli/<command>.ts),
 * each exporting `main(argv): Promise<number>` (the exit code).
 */
type CommandModule = { main(argv: string[]): Promise<number> };

const COMMANDS: Record<string, { load: () => Promise<CommandModule>; summary: string }> = {
  // Each command registers itself here with one line.
  check: {
    load: async () => require('./check') as CommandModule,
    summary: 'validates a rule file: nothing and exit 0 when valid, FILE:LINE:COL: message lines otherwise',
  },
  lab: {
    load: async () => require('./lab') as CommandModule,
    summary: 'the demo: a client/gateway/server lab in network namespaces with nfqwall on the gateway; Ctrl-C tears it down',
  },
  conntrack: {
    load: async () => require('./conntrack') as CommandModule,
    summary: "the running daemon's connection table, like conntrack-tools (-L, -L expect, -C, -S, -D, -F)",
  },
  reload: {
    load: async () => require('./reload') as CommandModule,
    summary: 'makes the running daemon reload its rule file; exit 1 with the errors when it is invalid',
  },
  nft: {
    load: async () => require('./nft') as CommandModule,
    summary: "nft add element / delete element on the named sets of the running daemon's nftables rules (until a reload)",
  },
  nflog: {
    load: async () => require('./nflog') as CommandModule,
    summary: 'the packets -j NFLOG logs to a group, as lines or a pcap stream (tcpdump -r -), while it runs',
  },
  ipset: {
    load: async () => require('./ipset') as CommandModule,
    summary: "the running daemon's ipsets in ipset(8)'s syntax: create, add, del, test, list, save, restore, flush, destroy, rename, swap",
  },
  recent: {
    load: async () => require('./recent') as CommandModule,
    summary: "the running daemon's -m recent lists: names, addresses, and changes as written to /proc/net/xt_recent/NAME",
  },
  rules: { load: async () => require('./rules') as CommandModule, summary: "the running daemon's rules, iptables-save style (-L [-v] with counters)" },
  sysctl: { load: async () => require('./sysctl') as CommandModule, summary: 'reads or sets tunables of the running daemon (NAME[=VALUE], all without NAME)' },
  sync: {
    load: async () => require('./sync') as CommandModule,
    summary: "the running daemon's state sync (--sync): commit, demote, resync, bulk, flush, stats (conntrackd -c, -n, -B, -f, -s)",
  },
  replay: {
    load: async () => require('./replay') as CommandModule,
    summary: 'offline: runs a capture through the tracker and the rules, prints state and verdict per packet',
  },
  run: { load: async () => require('./run') as CommandModule, summary: 'the daemon: opens the queue(s), installs iptables rules, filters until SIGTERM' },
  uninstall: {
    load: async () => require('./uninstall') as CommandModule,
    summary: "removes nfqwall's iptables rules of a queue, which a fail-closed daemon leaves in place when it stops",
  },
};

function usage(): string {
  const lines = ['usage: nfqwall COMMAND [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', 'nfqwall COMMAND --help shows the options of a command.');
  return lines.join('\n');
}

export async function cliMain(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(usage() + '\n');
    process.exitCode = cmd ? 0 : 2;
    return;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    process.stderr.write(`nfqwall: unknown command '${cmd}'\n${usage()}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    const mod = await entry.load();
    process.exitCode = await mod.main(rest);
  } catch (err) {
    process.stderr.write(`nfqwall ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.NFQWALL_DEBUG) console.error(err);
    process.exitCode = 1;
  }
}
