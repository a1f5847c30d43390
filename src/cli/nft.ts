/**
 * `nfqwall nft add element [FAMILY] TABLE SET { ELEM, … }` and `nfqwall nft delete element …`:
 * nft's commands for the named sets of the running daemon's nftables rule set, so that
 * scripts which feed a set keep working. The change holds until the next reload, which
 * restores the file's elements (as `nft -f FILE` would).
 */
import { ClientError, quietEpipe, request, takeTarget } from './client';

const USAGE = `usage: nfqwall nft add|delete element [FAMILY] TABLE SET { ELEM[, ELEM …] } [--control PATH | --queue N]
  ELEM: an address, a port or protocol number, ADDR/LEN or LOW-HIGH (interval sets), as nft writes them
  e.g.  nfqwall nft add element inet filter blocked '{ 198.18.0.7, 198.19.0.0/16 }'
`;

export async function main(argv: string[]): Promise<number> {
  let target;
  try {
    target = takeTarget(argv);
    if (target.rest.includes('-h') || target.rest.includes('--help')) {
      process.stdout.write(USAGE);
      return 0;
    }
    const [verb, what] = target.rest;
    if ((verb !== 'add' && verb !== 'delete') || what !== 'element') throw new Error('only "add element" and "delete element" are nft commands nfqwall runs');
  } catch (err) {
    process.stderr.write(`nfqwall nft: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  quietEpipe();
  try {
    const r = await request(target.path, { op: 'nft.element', words: target.rest }, () => {});
    if (!r.ok) throw new ClientError(r.error ?? 'failed');
  } catch (e) {
    // as nft reports it
    process.stderr.write(`Error: ${(e as Error).message}\n${target.rest.join(' ')}\n`);
    return 1;
  }
  return 0;
}
