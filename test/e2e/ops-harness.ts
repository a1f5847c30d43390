/**
 * Shared helpers of the ops-*.test.ts end-to-end tests: a lab, `nfqwall run` on its gateway
 * with a private control socket, and the client commands run against it.
 */
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab } from '../../src/lab/netns';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'nfqwall.js');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const isRoot = process.getuid?.() === 0;
export const skip = !isRoot ? 'needs root (network namespaces, NFQUEUE)' : !fs.existsSync(ADDON) ? 'native addon not built (npm run build)' : false;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const ENV = { ...process.env, NFQWALL_FROM_SOURCE: '1' };

export function watch(child: ChildProcess) {
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    exited,
    async waitFor(re: RegExp, where: 'out' | 'err' = 'err'): Promise<void> {
      for (;;) {
        if (re.test(where === 'out' ? out : err)) return;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${out}\n${err}`);
        await sleep(50);
      }
    },
  };
}
export type Watched = ReturnType<typeof watch>;

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `nfqw-${tag}-`));
}

/** Starts `nfqwall run` in the lab's gateway; resolves once it has started (queues bound, rules installed). */
export async function startDaemon(lab: Lab, args: string[]): Promise<Watched> {
  const child = lab.spawn('gw', [process.execPath, BIN, 'run', ...args], { cwd: ROOT, env: ENV });
  const w = watch(child);
  await w.waitFor(/"msg":"nfqwall started"/);
  return w;
}

/** Runs `nfqwall ARGS` in the gateway namespace. */
export async function nfq(lab: Lab, args: string[], input?: string) {
  return lab.exec('gw', [process.execPath, BIN, ...args], { cwd: ROOT, env: ENV, input });
}

/** Polls fn until it returns a truthy value (bounded by the test's own timeout). */
export async function until<T>(fn: () => Promise<T | undefined | false>, what: string, tries = 400): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** A TCP echo-ish server on srv: answers each connection with a line. */
export function tcpServer(lab: Lab, addr: string, port: number, reply = 'hello'): ChildProcess {
  return lab.spawn('srv', ['socat', `TCP-LISTEN:${port},bind=${addr},fork,reuseaddr`, `SYSTEM:echo ${reply}`]);
}

export async function waitListen(lab: Lab, port: number, proto: 't' | 'u' = 't'): Promise<void> {
  await until(async () => (await lab.exec('srv', ['ss', `-Hl${proto}n`, `sport = :${port}`])).stdout.trim() !== '', `port ${port} listening`);
}
