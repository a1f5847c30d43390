/**
 * A file replaced atomically: written to a temporary file next to it, fsync'ed, renamed over
 * it, and the directory fsync'ed, so a crash leaves the old file or the new one. The temporary
 * name is unpredictable and opened with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: a link or file
 * planted in the directory is never followed nor truncated, the open fails instead.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

export class AtomicFile {
  private readonly tmp: string;
  private readonly fd: number;
  private open = true;

  constructor(readonly file: string) {
    this.tmp = `${file}.tmp-${randomBytes(12).toString('hex')}`;
    this.fd = fs.openSync(this.tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  }

  write(text: string): void {
    fs.writeSync(this.fd, text);
  }

  /** fsync, rename over the file, fsync the directory. */
  commit(): void {
    fs.fsyncSync(this.fd);
    this.close();
    fs.renameSync(this.tmp, this.file);
    try {
      const dfd = fs.openSync(path.dirname(path.resolve(this.file)), 'r');
      try {
        fs.fsyncSync(dfd);
      } finally {
        fs.closeSync(dfd);
      }
    } catch {
      /* directory fsync is best effort (some file systems refuse it) */
    }
  }

  /** Closes and removes the temporary file; the old file stays. */
  abort(): void {
    if (this.open) this.close();
    try {
      fs.unlinkSync(this.tmp);
    } catch {
      /* gone */
    }
  }

  private close(): void {
    this.open = false;
    fs.closeSync(this.fd);
  }
}
