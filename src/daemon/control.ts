/**
 * The control socket: a unix stream socket the client commands (`conntrack`, `rules`,
 * `sysctl`, `reload`) talk to.
 *
 * Protocol: newline-delimited JSON. A request is one line `{"op": ..., ...args}` (at most
 * MAX_REQUEST bytes); the answer is zero or more `{"lines": [...]}` lines (streamed output)
 * followed by exactly one final line `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
 * Several requests may follow each other on one connection; they are answered in order.
 *
 * Long listings (a million entries) are produced in chunks: after each chunk the server
 * yields to the event loop (setImmediate) so packet batches keep being decided, and it
 * waits for 'drain' when the socket's buffer is full (a slow reader holds back only its
 * own listing, and a client that goes away ends it).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Conntrack } from '../conntrack/core';
import { formatConntrack, formatExpect, formatProcConntrack, formatStats } from '../conntrack/format';
import { applySetting } from '../conntrack/settings';
import { findSysctl, SYSCTLS, type TunableValues } from '../conntrack/sysctl';
import { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/view';
import { recentControl } from '../rules/recent-lists';
import { parseAddr as parseAddrText } from '../packet/format';
import { prefixMask } from '../rules/addr';
import type { Logger } from './log';

export const MAX_REQUEST = 64 * 1024;
/** Requests read ahead per connection; beyond, reading pauses until they are answered. */
export const MAX_PENDING = 64;
/** Entries formatted per chunk before yielding to the event loop. */
export const CHUNK_ENTRIES = 2048;

export const CONTROL_DIR = '/run/nfqwall';

export function defaultControlPath(queue: number, dir = CONTROL_DIR): string {
  return `${dir}/queue-${queue}.sock`;
}

/** What the control socket needs from the daemon (FirewallService has all of it). */
export interface ControlTarget {
  readonly tun: TunableValues;
  readonly fw: { readonly ct: Conntrack };
  readonly rules: { format(verbose: boolean): string };
  reload(): { ok: boolean; errors: string[] };
  /** counted for metrics/logs when present */
  readonly rulesFile?: string;
}

/** Where a request's streamed lines go (a client session, or a worker thread's port). */
export interface ControlOutput {
  readonly alive: boolean;
  /** Sends lines; resolves when they may be followed by more; throws ControlAborted when the reader is gone. */
  sendLines(lines: string[]): Promise<void>;
}

/** Answers the requests (everything but ping): TableControl for one table, the worker pool for several. */
export interface ControlBackend {
  handle(req: Record<string, unknown>, out: ControlOutput): Promise<Record<string, unknown>>;
}

export interface ControlOptions {
  path: string;
  /** one table (TableControl over it) … */
  target?: ControlTarget;
  /** … or any backend (the worker threads of `run --queues A:B`) */
  backend?: ControlBackend;
  log: Logger;
  /** monotonic clock in ms (default performance.now) */
  now?: () => number;
  /** entries per chunk (tests) */
  chunk?: number;
}

/** Filters of conntrack -L / -D, as conntrack-tools applies them (ORIG tuple unless reply*). */
export interface CtFilter {
  family?: number; // 4 | 6
  proto?: number;
  src?: string; // ORIG source, ADDR or ADDR/PREFIX
  dst?: string; // ORIG destination
  replySrc?: string;
  replyDst?: string;
  sport?: number; // ORIG source port
  dport?: number; // ORIG destination port
  mark?: number;
}

interface AddrMatch {
  family: number;
  words: Uint32Array;
  mask: Uint32Array;
}

/** Parses ADDR or ADDR/PREFIX (addresses as inet_pton reads them) into words in network order and a mask. */
export function parseAddr(text: string): AddrMatch {
  const slash = text.indexOf('/');
  const a = slash >= 0 ? text.slice(0, slash) : text;
  const parsed = net.isIP(a) === 0 ? null : parseAddrText(a);
  if (!parsed) throw new Error(`bad address '${text}'`);
  const bits = parsed.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d+$/.test(p) || Number(p) > bits) throw new Error(`bad prefix length in '${text}'`);
    prefix = Number(p);
  }
  return { family: parsed.family, words: parsed.words, mask: Uint32Array.from(prefixMask(parsed.family, prefix)) };
}

const scratch = new Uint32Array(4);

function addrMatches(ct: Conntrack, e: number, dir: number, which: number, m: AddrMatch): boolean {
  if (ct.family(e) !== m.family) return false;
  ct.tupleAddr(e, dir, which, scratch);
  for (let i = 0; i < 4; i++) if (((scratch[i] ^ m.words[i]) & m.mask[i]) !== 0) return false;
  return true;
}

function hasPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === 132 || proto === 33;
}

/** Compiles a CtFilter into a predicate over entry ids; throws on bad arguments. */
export function compileFilter(ct: Conntrack, f: CtFilter = {}): (e: number) => boolean {
  if (f === null || typeof f !== 'object') throw new Error('filter must be an object');
  const num = (v: unknown, name: string, max: number): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new Error(`bad ${name}: ${JSON.stringify(v)}`);
    return v;
  };
  const addr = (v: unknown, name: string): AddrMatch | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new Error(`bad ${name}: ${JSON.stringify(v)}`);
    return parseAddr(v);
  };
  const family = num(f.family, 'family', 6);
  if (family !== undefined && family !== 4 && family !== 6) throw new Error(`bad family: ${family}`);
  const proto = num(f.proto, 'protocol', 255);
  const sport = num(f.sport, 'source port', 65535);
  const dport = num(f.dport, 'destination port', 65535);
  const mark = num(f.mark, 'mark', 0xffffffff);
  const src = addr(f.src, 'source address');
  const dst = addr(f.dst, 'destination address');
  const rsrc = addr(f.replySrc, 'reply source address');
  const rdst = addr(f.replyDst, 'reply destination address');
  return (e: number) => {
    if (family !== undefined && ct.family(e) !== family) return false;
    const p = ct.proto(e);
    if (proto !== undefined && p !== proto) return false;
    if (src && !addrMatches(ct, e, 0, 0, src)) return false;
    if (dst && !addrMatches(ct, e, 0, 1, dst)) return false;
    if (rsrc && !addrMatches(ct, e, 1, 0, rsrc)) return false;
    if (rdst && !addrMatches(ct, e, 1, 1, rdst)) return false;
    if (sport !== undefined || dport !== undefined) {
      if (!hasPorts(p)) return false;
      const w = ct.portsWord(e, 0);
      if (sport !== undefined && w >>> 16 !== sport) return false;
      if (dport !== undefined && (w & 0xffff) !== dport) return false;
    }
    if (mark !== undefined && ct.mark(e) >>> 0 !== mark) return false;
    return true;
  };
}

/** The reader of a streamed answer went away. */
export class ControlAborted extends Error {}
const Aborted = ControlAborted;

/** One client connection: reads requests, answers them in order. */
class Session implements ControlOutput {
  private buf = '';
  private queue: unknown[] = [];
  private busy = false;
  private closed = false;
  private ended = false;

  constructor(
    private readonly server: ControlServer,
    private readonly sock: net.Socket,
  ) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', () => this.close());
    sock.on('close', () => this.close());
    sock.on('end', () => {
      // half-close: answer what was asked, then end
      this.ended = true;
      if (!this.busy && this.queue.length === 0) sock.end();
    });
  }

  get alive(): boolean {
    return !this.closed && !this.sock.destroyed;
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    if (!this.sock.destroyed) this.sock.destroy();
  }

  private onData(d: string): void {
    if (this.closed) return;
    this.buf += d;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line.length > MAX_REQUEST) {
        this.tooLarge();
        return;
      }
      if (line.trim() === '') continue;
      let req: unknown;
      try {
        req = JSON.parse(line);
      } catch {
        req = { op: '\0malformed' };
      }
      this.queue.push(req);
    }
    if (this.buf.length > MAX_REQUEST) {
      this.tooLarge();
      return;
    }
    // a client that pipelines requests without reading the answers is not read further
    if (this.queue.length >= MAX_PENDING) this.sock.pause();
    void this.pump();
  }

  private tooLarge(): void {
    this.server.counters.badRequests++;
    this.buf = '';
    this.queue.length = 0;
    this.sock.end(JSON.stringify({ ok: false, error: `request too large (limit ${MAX_REQUEST} bytes)` }) + '\n');
    this.closed = true;
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length > 0 && this.alive) {
        const req = this.queue.shift();
        if (this.queue.length < MAX_PENDING && this.sock.isPaused()) this.sock.resume();
        let final: Record<string, unknown>;
        try {
          final = await this.server.handle(req, this);
        } catch (err) {
          if (err instanceof Aborted) return;
          this.server.counters.badRequests++;
          final = { ok: false, error: (err as Error).message };
        }
        await this.send(JSON.stringify(final) + '\n');
      }
      if (this.ended && this.alive) this.sock.end();
    } catch (err) {
      if (!(err instanceof Aborted)) this.server.logError(err);
    } finally {
      this.busy = false;
    }
  }

  /** Writes; waits for 'drain' when the buffer is full. Throws Aborted when the client is gone. */
  async send(s: string): Promise<void> {
    if (!this.alive) throw new Aborted();
    if (this.sock.write(s)) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        this.sock.off('drain', done);
        this.sock.off('close', gone);
        resolve();
      };
      const gone = () => {
        this.sock.off('drain', done);
        this.sock.off('close', gone);
        reject(new Aborted());
      };
      this.sock.on('drain', done);
      this.sock.on('close', gone);
    });
    if (!this.alive) throw new Aborted();
  }

  async sendLines(lines: string[]): Promise<void> {
    if (lines.length > 0) await this.send(JSON.stringify({ lines }) + '\n');
  }
}

