/**
 * Runs `code` (TypeScript through tsx) in a child node with a small, fixed heap, for tests that
 * compare the peak RSS of two runs. With V8's default sizing the young generation grows to
 * 16-32 MB and the old generation grows ahead of collection by an amount that depends on the
 * machine and its load: the same replay of a 120 MB capture peaked 41-44 MB above a 5 MB one on
 * one run and within 32 MB on another. Capped, garbage is collected before the heap grows, so
 * the peak measures what the code keeps (15-19 MB apart for that replay), while memory held
 * for a whole file still shows: as external buffers in RSS, or as a heap that cannot grow.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';

export const BOUNDED_HEAP_ARGS = ['--max-old-space-size=64', '--max-semi-space-size=1'];

export function runBoundedChild(code: string, cwd: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [...BOUNDED_HEAP_ARGS, '--import', 'tsx', '-e', code], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
}
