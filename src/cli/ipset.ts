/**
 * `nfqwall ipset COMMAND …`: the running daemon's ipsets, with ipset(8)'s own syntax (create,
 * add, del, test, destroy, list, save, restore, flush, rename, swap; -exist, -quiet, -output
 * save, -name, -terse), so that tools written for ipset (fail2ban's actions) can be pointed at
 * it. `restore` reads its standard input; the exit status is ipset's (0, 1, 2).
 */
import { ClientError, printLines, quietEpipe, request, takeTarget } from './client';

const USAGE = `usage: nfqwall ipset [--control PATH | --queue N] [-exist] [-quiet] [-output plain|save] COMMAND …
  create SETNAME TYPENAME [CREATE-OPTIONS]   hash:ip hash:net hash:ip,port hash:net,port hash:ip,port,ip
                                             hash:ip,port,net bitmap:ip bitmap:port list:set
  add SETNAME ENTRY [timeout N] [nomatch] [packets N bytes N] [comment "TEXT"]
  del SETNAME ENTRY          test SETNAME ENTRY
  destroy [SETNAME]          flush [SETNAME]          rename FROM TO          swap FROM TO
  list [SETNAME]             save [SETNAME]           restore (reads standard input)
The daemon keeps the sets across rule reloads; start it with --ipsets FILE to load an ipset save file.
`;

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

export async function main(argv: string[]): Promise<number> {
  let target;
  try {
    target = takeTarget(argv);
  } catch (err) {
    process.stderr.write(`nfqwall ipset: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const words = target.rest;
  if (words.length === 0 || words.includes('-h') || words.includes('--help') || words[0] === 'help') {
    process.stdout.write(USAGE);
    return words.length === 0 ? 2 : 0;
  }
  const cmd = words.find((w) => !w.startsWith('-'));
  const stdin = cmd === 'restore' || cmd === 'r' || words.includes('-R') ? await readStdin() : undefined;
  quietEpipe();
  try {
    const r = await request(target.path, { op: 'ipset', argv: words, stdin }, printLines);
    if (!r.ok) throw new ClientError(r.error ?? 'failed');
    if (typeof r.err === 'string') process.stderr.write(`nfqwall ipset: ${r.err}\n`);
    return typeof r.status === 'number' ? r.status : 1;
  } catch (e) {
    process.stderr.write(`nfqwall ipset: ${(e as Error).message}\n`);
    return 1;
  }
}
