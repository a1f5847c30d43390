/**
 * `nfqwall sysctl [-n] [-a] [NAME[=VALUE] …]`: reads or sets tunables of the running daemon,
 * in sysctl's `name = value` form. Without names: every tunable (like `sysctl -a`). A set
 * applies at once (nf_conntrack_buckets rehashes the table; a smaller nf_conntrack_max drops
 * nothing at once, it only refuses new entries until the table is below it).
 */
import { ClientError, request, takeTarget } from './client';

const USAGE = `usage: nfqwall sysctl [-n] [-a] [NAME[=VALUE] ...] [--control PATH | --queue N]
  -a, --all      every tunable (the default without NAME)
  -n, --values   values only
  -w, --write    accepted for compatibility (NAME=VALUE sets)
`;

export async function main(argv: string[]): Promise<number> {
  let target;
  let valuesOnly = false;
  const names: string[] = [];
  try {
    target = takeTarget(argv);
    for (const a of target.rest) {
      if (a === '-n' || a === '--values') valuesOnly = true;
      else if (a === '-a' || a === '--all' || a === '-w' || a === '--write') continue;
      else if (a === '-h' || a === '--help') {
        process.stdout.write(USAGE);
        return 0;
      } else if (a.startsWith('-')) throw new Error(`unknown option '${a}'`);
      else names.push(a);
    }
  } catch (err) {
    process.stderr.write(`nfqwall sysctl: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const print = (values: unknown) => {
    for (const [n, v] of values as [string, number][]) process.stdout.write(valuesOnly ? `${v}\n` : `${n} = ${v}\n`);
  };
  let code = 0;
  try {
    if (names.length === 0) {
      const r = await request(target.path, { op: 'sysctl.get' });
      if (!r.ok) throw new ClientError(r.error ?? 'failed');
      print(r.values);
    }
    for (const a of names) {
      const eq = a.indexOf('=');
      const r =
        eq > 0
          ? await request(target.path, { op: 'sysctl.set', name: a.slice(0, eq), value: a.slice(eq + 1) })
          : await request(target.path, { op: 'sysctl.get', name: a });
      if (!r.ok) {
        process.stderr.write(`nfqwall sysctl: ${r.error}\n`);
        code = 1;
        continue;
      }
      print(r.values);
    }
  } catch (e) {
    process.stderr.write(`nfqwall sysctl: ${(e as Error).message}\n`);
    return 1;
  }
  return code;
}
