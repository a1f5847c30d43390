/**
 * Shared helpers of the ops-*.test.ts end-to-end tests: a lab, `nfqwall run` on its gateway
 * with a private control socket, and the client commands run against it.
 */
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as LAB } from '../../src/lab/netns';
import type { ClientCopy } from '../helpers/client-copy';
import { watch as watchOutput, type Watched } from '../helpers/watch';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'nfqwall.js');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const isRoot = process.getuid?.() === 0;
export const skip = !isRoot ? 'needs root (network namespaces, NFQUEUE)' : !fs.existsSync(ADDON) ? 'native addon not built (npm run build)' : false;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const ENV = { ...process.env, NFQWALL_FROM_SOURCE: '1' };

/** The daemon's log goes to stderr: waitFor() reads it by default, with no time limit but the process's exit. */
export function watch(child: ChildProcess): Watched {
  return watchOutput(child, { where: 'err', timeoutMs: Infinity });
}
export type { Watched };

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `nfqw-${tag}-`));
}

/** Starts `nfqwall run` in the lab's gateway; resolves once it has started (queues bound, rules installed). */
export async function startDaemon(lab: Lab, args: string[], env: NodeJS.ProcessEnv = ENV): Promise<Watched> {
  const child = lab.spawn('gw', [process.execPath, BIN, 'run', ...args], { cwd: ROOT, env });
  const w = watch(child);
  await w.waitFor(/"msg":"nfqwall started"/);
  return w;
}

/** Runs `nfqwall ARGS` in the gateway namespace. */
export async function nfq(lab: Lab, args: string[], input?: string) {
  return lab.exec('gw', [process.execPath, BIN, ...args], { cwd: ROOT, env: ENV, input });
}

/** Drops to nobody (uid/gid 65534, no supplementary groups) before running the rest of the argv. */
export const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

/**
 * Runs `nfqwall ARGS` in the gateway namespace from a copy of the client (test/helpers/client-copy.ts),
 * as nobody or as root: the same files either way, which nobody can read wherever the checkout is.
 */
