/**
 * Client side of the control socket (src/daemon/control.ts): finds the daemon's socket
 * (`--control PATH`, or `--queue N` → /run/nfqwall/queue-N.sock; with neither, queue 0's
 * socket, or the only socket in /run/nfqwall), sends one request and hands the streamed lines
 * to the caller.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { CONTROL_DIR, defaultControlPath } from '../daemon/control';

export class ClientError extends Error {}

/** Removes `--control PATH` / `--queue N` (and their `=` forms) from argv; returns the socket path and the rest. */
export function takeTarget(argv: string[], dir = CONTROL_DIR): { path: string; rest: string[] } {
  const rest: string[] = [];
  let control: string | undefined;
  let queue: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (name === '--control' || name === '--queue') {
      const v = eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new ClientError(`${name} needs a value`);
      if (name === '--control') control = v;
      else queue = v;
      continue;
    }
    rest.push(a);
  }
  if (control !== undefined && queue !== undefined) throw new ClientError('--control and --queue are exclusive');
  if (control !== undefined) return { path: control, rest };
  if (queue === undefined) return { path: soleControlPath(dir), rest };
  const m = /^(\d+)(?::\d+)?$/.exec(queue);
  if (!m || Number(m[1]) > 65535) throw new ClientError(`--queue: bad queue number '${queue}'`);
  return { path: defaultControlPath(Number(m[1]), dir), rest };
}

/**
 * The socket to use when the command names none: queue 0's if it exists, else the only
 * daemon's socket in dir (a daemon on `--queue 3` or `--queues 2:3` needs no flag), else an
 * error naming the sockets when there are several daemons to choose from.
 */
export function soleControlPath(dir = CONTROL_DIR): string {
  const zero = defaultControlPath(0, dir);
  if (fs.existsSync(zero)) return zero;
  let socks: string[] = [];
  try {
    socks = fs
      .readdirSync(dir)
      .filter((n) => /^queue-\d+\.sock$/.test(n))
      .sort((a, b) => parseInt(a.slice(6), 10) - parseInt(b.slice(6), 10));
  } catch {
    // no directory: no daemon has run; connecting to queue 0's path reports that
  }
  if (socks.length === 1) return path.join(dir, socks[0]);
  if (socks.length > 1) throw new ClientError(`several daemons listen in ${dir} (${socks.join(', ')}): choose one with --queue N or --control PATH`);
  return zero;
}

export interface Final {
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

/**
 * Sends one request; calls onLines for every streamed chunk; resolves with the final answer
 * (ok true or false). Rejects with ClientError when no daemon listens or the connection breaks.
 */
export function request(path: string, req: Record<string, unknown>, onLines?: (lines: string[]) => void): Promise<Final> {
  return new Promise<Final>((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    let settled = false;
    const fail = (msg: string) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(new ClientError(msg));
    };
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        fail(`no nfqwall daemon is listening on ${path} (is 'nfqwall run' running? point to it with --control PATH or --queue N)`);
      } else if (err.code === 'EACCES' || err.code === 'EPERM') {
        fail(`${path}: permission denied (the control socket is for root only)`);
      } else fail(`${path}: ${err.message}`);
    });
    sock.on('data', (d: string) => {
      buf += d;
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: Final & { lines?: unknown };
        try {
          msg = JSON.parse(line);
        } catch {
          fail(`${path}: the daemon sent something that is not JSON`);
          return;
        }
        if (Array.isArray(msg.lines)) {
          onLines?.(msg.lines as string[]);
          // a slow reader of our stdout (a pipe) holds the daemon back through the socket, not our memory
          if (process.stdout.writableNeedDrain && !sock.isPaused()) {
            sock.pause();
            process.stdout.once('drain', () => sock.resume());
          }
          continue;
        }
        settled = true;
        sock.end();
        resolve(msg);
        return;
      }
    });
    sock.on('close', () => fail(`${path}: the daemon closed the connection before answering`));
  });
}

/** Prints streamed lines on stdout. */
export function printLines(lines: string[]): void {
  if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n');
}

/** A closed stdout (`| head`) ends the command quietly. */
export function quietEpipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}
