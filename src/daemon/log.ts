/**
 * Logger factory: pino JSON lines on stderr by default; pino-pretty (synchronous, no worker
 * thread) when stderr is a TTY. `pretty` forces either way.
 */
import pino, { Logger, LevelWithSilent } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: LevelWithSilent | string;
  pretty?: boolean;
  name?: string;
  /** Where to write (default: fd 2). */
  fd?: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got ${level})`);
  }
  const fd = opts.fd ?? 2;
  const pretty = opts.pretty ?? (fd === 2 && process.stderr.isTTY === true);
  const base = { name: opts.name ?? 'nfqwall', level };
  if (pretty) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const pinoPretty = require('pino-pretty') as (o: object) => NodeJS.WritableStream;
    return pino(base, pinoPretty({ destination: fd, sync: true, colorize: true }) as never);
  }
  return pino(base, pino.destination({ fd, sync: true }));
}
