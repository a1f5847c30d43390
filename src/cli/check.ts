/**
 * `nfqwall check FILE`: validates a rule file. Prints nothing and exits 0 when valid;
 * otherwise `FILE:LINE:COL: message` lines on stderr and exit 1.
 */
import { readFileSync } from 'node:fs';
import { helperId } from '../conntrack/helpers/registry';
import { formatError, isNftJson, loadRules, type RuleError } from '../rules/index';
import { runIpset } from '../rules/sets/command';

const USAGE = 'usage: nfqwall check [--max-errors N] [--nft] [--ipsets FILE] FILE\n';

export const DEFAULT_MAX_ERRORS = 100;

/** The error lines `check` prints: the first `max` (0 = all), then one line saying how many more. */
export function errorReport(errors: RuleError[], max: number): string[] {
  const shown = max > 0 ? errors.slice(0, max) : errors;
  const lines = shown.map(formatError);
  if (shown.length < errors.length) {
    const more = errors.length - shown.length;
    lines.push(`${more} more error${more === 1 ? '' : 's'} not shown (${errors.length} in all; --max-errors 0 shows every one)`);
  }
  return lines;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(
      `${USAGE}  validates a rule file (iptables-restore format, or nft -j list ruleset JSON); prints errors as FILE:LINE:COL: message (FILE: JSON-PATH: message for nft)\n  --nft            the file must be nft -j JSON\n  --max-errors N   print at most N errors, then how many more (default ${DEFAULT_MAX_ERRORS}; 0 = all)\n  --ipsets FILE    the sets -m set / -j SET may name (an ipset save file, as run --ipsets)\n`,
    );
    return 0;
  }
  let max = DEFAULT_MAX_ERRORS;
  let nft = false;
  let setsFile: string | undefined;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--nft') {
      nft = true;
      continue;
    }
    const ms = /^--ipsets(?:=(.*))?$/.exec(a);
    if (ms) {
      setsFile = ms[1] ?? argv[++i];
      if (!setsFile) {
        process.stderr.write(`nfqwall check: --ipsets needs a file\n${USAGE}`);
        return 2;
      }
      continue;
    }
    const m = /^--max-errors(?:=(.*))?$/.exec(a);
    if (m) {
      const v = m[1] ?? argv[++i];
      if (v === undefined || !/^[0-9]+$/.test(v)) {
        process.stderr.write(`nfqwall check: --max-errors needs a number (0 = all)\n${USAGE}`);
        return 2;
      }
      max = Number(v);
    } else files.push(a);
  }
  if (files.length !== 1) {
    process.stderr.write(USAGE);
    return 2;
  }
  const file = files[0];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    process.stderr.write(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}\n`);
    return 1;
  }
  if (nft && !isNftJson(text)) {
    process.stderr.write(`${file}: not the JSON of nft -j list ruleset\n`);
    return 1;
  }
  if (setsFile !== undefined) {
    let setsText: string;
    try {
      setsText = readFileSync(setsFile, 'utf8');
    } catch (e) {
      process.stderr.write(`${setsFile}: ${(e as Error).message}\n`);
      return 1;
    }
    const r = runIpset(['restore'], 0, setsText);
    if (r.status !== 0) {
      process.stderr.write(`${setsFile}: ${r.err ?? 'restore failed'}\n`);
      return 1;
    }
  }
  const { errors } = loadRules(text, file, { helperId });
  if (errors.length === 0) return 0;
  process.stderr.write(errorReport(errors, max).join('\n') + '\n');
  return 1;
}
