/**
 * `nfqwall reload`: makes the running daemon reload its rule file (as SIGHUP does). Exits 0
 * when the new rules are in force; otherwise prints the `FILE:LINE:COL: message` lines on
 * stderr and exits 1 (the daemon keeps the old rules).
 */
import { request, takeTarget } from './client';

export async function main(argv: string[]): Promise<number> {
  let target;
  try {
    target = takeTarget(argv);
    if (target.rest.includes('-h') || target.rest.includes('--help')) {
      process.stdout.write('usage: nfqwall reload [--control PATH | --queue N]\n');
      return 0;
    }
    if (target.rest.length > 0) throw new Error(`unexpected argument '${target.rest[0]}'`);
  } catch (err) {
    process.stderr.write(`nfqwall reload: ${(err as Error).message}\nusage: nfqwall reload [--control PATH | --queue N]\n`);
    return 2;
  }
  try {
    const r = await request(target.path, { op: 'reload' });
    if (r.ok) return 0;
    const errors = Array.isArray(r.errors) ? (r.errors as string[]) : [];
    for (const line of errors) process.stderr.write(line + '\n');
    process.stderr.write(`nfqwall reload: ${r.error}\n`);
    return 1;
  } catch (e) {
    process.stderr.write(`nfqwall reload: ${(e as Error).message}\n`);
    return 1;
  }
}
