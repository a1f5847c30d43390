/**
 * End-to-end test of `nfqwall lab`: runs `node bin/nfqwall.js lab --duration 8 --info-file F`,
 * checks from inside the lab while it runs that HTTP (v4 and v6), ping and the REJECT rule
 * work through the gateway, then that the lab removed its namespaces and processes and exited 0.
 * Needs root. Only lab addresses are used; only the PID started here is signalled; after()
 * removes what a failed run may have left (by the names and PIDs the lab wrote to its info file).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root (network namespaces, NFQUEUE)' : !fs.existsSync(ADDON) ? 'native addon not built (npm run build)' : false;
if (skip) process.stderr.write(`lab e2e skipped: ${skip}\n`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Info {
  id: string;
  ns: { cli: string; gw: string; srv: string };
  daemonPid?: number;
  servicePids: Record<string, number | undefined>;
  tmpdir: string;
  state: string;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
}

function inNs(ns: string, argv: string[], timeoutMs = 10_000) {
  return spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', timeout: timeoutMs });
}

describe('nfqwall lab', { skip }, () => {
  const tmp = skip ? '' : fs.mkdtempSync(path.join(os.tmpdir(), 'nfqwall-labtest-'));
  const infoFile = path.join(tmp, 'info.json');
  let child: ChildProcess | undefined;
  let info: Info | undefined;

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    if (info) {
      // a lab that failed to clean up: its own processes (by PID) and namespaces (by name)
      for (const pid of [info.daemonPid, ...Object.values(info.servicePids)]) {
        if (alive(pid)) {
          try {
            process.kill(pid!, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      const present = netnsList();
      for (const ns of Object.values(info.ns)) if (present.includes(ns)) spawnSync('ip', ['netns', 'del', ns]);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('runs for --duration, carries traffic through the firewall, leaves nothing behind', { timeout: 120_000 }, async () => {
    child = spawn(process.execPath, ['bin/nfqwall.js', 'lab', '--duration', '8', '--info-file', infoFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));

    // the info file appears once the lab is up (daemon bound, services listening)
    for (let i = 0; i < 600 && !fs.existsSync(infoFile); i++) {
      if (child.exitCode !== null) break;
      await sleep(100);
    }
    assert.ok(fs.existsSync(infoFile), `lab did not come up:\n${out}\n${err}`);
    info = JSON.parse(fs.readFileSync(infoFile, 'utf8')) as Info;
    assert.equal(info.state, 'up');
    // stdout is a pipe: what the lab printed before writing the info file may still be on its way
    const tryLine = new RegExp(`ip netns exec ${info.ns.cli} curl http://198\\.19\\.2\\.1/`);
    for (let i = 0; i < 100 && !tryLine.test(out); i++) await sleep(100);
    assert.match(out, tryLine, 'prints the commands to try');
    assert.ok(netnsList().includes(info.ns.gw));
    assert.ok(alive(info.daemonPid), 'daemon running');

    // through the firewall, from inside the lab
    const http4 = inNs(info.ns.cli, ['curl', '-sS', '--max-time', '3', 'http://198.19.2.1/']);
    assert.equal(http4.status, 0, http4.stderr);
    assert.match(http4.stdout, /hello from the nfqwall lab server \(srv, port 80\)/);
    const http6 = inNs(info.ns.cli, ['curl', '-sS', '--max-time', '3', 'http://[2001:2:0:2::1]:8080/']);
    assert.equal(http6.status, 0, http6.stderr);
    assert.match(http6.stdout, /port 8080.*from 2001:2:0:1::1/);
    const ping = inNs(info.ns.cli, ['ping', '-c', '1', '-W', '2', '198.19.2.1']);
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    // port 23 is REJECTed with a TCP reset: refused at once, not timed out
    const rej = inNs(info.ns.cli, ['curl', '-sS', '--max-time', '3', 'http://198.19.2.1:23/']);
    assert.equal(rej.status, 7, `curl to port 23: ${rej.status} ${rej.stderr}`);

    const code = await exited;
    assert.equal(code, 0, `lab exit code ${code}\n${err}`);
    assert.match(err, /stopping \(--duration 8s\)/);

    // nothing left: namespaces, daemon, services
    const present = netnsList();
    for (const ns of Object.values(info.ns)) assert.ok(!present.includes(ns), `namespace ${ns} left behind`);
    for (const [name, pid] of Object.entries({ daemon: info.daemonPid, ...info.servicePids })) {
      assert.ok(!alive(pid), `${name} (pid ${pid}) still running`);
    }
    assert.ok(!fs.existsSync(info.tmpdir), `temp dir ${info.tmpdir} left behind`);
    assert.equal((JSON.parse(fs.readFileSync(infoFile, 'utf8')) as Info).state, 'stopped');
  });
});
