import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClientError, soleControlPath, takeTarget } from '../../../src/cli/client';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqwall-ctl-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('no flag: queue 0 socket when nothing listens anywhere', (t) => {
  const dir = tempDir(t);
  assert.equal(soleControlPath(dir), path.join(dir, 'queue-0.sock'));
  assert.equal(soleControlPath(path.join(dir, 'missing')), path.join(dir, 'missing', 'queue-0.sock'));
});

test('no flag: the only daemon socket, whatever its queue', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'queue-7.sock'), '');
  fs.writeFileSync(path.join(dir, 'notes.txt'), '');
  const r = takeTarget(['-L', '-n'], dir);
  assert.equal(r.path, path.join(dir, 'queue-7.sock'));
  assert.deepEqual(r.rest, ['-L', '-n']);
});

test('no flag: queue 0 wins when it exists beside others', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'queue-0.sock'), '');
  fs.writeFileSync(path.join(dir, 'queue-3.sock'), '');
  assert.equal(soleControlPath(dir), path.join(dir, 'queue-0.sock'));
});

test('no flag with several daemons: an error naming them, in queue order', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'queue-12.sock'), '');
  fs.writeFileSync(path.join(dir, 'queue-3.sock'), '');
  assert.throws(
    () => takeTarget(['-L'], dir),
    (e: unknown) => e instanceof ClientError && /queue-3\.sock, queue-12\.sock/.test(e.message) && /--queue N/.test(e.message),
  );
});

test('--queue and --control still choose explicitly', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'queue-12.sock'), '');
  fs.writeFileSync(path.join(dir, 'queue-3.sock'), '');
  assert.equal(takeTarget(['--queue', '3:4', '-L'], dir).path, path.join(dir, 'queue-3.sock'));
  assert.equal(takeTarget(['--queue=12'], dir).path, path.join(dir, 'queue-12.sock'));
  assert.equal(takeTarget(['--control', '/x/y.sock'], dir).path, '/x/y.sock');
  assert.throws(() => takeTarget(['--queue', 'abc'], dir), ClientError);
});
