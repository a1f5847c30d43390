/**
 * `ip -o monitor OBJECTS…` (iproute2) as a change signal: onEvent runs for every chunk it prints
 * (the caller re-reads what it follows). The child never keeps the process alive and dies with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export function followIpMonitor(objects: string[], onEvent: () => void, onExit: (child: ChildProcess) => void): ChildProcess {
  const child = spawn('ip', ['-o', 'monitor', ...objects], { stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout!.on('data', () => onEvent());
  child.on('exit', () => onExit(child));
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  process.once('exit', () => {
    if (child.exitCode === null) child.kill();
  });
  return child;
}
