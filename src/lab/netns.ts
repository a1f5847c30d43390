/**
 * The network-namespace lab shared by `nfqwall lab` and the end-to-end tests.
 *
 *   cli (c0) 198.18.1.1/24 2001:2:0:1::1/64  ── veth ──  (g0) 198.18.1.254/24 2001:2:0:1::fe/64
 *                                                    gw  (forwarding on, v4 and v6)
 *   srv (s0) 198.19.2.1/24 2001:2:0:2::1/64  ── veth ──  (g1) 198.19.2.254/24 2001:2:0:2::fe/64
 *
 * Namespaces are named uniquely per run (nfqw-cli-xxxxxx …). Only addresses from 198.18.0.0/15
 * and 2001:2::/48 are used. Nothing in the root namespace is changed (iptables, routes,
 * sysctls): every command runs with `ip -n NS` or `ip netns exec NS`.
 *
 * destroy() kills only the processes this lab started (their own process groups, SIGTERM then
 * SIGKILL) and deletes the namespaces. It also runs on process exit / SIGINT / SIGTERM and is
 * idempotent.
 */
import { ChildProcess, execFileSync, spawn, SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export type Role = 'cli' | 'gw' | 'srv';
/** the namespaces only a high-availability lab has: the second gateway and the switch */
export type HaRole = 'gwb' | 'sw';

/**
 * The high-availability lab (LabOptions.ha): a client and a server, each on a segment (a bridge
 * in the `sw` namespace) shared with two gateways, `gw` (A) and `gwb` (B), which also share a
 * third segment, the sync link. In both gateways the interfaces have the same names: g0 on the
 * client's segment, g1 on the server's, gy on the sync link. The client's and the server's
 * default routes go to the floating addresses (vipCli4, vipSrv4), which moveVip() puts on one
 * gateway and announces with gratuitous ARP, as keepalived does.
 */
export const HA_ADDR = {
  cli4: '198.18.1.1',
  vipCli4: '198.18.1.254',
  gwaCli4: '198.18.1.2',
  gwbCli4: '198.18.1.3',
  srv4: '198.19.2.1',
  vipSrv4: '198.19.2.254',
  gwaSrv4: '198.19.2.2',
  gwbSrv4: '198.19.2.3',
  gwaSync4: '198.18.250.1',
  gwbSync4: '198.18.250.2',
} as const;

export const LAB_ADDR = {
  cli4: '198.18.1.1',
  gwCli4: '198.18.1.254',
  gwSrv4: '198.19.2.254',
  srv4: '198.19.2.1',
  cli6: '2001:2:0:1::1',
  gwCli6: '2001:2:0:1::fe',
  gwSrv6: '2001:2:0:2::fe',
  srv6: '2001:2:0:2::1',
} as const;

export interface LabOptions {
  /** Namespace name prefix (default "nfqw"); names are PREFIX-cli-XXXXXX etc. */
  prefix?: string;
  /** Progress/diagnostic output (default: silent). */
  log?: (msg: string) => void;
  /**
   * Tear the lab down (SIGKILL to its processes, namespaces deleted) on SIGINT/SIGTERM
   * (default true). Pass false when the caller handles these signals itself and calls
   * destroy() for an orderly shutdown; the lab is still removed on process exit.
   */
  signalTeardown?: boolean;
  /** the high-availability lab (HA_ADDR) instead of client – gateway – server */
  ha?: boolean;
}

export interface ExecOptions {
  /** Data written to stdin. */
  input?: string | Buffer;
  /** Kill the command (SIGKILL) after this many ms (default 120000). */
  timeoutMs?: number;
  /** Reject when the exit code is not 0 (default false). */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Set<Lab>();
let hooksInstalled = false;

function installProcessHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const lab of [...live]) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const handler = () => {
      for (const lab of [...live]) if (lab.signalTeardown) lab.destroySync();
      // If nobody else handles the signal, behave like the default action.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Lab {
  static readonly addr = LAB_ADDR;
  readonly id: string;
  readonly ns: Readonly<Record<Role, string>> & Readonly<Partial<Record<HaRole, string>>>;
  private readonly ha: boolean;
  private readonly log: (msg: string) => void;
  /** Whether SIGINT/SIGTERM tear this lab down synchronously (LabOptions.signalTeardown). */
  readonly signalTeardown: boolean;
  /** pid -> child process we started (each in its own process group). */
  private readonly procs = new Map<number, ChildProcess>();
  private created: string[] = [];
  private destroyed = false;

  private constructor(opts: LabOptions) {
    const prefix = opts.prefix ?? 'nfqw';
    if (!/^[a-z0-9]{1,6}$/.test(prefix)) throw new Error(`lab prefix must be 1-6 of [a-z0-9] (got ${prefix})`);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
    this.id = Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
    this.ha = opts.ha === true;
    const ns = (r: string) => `${prefix}-${r}-${this.id}`;
    this.ns = this.ha ? { cli: ns('cli'), gw: ns('gw'), gwb: ns('gwb'), srv: ns('srv'), sw: ns('sw') } : { cli: ns('cli'), gw: ns('gw'), srv: ns('srv') };
    this.log = opts.log ?? (() => {});
    this.signalTeardown = opts.signalTeardown ?? true;
  }

  /** Builds the three namespaces. On failure everything created so far is removed again. */
  static async create(opts: LabOptions = {}): Promise<Lab> {
    const lab = new Lab(opts);
    installProcessHooks();
    live.add(lab);
    try {
      await lab.build();
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /** The namespace name for a role or a name of this lab; anything else (e.g. the root namespace) is refused. */
  nsName(ns: Role | HaRole | string): string {
    const name = (this.ns as Record<string, string>)[ns] ?? ns;
    if (!Object.values(this.ns).includes(name)) throw new Error(`not a namespace of this lab: ${ns}`);
    return name;
  }

  private async build(): Promise<void> {
    if (this.ha) return this.buildHa();
    const { cli: c, gw: g, srv: s } = this.ns;
    const A = LAB_ADDR;
    for (const n of [c, g, s]) {
      await this.host(['ip', 'netns', 'add', n]);
      this.created.push(n);
    }
    const cmds: string[][] = [
      ['ip', '-n', c, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'g0', 'netns', g],
      ['ip', '-n', s, 'link', 'add', 's0', 'type', 'veth', 'peer', 'name', 'g1', 'netns', g],
      ['ip', '-n', c, 'addr', 'add', `${A.cli4}/24`, 'dev', 'c0'],
      ['ip', '-n', g, 'addr', 'add', `${A.gwCli4}/24`, 'dev', 'g0'],
      ['ip', '-n', g, 'addr', 'add', `${A.gwSrv4}/24`, 'dev', 'g1'],
      ['ip', '-n', s, 'addr', 'add', `${A.srv4}/24`, 'dev', 's0'],
      ['ip', '-n', c, '-6', 'addr', 'add', `${A.cli6}/64`, 'dev', 'c0', 'nodad'],
      ['ip', '-n', g, '-6', 'addr', 'add', `${A.gwCli6}/64`, 'dev', 'g0', 'nodad'],
      ['ip', '-n', g, '-6', 'addr', 'add', `${A.gwSrv6}/64`, 'dev', 'g1', 'nodad'],
      ['ip', '-n', s, '-6', 'addr', 'add', `${A.srv6}/64`, 'dev', 's0', 'nodad'],
    ];
    for (const [n, devs] of [
      [c, ['lo', 'c0']],
      [g, ['lo', 'g0', 'g1']],
      [s, ['lo', 's0']],
    ] as const) {
      for (const d of devs) cmds.push(['ip', '-n', n, 'link', 'set', d, 'up']);
    }
    cmds.push(
      ['ip', '-n', c, 'route', 'add', 'default', 'via', A.gwCli4],
      ['ip', '-n', s, 'route', 'add', 'default', 'via', A.gwSrv4],
      ['ip', '-n', c, '-6', 'route', 'add', 'default', 'via', A.gwCli6],
      ['ip', '-n', s, '-6', 'route', 'add', 'default', 'via', A.gwSrv6],
    );
    for (const cmd of cmds) await this.host(cmd);
    await this.exec('gw', ['sysctl', '-qw', 'net.ipv4.ip_forward=1'], { check: true });
    await this.exec('gw', ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1'], { check: true });
    this.log(`lab ${this.id}: namespaces ${c}, ${g}, ${s} up`);
  }

  private async buildHa(): Promise<void> {
    const { cli: c, gw: a, gwb: b, srv: s, sw } = this.ns as Record<Role | HaRole, string>;
    const H = HA_ADDR;
    for (const n of [sw, c, a, b, s]) {
      await this.host(['ip', 'netns', 'add', n]);
      this.created.push(n);
    }
    const cmds: string[][] = [];
    for (const br of ['brc', 'brs', 'bry']) cmds.push(['ip', '-n', sw, 'link', 'add', br, 'type', 'bridge'], ['ip', '-n', sw, 'link', 'set', br, 'up']);
    const port = (n: string, dev: string, swDev: string, br: string, addr: string) => {
      cmds.push(
        ['ip', '-n', n, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', swDev, 'netns', sw],
        ['ip', '-n', sw, 'link', 'set', swDev, 'master', br],
        ['ip', '-n', sw, 'link', 'set', swDev, 'up'],
        ['ip', '-n', n, 'addr', 'add', `${addr}/24`, 'dev', dev],
        ['ip', '-n', n, 'link', 'set', dev, 'up'],
      );
    };
    port(c, 'c0', 'c', 'brc', H.cli4);
    port(s, 's0', 's', 'brs', H.srv4);
    port(a, 'g0', 'ac', 'brc', H.gwaCli4);
    port(a, 'g1', 'as', 'brs', H.gwaSrv4);
    port(a, 'gy', 'ay', 'bry', H.gwaSync4);
    port(b, 'g0', 'bc', 'brc', H.gwbCli4);
    port(b, 'g1', 'bs', 'brs', H.gwbSrv4);
    port(b, 'gy', 'by', 'bry', H.gwbSync4);
    for (const n of [c, a, b, s]) cmds.push(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
    cmds.push(['ip', '-n', c, 'route', 'add', 'default', 'via', H.vipCli4], ['ip', '-n', s, 'route', 'add', 'default', 'via', H.vipSrv4]);
    for (const cmd of cmds) await this.host(cmd);
    for (const g of ['gw', 'gwb']) await this.exec(g, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'], { check: true });
    this.log(`lab ${this.id}: HA namespaces ${[sw, c, a, b, s].join(', ')} up`);
  }

  /**
   * Puts the floating addresses on gateway `to` (taking them off the other one) and announces
   * them with gratuitous ARP on both segments, so the client and the server send to it.
   */
  async moveVip(to: 'gw' | 'gwb'): Promise<void> {
    const from = to === 'gw' ? 'gwb' : 'gw';
    const H = HA_ADDR;
    for (const [dev, vip] of [
      ['g0', H.vipCli4],
      ['g1', H.vipSrv4],
    ] as const) {
      await this.exec(from, ['ip', 'addr', 'del', `${vip}/24`, 'dev', dev]);
      await this.exec(to, ['ip', 'addr', 'add', `${vip}/24`, 'dev', dev], { check: true });
      const garp =
        'import sys\nfrom scapy.all import ARP, Ether, get_if_hwaddr, sendp\n' +
        'dev, vip = sys.argv[1], sys.argv[2]\nmac = get_if_hwaddr(dev)\n' +
        "sendp(Ether(src=mac, dst='ff:ff:ff:ff:ff:ff') / ARP(op=1, hwsrc=mac, psrc=vip, hwdst='00:00:00:00:00:00', pdst=vip), iface=dev, count=3, verbose=0)\n";
      await this.exec(to, ['/usr/bin/python3', '-c', garp, dev, vip], { check: true });
    }
  }

  /** Runs a namespace-scoped management command from the root namespace (`ip -n NS …`, `ip netns add/del`). */
  private async host(argv: string[]): Promise<void> {
    const r = await this.run(argv, { check: false });
    if (r.code !== 0) throw new Error(`lab: ${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  }

  /** Runs argv in a namespace of the lab and resolves with its output and exit code. */
  exec(ns: Role | HaRole | string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.run(['ip', 'netns', 'exec', this.nsName(ns), ...argv], opts);
  }

  private run(argv: string[], opts: ExecOptions): Promise<ExecResult> {
    if (this.destroyed) return Promise.reject(new Error('lab destroyed'));
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), {
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
        env: opts.env ?? process.env,
        cwd: opts.cwd,
      });
      const pid = child.pid;
      if (pid !== undefined) this.procs.set(pid, child);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      child.stdin!.on('error', () => {});
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      else child.stdin!.end();
      const timer = setTimeout(() => {
        if (pid !== undefined) killGroup(pid, 'SIGKILL');
      }, opts.timeoutMs ?? 120_000);
      child.on('error', (e) => {
        clearTimeout(timer);
        if (pid !== undefined) this.procs.delete(pid);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (pid !== undefined) this.procs.delete(pid);
        const r = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code, signal };
        if (opts.check && code !== 0) {
          reject(new Error(`${argv.join(' ')} exited ${code ?? signal}: ${r.stderr.trim() || r.stdout.trim()}`));
        } else resolve(r);
      });
    });
  }

  /**
   * Starts argv in a namespace of the lab as its own process group and tracks it by PID.
   * stdio defaults to pipes. The caller may stop it with lab.kill(child) or leave it to destroy().
   */
  spawn(ns: Role | HaRole | string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error('lab destroyed');
    const child = spawn('ip', ['netns', 'exec', this.nsName(ns), ...argv], {
      stdio: 'pipe',
      ...opts,
      detached: true,
    });
    if (child.pid !== undefined) {
      const pid = child.pid;
      this.procs.set(pid, child);
      child.on('exit', () => this.procs.delete(pid));
    }
    return child;
  }

  /** SIGTERM (then SIGKILL after graceMs) to a process this lab started; resolves when it exited. */
  async kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    const pid = child.pid;
    if (pid === undefined || !this.procs.has(pid)) return;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    killGroup(pid, signal);
    const t = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }

  /** Kills the lab's processes and deletes its namespaces. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    const children = [...this.procs.values()].filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.all(children.map((c) => this.kill(c, 'SIGTERM', 3000)));
    this.destroyed = true;
    live.delete(this);
    for (const n of this.created.reverse()) {
      for (let i = 0; i < 3; i++) {
        try {
          execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
          break;
        } catch {
          await sleep(100);
        }
      }
    }
    this.created = [];
    this.log(`lab ${this.id}: destroyed`);
  }

  /** Synchronous teardown for exit/signal paths: SIGKILL to our process groups, delete namespaces. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const pid of this.procs.keys()) killGroup(pid, 'SIGKILL');
    this.procs.clear();
    for (const n of this.created.reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    this.created = [];
  }
}

/** Signals the process group we created for pid (detached spawn => pgid == pid). */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}
