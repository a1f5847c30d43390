/** The /etc name databases (services, protocols, networks) as nss_files reads them. */
import { readFileSync } from 'node:fs';

/** The file's text, or null when it does not exist. */
export function readEtcFile(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Each line's words (white space separated, `#` to the end of the line a comment), lines with at least two. */
export function etcLines(text: string): string[][] {
  const out: string[][] = [];
  for (const raw of text.split('\n')) {
    const words = raw
      .replace(/#.*/, '')
      .split(/[ \t]+/)
      .filter((w) => w !== '');
    if (words.length >= 2) out.push(words);
  }
  return out;
}
