/**
 * `nfqwall sync COMMAND`: the running daemon's state sync (run --sync FILE), what conntrackd's
 * options do for a conntrackd:
 *
 *   commit   the peer's entries (external cache) become live entries, the cache is emptied
 *            and the table sent to the peer (conntrackd -c; -f; -R; -B: primary-backup.sh's
 *            "primary"); also SIGUSR1
 *   demote   the table's entries move into the external cache, and a resync is asked of the
 *            peer (becoming the backup); also SIGUSR2
 *   resync   asks the peer for its whole table (conntrackd -n)
 *   bulk     sends the whole table to the peer (conntrackd -B)
 *   flush    empties the external cache (conntrackd -f external)
 *   stats    the sync counters and the peer's liveness (conntrackd -s)
 *
 * `nfqwall conntrack -L --external` lists the external cache (conntrackd -e).
 */
import { request, takeTarget } from './client';

const USAGE = 'usage: nfqwall sync commit|demote|resync|bulk|flush|stats [--control PATH | --queue N]\n';
const OPS: Record<string, string> = {
  commit: 'sync.commit',
  demote: 'sync.demote',
  resync: 'sync.resync',
  bulk: 'sync.bulk',
  flush: 'sync.flush',
  stats: 'sync.stats',
};

export async function main(argv: string[]): Promise<number> {
  let target;
  try {
    target = takeTarget(argv);
    if (target.rest.includes('-h') || target.rest.includes('--help')) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (target.rest.length !== 1 || OPS[target.rest[0]] === undefined)
      throw new Error(target.rest.length === 0 ? 'no command' : `unknown command '${target.rest.join(' ')}'`);
  } catch (err) {
    process.stderr.write(`nfqwall sync: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const cmd = target.rest[0];
  try {
    const r = await request(target.path, { op: OPS[cmd] });
    if (!r.ok) {
      process.stderr.write(`nfqwall sync: ${r.error}\n`);
      return 1;
    }
    if (cmd === 'commit') {
      const reasons = Object.entries((r.reasons as Record<string, number>) ?? {}).map(([k, v]) => `${v} ${k}`);
      process.stdout.write(`${r.committed} entries committed, ${r.failed} not${reasons.length ? ` (${reasons.join('; ')})` : ''}\n`);
    } else if (cmd === 'demote') process.stdout.write(`${r.count} entries moved into the external cache\n`);
    else if (cmd === 'bulk') process.stdout.write(`${r.count} entries sent\n`);
    else if (cmd === 'flush') process.stdout.write(`${r.count} external entries flushed\n`);
    else if (cmd === 'stats') {
      for (const [k, v] of Object.entries(r.stats as Record<string, unknown>)) process.stdout.write(`${k} ${v}\n`);
    }
    return 0;
  } catch (e) {
    process.stderr.write(`nfqwall sync: ${(e as Error).message}\n`);
    return 1;
  }
}
