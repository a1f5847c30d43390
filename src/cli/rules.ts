/**
 * `nfqwall rules -L [-v]`: the running daemon's rules in iptables-save format; with -v the
 * packet and byte counters of every rule (`[pkts:bytes] -A …`, as iptables-save -c).
 */
import { ClientError, printLines, quietEpipe, request, takeTarget } from './client';

const USAGE = `usage: nfqwall rules -L [-v] [--control PATH | --queue N]
  -L, --list       the loaded rules (iptables-save format)
  -v, --verbose    with packet and byte counters per rule and chain
`;

export async function main(argv: string[]): Promise<number> {
  let target;
  let list = false;
  let verbose = false;
  try {
    target = takeTarget(argv);
    for (const a of target.rest) {
      if (a === '-L' || a === '--list') list = true;
      else if (a === '-v' || a === '--verbose') verbose = true;
      else if (a === '-Lv' || a === '-vL') list = verbose = true;
      else if (a === '-h' || a === '--help') {
        process.stdout.write(USAGE);
        return 0;
      } else throw new Error(`unknown option '${a}'`);
    }
    if (!list) throw new Error('-L is required');
  } catch (err) {
    process.stderr.write(`nfqwall rules: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  quietEpipe();
  try {
    const r = await request(target.path, { op: 'rules.list', verbose }, printLines);
    if (!r.ok) throw new ClientError(r.error ?? 'failed');
  } catch (e) {
    process.stderr.write(`nfqwall rules: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
