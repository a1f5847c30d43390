/**
 * Who may have written the state file (`run --state FILE`), as sshd's StrictModes decides for
 * authorized_keys: the file and the directory it is in must be owned by root (or the user the
 * daemon runs as) and writable by nobody else, and so must every directory above, except that a
 * world-writable one with the sticky bit (/tmp) is allowed there: others may create entries in
 * it but not rename or remove root's. Otherwise another local user could swap in a forged table
 * (connections the rules never admitted) or plant a link where the daemon writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const trustedOwner = (uid: number) => uid === 0 || uid === process.geteuid?.();

function ownerProblem(what: string, st: fs.Stats): string | undefined {
  if (!trustedOwner(st.uid)) return `${what} is owned by uid ${st.uid}, not root`;
  return undefined;
}

/** Why dir may not hold the state file, or undefined when it may (it must exist). */
export function stateDirProblem(dir: string): string | undefined {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch (err) {
    return `cannot resolve ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  for (let d = real, first = true; ; d = path.dirname(d), first = false) {
    const st = fs.statSync(d);
    const owner = ownerProblem(`directory ${d}`, st);
    if (owner) return owner;
    const sticky = !first && (st.mode & 0o1000) !== 0;
    if (st.mode & 0o022 && !sticky) return `directory ${d} is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)})`;
    if (d === path.dirname(d)) return undefined;
  }
}

/**
 * Opens the state file for reading when it may be trusted: a regular file (not followed through
 * a symbolic link), owned by root, writable by nobody else, in a directory stateDirProblem()
 * accepts. Returns the descriptor, or why not; a missing file throws ENOENT as fs does.
 */
export function openStateFile(file: string): number | string {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  const st = fs.fstatSync(fd);
  const problem = !st.isFile()
    ? `${file} is not a regular file`
    : (ownerProblem(file, st) ??
      (st.mode & 0o022 ? `${file} is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)})` : undefined));
  const dirProblem = problem ?? stateDirProblem(path.dirname(path.resolve(file)));
  if (dirProblem === undefined) return fd;
  fs.closeSync(fd);
  return dirProblem;
}