const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

export class ControlServer {
  readonly path: string;
  readonly counters = { requests: 0, badRequests: 0, connections: 0 };
  private server: net.Server | undefined;
  private readonly sessions = new Set<Session>();
  private readonly backend: ControlBackend;
  private readonly log: Logger;
  private inode = -1;

  constructor(opts: ControlOptions) {
    this.path = opts.path;
    this.log = opts.log;
    if (opts.backend) this.backend = opts.backend;
    else if (opts.target) this.backend = new TableControl(opts.target, opts.log, opts.now, opts.chunk);
    else throw new Error('ControlServer needs a target or a backend');
  }

  /** Creates the socket (directory 0700, socket 0600). Refuses when a live daemon listens there. */
  async listen(): Promise<void> {
    const dir = path.dirname(this.path);
    if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    await removeStale(this.path);
    const server = net.createServer((sock) => this.accept(sock));
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(this.path, 0o600);
    this.inode = fs.statSync(this.path).ino;
    server.on('error', (err) => this.log.error({ err, path: this.path }, 'control socket error'));
    this.server = server;
    this.log.info({ path: this.path }, 'control socket listening');
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const sess of this.sessions) sess.close();
    this.sessions.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
    try {
      if (this.inode >= 0 && fs.statSync(this.path).ino === this.inode) fs.unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }

  logError(err: unknown): void {
    this.log.error({ err }, 'control request failed');
  }

  private accept(sock: net.Socket): void {
    this.counters.connections++;
    const sess = new Session(this, sock);
    this.sessions.add(sess);
    sock.on('close', () => this.sessions.delete(sess));
  }

  /** Answers one request; streamed lines go out through sess. Returns the final object. */
  async handle(req: unknown, sess: Session): Promise<Record<string, unknown>> {
    this.counters.requests++;
    if (req === null || typeof req !== 'object' || Array.isArray(req)) throw new Error('request must be a JSON object');
    const r = req as Record<string, unknown>;
    if (r.op === '\0malformed') throw new Error('malformed request (not JSON)');
    if (r.op === 'ping') return { ok: true, pid: process.pid };
    return this.backend.handle(r, sess);
  }
}

/** The requests answered from one connection table (a daemon with one queue, or one worker thread). */
export class TableControl implements ControlBackend {
  private readonly now: () => number;
  private readonly chunk: number;

  constructor(
    private readonly target: ControlTarget,
    private readonly log: Logger,
    now?: () => number,
    chunk?: number,
  ) {
    this.now = now ?? (() => performance.now());
    this.chunk = chunk ?? CHUNK_ENTRIES;
  }