export async function nfqCopy(lab: Lab, client: ClientCopy, as: 'nobody' | 'root', args: string[]) {
  const argv = [process.execPath, client.bin, ...args];
  return lab.exec('gw', as === 'nobody' ? [...AS_NOBODY, ...argv] : argv, { cwd: client.dir, env: ENV });
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

export const TCP_TOOL = path.join(ROOT, 'test', 'helpers', 'tcp.js');

/** The last `BYTES n` a test/helpers/tcp.js sink printed (0 before any). */
export function lastBytes(out: string): number {
  const all = [...out.matchAll(/^BYTES (\d+)$/gm)];
  return all.length ? Number(all[all.length - 1][1]) : 0;
}

/**
 * A long TCP stream from cli to srv:PORT (test/helpers/tcp.js source → sink): CHUNK random bytes
 * every INTERVAL ms until stop(); both ends hash what they sent / received.
 */
export async function bulkStream(lab: Lab, port: number, chunk = 65536, intervalMs = 10) {
  const sink = watch(lab.spawn('srv', [process.execPath, TCP_TOOL, 'sink', LAB.srv4, String(port)], { cwd: ROOT }));
  await sink.waitFor(/^READY$/m, 'out');
  const source = watch(lab.spawn('cli', [process.execPath, TCP_TOOL, 'source', LAB.srv4, String(port), String(chunk), String(intervalMs)], { cwd: ROOT }));
  await source.waitFor(/^CONNECTED \d+$/m, 'out');
  const localPort = Number(/^CONNECTED (\d+)$/m.exec(source.out)![1]);
  return {
    sink,
    source,
    localPort,
    received: () => lastBytes(sink.out),
    broken: () => /^(ERR|CLOSED)/m.test(source.out) || /^ERR/m.test(sink.out),
    /** Waits until the sink has received `more` bytes beyond what it had; throws if the stream broke. */
    async progress(more: number, what: string, tries = 2400): Promise<void> {
      const target = lastBytes(sink.out) + more;
      for (let i = 0; lastBytes(sink.out) < target; i++) {
        if (/^(ERR|CLOSED)/m.test(source.out)) throw new Error(`stream broke (${what}): ${source.out.slice(-300)}`);
        if (i >= tries) throw new Error(`stream stalled (${what}) at ${lastBytes(sink.out)} bytes, waiting for ${target}`);
        await sleep(50);
      }
    },
    /** Ends the stream; resolves with what each end counted and hashed. */
    async stop(): Promise<{ sent: [number, string]; received: [number, string] }> {
      source.child.stdin!.write('stop\n');
      await source.waitFor(/^DONE \d+ [0-9a-f]{64}$/m, 'out');
      await sink.waitFor(/^DONE \d+ [0-9a-f]{64}$/m, 'out');
      const s = /^DONE (\d+) ([0-9a-f]{64})$/m.exec(source.out)!;
      const r = /^DONE (\d+) ([0-9a-f]{64})$/m.exec(sink.out)!;
      return { sent: [Number(s[1]), s[2]], received: [Number(r[1]), r[2]] };
    },
  };
}

/** A line-echo connection from cli to srv:PORT (an echo server must listen there: `tcp.js echo`). */
export async function talker(lab: Lab, port: number) {
  const w = watch(lab.spawn('cli', [process.execPath, TCP_TOOL, 'talk', LAB.srv4, String(port)], { cwd: ROOT }));
  await w.waitFor(/^CONNECTED \d+$/m, 'out');
  const localPort = Number(/^CONNECTED (\d+)$/m.exec(w.out)![1]);
  let n = 0;
  return {
    w,
    localPort,
    /** Sends a line; true once its echo came back, false after `tries` × 100 ms without it. */
    async roundTrip(tries = 600): Promise<boolean> {
      const tag = `line-${localPort}-${++n}`;
      w.child.stdin!.write(tag + '\n');
      for (let i = 0; i < tries; i++) {
        if (w.out.includes(`ECHO ${tag}\n`)) return true;
        if (/^(ERR|CLOSED)/m.test(w.out)) return false;
        await sleep(100);
      }
      return false;
    },
  };
}

/** The lab gateway's /proc/net/netfilter/nfnetlink_queue row of queue q. */
export async function kernelQueue(lab: Lab, q: number) {
  const r = await lab.exec('gw', ['cat', '/proc/net/netfilter/nfnetlink_queue']);
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f[0] === q) return { portid: f[1], qlen: f[2], queueDropped: f[5], userDropped: f[6], idSequence: f[7] };
  }
  return undefined;
}

/** GET /metrics from a daemon started with --metrics 127.0.0.1:PORT (inside the gateway namespace). */
export async function scrape(lab: Lab, port: number) {
  const r = await lab.exec('gw', ['curl', '-sf', `http://127.0.0.1:${port}/metrics`]);
  if (r.code !== 0) throw new Error(`metrics scrape failed: ${r.stderr}`);
  const text = r.stdout;
  return {
    text,
    /** The value of the one sample matching re (its first group); throws when there is none. */
    val(re: RegExp): number {
      const m = re.exec(text);
      if (!m) throw new Error(`${re} not in the metrics:\n${text.slice(0, 3000)}`);
      return Number(m[1]);
    },
    /** The sum over every line matching re (global, multiline; first group); 0 when none. */
    sum(re: RegExp): number {
      let n = 0;
      for (const m of text.matchAll(new RegExp(re.source, 'gm'))) n += Number(m[1]);
      return n;
    },
  };
}

export function rssKb(pid: number): number {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/**
 * A minimal FTP client on cli: waits for the server's 220 greeting, only then sends PASV and
 * keeps the connection open. Sending PASV only after the greeting arrived keeps the greeting
 * and the 227 answer in separate segments: a server that wrote both at once could have them
 * coalesced into one, and the FTP helper (the kernel's too) parses commands and answers only
 * at the start of a segment.
 */
export function ftpPasvClient(lab: Lab, server: string) {
  const js = `const s = require('net').connect(21, '${server}'); let b = ''; let sent = false; s.setEncoding('utf8'); s.on('data', (d) => { b += d; process.stdout.write(d); if (!sent && b.includes('220 ')) { sent = true; s.write('PASV\\r\\n'); } }); s.on('error', (e) => console.log('ERR ' + e.message)); setInterval(() => {}, 1e6);`;
  return watch(lab.spawn('cli', [process.execPath, '-e', js], { cwd: ROOT }));
}
