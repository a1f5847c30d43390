/**
 * `nfqwall recent [NAME [+ADDR | -ADDR | /]]`: the running daemon's -m recent lists, as
 * /proc/net/xt_recent offers them: without NAME the list names (`ls /proc/net/xt_recent`),
 * with NAME its addresses (`cat …/NAME`), with a write what `echo +ADDR > …/NAME` does
 * (+ADDR adds or refreshes, -ADDR removes, / empties the list).
 */
import { ClientError, printLines, quietEpipe, request, takeTarget } from './client';

const USAGE = `usage: nfqwall recent [NAME [+ADDR | -ADDR | /]] [--control PATH | --queue N]
  (none)        the names of the lists the loaded rules use
  NAME          the list's addresses: src=ADDR ttl: N last_seen: JIFFIES oldest_pkt: N STAMPS
  NAME +ADDR    adds ADDR (or adds a time stamp to it), as echo +ADDR > /proc/net/xt_recent/NAME
  NAME -ADDR    removes ADDR
  NAME /        removes every address
Time stamps are milliseconds of the daemon's monotonic clock (jiffies at HZ=1000).
`;

export async function main(argv: string[]): Promise<number> {
  let target;
  let name: string | undefined;
  let write: string | undefined;
  try {
    target = takeTarget(argv);
    for (const a of target.rest) {
      if (a === '-h' || a === '--help') {
        process.stdout.write(USAGE);
        return 0;
      }
      if (name === undefined) {
        if (a.startsWith('-')) throw new Error(`unknown option '${a}'`);
        name = a;
      } else if (write === undefined) write = a;
      else throw new Error(`unexpected argument '${a}'`);
    }
  } catch (err) {
    process.stderr.write(`nfqwall recent: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  quietEpipe();
  try {
    const r = await request(target.path, { op: 'recent', name, write }, printLines);
    if (!r.ok) throw new ClientError(r.error ?? 'failed');
    if (Array.isArray(r.names)) process.stdout.write((r.names as string[]).map((n) => `${n}\n`).join(''));
  } catch (e) {
    process.stderr.write(`nfqwall recent: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