  async handle(r: Record<string, unknown>, sess: ControlOutput): Promise<Record<string, unknown>> {
    const t = this.target;
    const ct = t.fw.ct;
    switch (r.op) {
      case 'ct.list': {
        const filter = compileFilter(ct, r.filter as CtFilter);
        const extended = r.extended === true;
        const proc = r.proc === true;
        const n = await this.walk(sess, filter, (e, now) => (proc ? formatProcConntrack(ct, e, now) : formatConntrack(ct, e, now, extended)), false);
        return { ok: true, count: n };
      }
      case 'ct.delete': {
        const filter = compileFilter(ct, r.filter as CtFilter);
        const n = await this.walk(sess, filter, (e, now) => formatConntrack(ct, e, now, false), true);
        if (n > 0) this.log.info({ deleted: n, filter: r.filter }, 'conntrack entries deleted');
        return { ok: true, count: n };
      }
      case 'ct.flush': {
        const n = await this.walk(sess, () => true, null, true);
        this.log.info({ deleted: n }, 'conntrack table flushed');
        return { ok: true, count: n };
      }
      case 'ct.count':
        return { ok: true, count: ct.count };
      case 'ct.stats':
        return { ok: true, line: formatStats(ct.stats), stats: { ...ct.stats }, count: ct.count };
      case 'expect.list': {
        const now = this.now();
        const lines: string[] = [];
        const X = ct.expectations;
        const ids: number[] = [];
        X.forEach((x) => ids.push(x));
        let n = 0;
        for (const x of ids) {
          if (!X.isLive(x) || X.timeout[x] <= now) continue;
          lines.push(formatExpect(ct, x, now));
          n++;
          if (lines.length >= this.chunk) {
            await sess.sendLines(lines.splice(0));
            await yieldLoop();
          }
        }
        await sess.sendLines(lines);
        return { ok: true, count: n };
      }
      case 'expect.flush': {
        const n = ct.expectations.flush();
        this.log.info({ deleted: n }, 'expectation table flushed');
        return { ok: true, count: n };
      }
      case 'rules.list': {
        const text = t.rules.format(r.verbose === true);
        const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
        for (let i = 0; i < lines.length; i += this.chunk) await sess.sendLines(lines.slice(i, i + this.chunk));
        return { ok: true };
      }
      case 'sysctl.get': {
        if (r.name === undefined || r.name === null) {
          return { ok: true, values: SYSCTLS.map((d) => [d.name, this.tunValue(d.key)]) };
        }
        if (typeof r.name !== 'string') throw new Error('name must be a string');
        const d = findSysctl(r.name);
        if (!d) throw new Error(`unknown tunable '${r.name}'`);
        return { ok: true, values: [[d.name, this.tunValue(d.key)]] };
      }
      case 'sysctl.set': {
        if (typeof r.name !== 'string' || (typeof r.value !== 'string' && typeof r.value !== 'number')) throw new Error('sysctl.set needs name and value');
        const d = findSysctl(r.name);
        const err = applySetting(t.tun, `${r.name}=${r.value}`, (key, value) => ct.setTunable(key, value));
        if (err) throw new Error(err);
        this.log.info({ name: d!.name, value: this.tunValue(d!.key) }, 'tunable set');
        return { ok: true, values: [[d!.name, this.tunValue(d!.key)]] };
      }
      case 'recent': {
        const res = recentControl(r.name, r.write, Math.floor(this.now()));
        if (res.lines) for (let i = 0; i < res.lines.length; i += this.chunk) await sess.sendLines(res.lines.slice(i, i + this.chunk));
        if (r.write !== undefined && r.write !== null) this.log.info({ list: r.name, write: r.write }, 'recent list changed');
        return { ok: true, names: res.names, count: res.lines?.length };
      }
      case 'reload': {
        const res = t.reload();
        return res.ok ? { ok: true } : { ok: false, error: 'the rule file is invalid; the old rules stay in force', errors: res.errors };
      }
      default:
        throw new Error(`unknown op ${JSON.stringify(r.op)}`);
    }
  }

  private tunValue(key: keyof TunableValues): number {
    if (key === 'nf_conntrack_count') return this.target.fw.ct.count;
    return this.target.tun[key];
  }

  /**
   * Walks the confirmed entries bucket by bucket in chunks, yielding to the event loop
   * between chunks. format: the streamed line per selected entry (null: none); del: destroy
   * each selected entry. Returns how many were selected. A rehash between chunks (sysctl
   * nf_conntrack_buckets) restarts the bucket cursor on the new table; entries seen already
   * may then be listed again, as a kernel dump interrupted by a resize may.
   */
  private async walk(sess: ControlOutput, filter: (e: number) => boolean, format: ((e: number, now: number) => string) | null, del: boolean): Promise<number> {
    const ct = this.target.fw.ct;
    const tb = ct.table;
    let n = 0;
    let b = 0;
    let nb = tb.nbuckets;
    const ids: number[] = [];
    const lines: string[] = [];
    while (b < tb.nbuckets) {
      if (tb.nbuckets !== nb) {
        nb = tb.nbuckets;
        b = 0;
      }
      const now = this.now();
      let work = 0;
      for (; b < tb.nbuckets && work < this.chunk; b++) {
        ids.length = 0;
        for (let node = tb.head(b); node >= 0; node = tb.next(node)) if ((node & 1) === 0) ids.push(node >> 1);
        work += 1 + ids.length;
        for (const e of ids) {
          if (!tb.isAlloc(e) || !tb.isHashed(e) || tb.timeout(e) <= now) continue;
          if (!filter(e)) continue;
          if (format) lines.push(format(e, now));
          if (del) ct.destroy(e);
          n++;
        }
      }
      if (lines.length > 0) await sess.sendLines(lines.splice(0));
      else if (!sess.alive) throw new Aborted();
      await yieldLoop();
    }
    return n;
  }
}

/** Removes a stale socket file (nobody accepts on it); throws when a daemon listens there or it is not a socket. */
async function removeStale(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${p} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(p);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another nfqwall daemon is listening on ${p} (use --control PATH or another --queue)`);
  fs.unlinkSync(p);
}
