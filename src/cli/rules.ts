/**
 * `nfqwall rules -L [-v]`: the running daemon's rules in iptables-save format; with -v the
 * packet and byte counters of every rule (`[pkts:bytes] -A …`, as iptables-save -c).
 * `--local-routes`: the local routing table -m addrtype reads, as the daemon currently has it.
 */
import { ClientError, printLines, quietEpipe, request, takeTarget } from './client';

const USAGE = `usage: nfqwall rules -L [-v] | --local-routes [--control PATH | --queue N]
  -L, --list       the loaded rules (iptables-save format)
  -v, --verbose    with packet and byte counters per rule and chain
  --local-routes   the local routing table -m addrtype reads (TYPE ADDR/PREFIX ifindex N)
`;

export async function main(argv: string[]): Promise<number> {
  let target;
  let list = false;
  let verbose = false;
  let routes = false;
  try {
    target = takeTarget(argv);
    for (const a of target.rest) {
      if (a === '-L' || a === '--list') list = true;
      else if (a === '-v' || a === '--verbose') verbose = true;
      else if (a === '--local-routes') routes = true;
      else if (a === '-Lv' || a === '-vL') list = verbose = true;
      else if (a === '-h' || a === '--help') {
        process.stdout.write(USAGE);
        return 0;
      } else throw new Error(`unknown option '${a}'`);
    }
    if (!list && !routes) throw new Error('-L or --local-routes is required');
  } catch (err) {
    process.stderr.write(`nfqwall rules: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  quietEpipe();
  try {
    const r = await request(target.path, routes ? { op: 'routes.local' } : { op: 'rules.list', verbose }, printLines);
    if (!r.ok) throw new ClientError(r.error ?? 'failed');
  } catch (e) {
    process.stderr.write(`nfqwall rules: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
