/**
 * Reads a file descriptor line by line in fixed chunks from offset 0 (pread), so memory is
 * bounded by the longest line allowed, not by the file's size.
 */
import * as fs from 'node:fs';

const CHUNK = 1 << 16;

/**
 * Calls fn(line, number) for each '\n'-terminated line (and a last one without it) until fn
 * returns false. Returns why it stopped early ("line N is longer than M bytes"), or undefined.
 */
export function forEachLine(fd: number, maxLine: number, fn: (line: string, n: number) => boolean): string | undefined {
  const buf = Buffer.allocUnsafe(CHUNK + maxLine);
  let have = 0; // bytes of an unfinished line at buf[0..have)
  let pos = 0;
  let n = 0;
  for (;;) {
    const got = fs.readSync(fd, buf, have, CHUNK, pos);
    pos += got;
    const end = have + got;
    const data = buf.subarray(0, end);
    let start = 0;
    for (let nl = data.indexOf(10, have); nl >= 0; nl = data.indexOf(10, start)) {
      if (nl - start > maxLine) return `line ${n + 1} is longer than ${maxLine} bytes`;
      if (!fn(data.toString('utf8', start, nl), ++n)) return undefined;
      start = nl + 1;
    }
    have = end - start;
    if (have > maxLine) return `line ${n + 1} is longer than ${maxLine} bytes`;
    if (got === 0) {
      if (have > 0) fn(buf.toString('utf8', 0, have), ++n);
      return undefined;
    }
    buf.copy(buf, 0, start, end);
  }
}
