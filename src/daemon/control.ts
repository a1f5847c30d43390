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
import { DaemonControl, singleTableHost, type ControlBackend, type ControlTarget } from './control-ops';
import { ControlAborted, type ControlOutput } from './table-ops';
import type { Logger } from './log';

export { compileFilter, parseAddr, type CtFilter } from './ct-filter';
export { CHUNK_ENTRIES, ControlAborted, type ControlOutput } from './table-ops';
export type { ControlBackend, ControlTarget } from './control-ops';

export const MAX_REQUEST = 64 * 1024;
/** Requests read ahead per connection; beyond, reading pauses until they are answered. */
export const MAX_PENDING = 64;
export const CONTROL_DIR = '/run/nfqwall';

export function defaultControlPath(queue: number, dir = CONTROL_DIR): string {
  return `${dir}/queue-${queue}.sock`;
}

/** Control connections served at once by default (`run --control-max-clients`). */
export const DEFAULT_MAX_SESSIONS = 128;

/**
 * The default socket directory (/run/nfqwall) is the daemon's own: created 0700, and if it
 * exists, a directory (not a link) owned by root (the daemon's user) whose mode is set back to
 * 0700 if it was anything else; owned by someone else, it is refused (that user could replace
 * the socket with one of their own and read what the client commands send).
 */
export function ensurePrivateDir(dir: string, log: Logger): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a link or file is there): remove it`);
  const me = process.geteuid?.() ?? 0;
  if (st.uid !== me) throw new Error(`${dir} is owned by uid ${st.uid}, not by uid ${me} that runs nfqwall: remove it`);
  if ((st.mode & 0o7777) !== 0o700) {
    fs.chmodSync(dir, 0o700);
    log.warn({ dir, was: (st.mode & 0o7777).toString(8) }, `${dir} had mode ${(st.mode & 0o7777).toString(8)}: set to 700`);
  }
}

export interface ControlOptions {
  path: string;
  /** the daemon's control requests (src/daemon/control-ops.ts) … */
  backend?: ControlBackend;
  /** … or those of one table and its rules */
  target?: ControlTarget;
  log: Logger;
  /** monotonic clock in ms (default performance.now) */
  now?: () => number;
  /** entries per chunk (tests) */
  chunk?: number;
  /** connections served at once (default DEFAULT_MAX_SESSIONS); more are answered with an error and closed */
  maxSessions?: number;
}

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

export class ControlServer {
  readonly path: string;
  readonly counters = { requests: 0, badRequests: 0, connections: 0, refusedConnections: 0 };
  readonly maxSessions: number;
  private server: net.Server | undefined;
  private readonly sessions = new Set<Session>();
  private readonly backend: ControlBackend;
  private readonly log: Logger;
  private inode = -1;

  constructor(opts: ControlOptions) {
    this.path = opts.path;
    this.log = opts.log;
    this.maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
    if (opts.backend) this.backend = opts.backend;
    else if (opts.target) this.backend = new DaemonControl(singleTableHost(opts.target, opts.now, opts.chunk), opts.log);
    else throw new Error('ControlServer needs a target or a backend');
  }

  /** Creates the socket (directory 0700, socket 0600). Refuses when a live daemon listens there. */
  async listen(): Promise<void> {
    const dir = path.dirname(this.path);
    if (dir === CONTROL_DIR) ensurePrivateDir(dir, this.log);
    else if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
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
    if (this.sessions.size >= this.maxSessions) {
      this.counters.refusedConnections++;
      if (this.counters.refusedConnections === 1 || this.counters.refusedConnections % 1000 === 0)
        this.log.warn({ limit: this.maxSessions, refused: this.counters.refusedConnections }, 'control socket: too many connections, refusing');
      // what it sends is read and dropped (closing on unread data would reset the connection
      // before the client reads why); closed once the answer is out
      sock.on('error', () => sock.destroy());
      sock.resume();
      sock.end(JSON.stringify({ ok: false, error: `too many control connections (limit ${this.maxSessions}, --control-max-clients)` }) + '\n', () =>
        sock.destroy(),
      );
      return;
    }
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
