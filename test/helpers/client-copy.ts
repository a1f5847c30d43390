/**
 * The nfqwall CLI for a user other than root. The tests that prove a non-root user is refused by
 * the control socket run the client as nobody, who may not be able to read the checkout at all
 * (a clone under /root, mode 0700, or in a `mktemp -d` directory): run from there, the client
 * would fail at `Cannot find module`, not at the socket. So the same client code (src/cli/main.ts)
 * is bundled into one file in a fresh world-readable directory; npm packages stay external
 * (the client commands load none, only the daemon does), so a mistake there fails loudly.
 */
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

export interface ClientCopy {
  /** The entry to run with node: `node BIN ARGS…` behaves as `bin/nfqwall.js ARGS…`. */
  bin: string;
  /** The directory holding it (mode 0755): a working directory anybody may use. */
  dir: string;
  remove(): void;
}

/** Throws unless every directory from / down to dir may be searched by others (o+x). */
function assertReachableByOthers(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) throw new Error(`clientCopy: ${d} is not searchable by other users (set TMPDIR to a directory they can reach)`);
    if (d === path.dirname(d)) return;
  }
}

export function clientCopy(): ClientCopy {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-client-'));
  fs.chmodSync(dir, 0o755);
  esbuild.buildSync({
    entryPoints: [path.join(ROOT, 'src', 'cli', 'main.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    packages: 'external',
    outfile: path.join(dir, 'main.js'),
    logLevel: 'error',
  });
  const bin = path.join(dir, 'nfqwall.js');
  fs.writeFileSync(bin, "'use strict';\nrequire('./main.js').cliMain(process.argv.slice(2));\n");
  for (const f of ['main.js', 'nfqwall.js']) fs.chmodSync(path.join(dir, f), 0o644);
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    assertReachableByOthers(dir);
  } catch (e) {
    remove();
    throw e;
  }
  return { bin, dir, remove };
}
