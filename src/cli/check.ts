/**
 * `nfqwall check FILE`: validates a rule file. Prints nothing and exits 0 when valid;
 * otherwise `FILE:LINE:COL: message` lines on stderr and exit 1.
 */
import { readFileSync } from 'node:fs';
import { formatError, loadRules } from '../rules/index';

/** The conntrack helper registry's name → id lookup when it is available, else the helpers SPEC requires. */
function helperLookup(): (name: string) => number {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const reg = require('../conntrack/helpers/registry');
    for (const key of ['helperId', 'helperIdByName', 'lookupHelperId']) if (typeof reg[key] === 'function') return reg[key];
  } catch {
    // registry not present: fall back below
  }
  const known: Record<string, number> = { ftp: 1 };
  return (name) => known[name] ?? 0;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write('usage: nfqwall check FILE\n  validates a rule file (iptables-restore format); prints errors as FILE:LINE:COL: message\n');
    return 0;
  }
  if (argv.length !== 1) {
    process.stderr.write('usage: nfqwall check FILE\n');
    return 2;
  }
  const file = argv[0];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    process.stderr.write(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}\n`);
    return 1;
  }
  const { errors } = loadRules(text, file, { helperId: helperLookup() });
  if (errors.length === 0) return 0;
  process.stderr.write(errors.map(formatError).join('\n') + '\n');
  return 1;
}
