/**
 * `nfqwall lab`: the embedded demo. Builds the cli/gw/srv namespace lab (./netns), runs the
 * daemon (`nfqwall run --rules rules/lab.rules --iptables auto …`) in gw as a child process,
 * starts small services in srv (HTTP on 80 and 8080, vsftpd on 21 when the rules allow FTP),
 * prints what to try, keeps a live status line and tears everything down on stop().
 *
 * Every process is started through Lab.spawn (own process group, tracked by PID); nothing is
 * configured in the root namespace. The daemon gets SIGTERM first so that it answers every
 * queued packet and removes its own iptables rules before the namespaces are deleted.
 */
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR } from './netns';
import { parseKernelQueues, type KernelQueueInfo } from '../queue/queue';

/** The repository root (the directory with nfqwall's package.json), from sources or dist/. */
export function projectRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        if ((JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === 'nfqwall') return dir;
      } catch {
        /* keep looking */
      }
    }
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the nfqwall project root');
}

export interface DemoOptions {
  /** Rule file for the daemon (default rules/lab.rules of the project). */
  rules: string;
  /** Port of the metrics endpoint on the gateway's cli-side address (default 9100). */
  metricsPort: number;
  /** Extra arguments for `nfqwall run`. */
  runArgs: string[];
  /** Starts vsftpd: 'auto' (when the rule file mentions port 21 or the ftp helper), true, false. */
  ftp: 'auto' | boolean;
  /** Seconds to wait for the daemon to bind its queue. */
  readyTimeoutSec: number;
  /** Progress messages (stderr). */
  log: (msg: string) => void;
  /** Which optional `run` flags this build supports (probed by the caller). */
  runSupports: (flag: string, value: string) => boolean;
}

export interface DemoInfo {
  id: string;
  ns: { cli: string; gw: string; srv: string };
  addr: typeof LAB_ADDR;
  rules: string;
  tmpdir: string;
  daemonLog: string;
  daemonPid: number | undefined;
  servicePids: Record<string, number | undefined>;
  control: string | null;
  metrics: string | null;
  ftp: boolean;
  bin: string;
}

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition format (samples only; comments skipped). */
export function parsePrometheus(text: string): PromSample[] {
  const out: PromSample[] = [];
  const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = re.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    }
    const v = Number(m[3]);
    if (!Number.isNaN(v)) out.push({ name: m[1], labels, value: v });
  }
  return out;
}

/** Figures for the status line out of the daemon's metrics (undefined where a metric is absent). */
export function summarizeMetrics(samples: PromSample[]): { entries?: number; packets?: number; dropped?: number } {
  let entries: number | undefined;
  let packets: number | undefined;
  let dropped: number | undefined;
  for (const s of samples) {
    if (s.name === 'nfqwall_nf_conntrack_entries') entries = (entries ?? 0) + s.value;
    // packets by hook and verdict: any counter named nfqwall_*packets* that carries a verdict label
    if (/^nfqwall_.*packets.*/.test(s.name) && s.labels.verdict !== undefined) {
      packets = (packets ?? 0) + s.value;
      if (/drop|reject/i.test(s.labels.verdict)) dropped = (dropped ?? 0) + s.value;
    }
  }
  return { entries, packets, dropped };
}

/** A tiny HTTP server (both ports, IPv4 and IPv6) run with `node -e` in srv. */
const HTTP_SERVER_JS = `
const http = require('node:http');
const ports = process.argv.slice(1).map(Number);
for (const port of ports) {
  http.createServer((req, res) => {
    const body = 'hello from the nfqwall lab server (srv, port ' + port + '): ' + req.method + ' ' + req.url +
      ' from ' + req.socket.remoteAddress + '\\n';
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }).listen({ port, host: '::', ipv6Only: false }, () => console.log('http listening on ' + port));
}
process.on('SIGTERM', () => process.exit(0));
`;

function vsftpdConfig(dir: string, ftpUser: string): string {
  return [
    '# vsftpd for the nfqwall lab (srv namespace only), written by nfqwall lab',
    'listen=NO',
    'listen_ipv6=YES',
    'listen_port=21',
    'background=NO',
    'anonymous_enable=YES',
    'no_anon_password=YES',
    'local_enable=NO',
    'write_enable=NO',
    `anon_root=${dir}/ftp`,
    `ftp_username=${ftpUser}`,
    'nopriv_user=nobody',
    `secure_chroot_dir=${dir}/empty`,
    'pasv_enable=YES',
    'pasv_min_port=40000',
    'pasv_max_port=40100',
    'port_enable=YES',
    'connect_from_port_20=NO',
    'seccomp_sandbox=NO',
    'isolate=NO',
    'isolate_network=NO',
    'syslog_enable=NO',
    'xferlog_enable=YES',
    `vsftpd_log_file=${dir}/vsftpd.log`,
    'dual_log_enable=NO',
    'hide_ids=YES',
    '',
  ].join('\n');
}

/**
 * The account vsftpd maps anonymous logins to: vsftpd changes into that account's home before
 * anon_root, so the home must exist (Debian's vsftpd package creates `ftp` with /srv/ftp).
 */
function anonFtpUser(): string | undefined {
  let passwd = '';
  try {
    passwd = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const name of ['ftp', 'nobody']) {
    const line = passwd.split('\n').find((l) => l.startsWith(name + ':'));
    const home = line?.split(':')[5];
    if (home && fs.existsSync(home)) return name;
  }
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function rulesAllowFtp(file: string): boolean {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return /--helper\s+ftp/.test(text) || /--dports?\s+(\S*,)?21(\b|,)/.test(text);
  } catch {
    return false;
  }
}

export class Demo {
  lab!: Lab;
  info!: DemoInfo;
  private daemon?: ChildProcess;
  private services: ChildProcess[] = [];
  private tmp = '';
  private stopped = false;
  private readonly root = projectRoot();
  private readonly bin = path.join(projectRoot(), 'bin', 'nfqwall.js');

  constructor(private readonly opts: DemoOptions) {}

  /** Builds the lab, starts the daemon and the services. On failure everything is removed again. */
  async start(): Promise<DemoInfo> {
    const { opts } = this;
    const rules = path.resolve(opts.rules);
    if (!fs.existsSync(rules)) throw new Error(`rule file not found: ${rules}`);
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqwall-lab-'));
    fs.chmodSync(this.tmp, 0o755);
    try {
      this.lab = await Lab.create({ prefix: 'nfqlab', log: opts.log, signalTeardown: false });
      const gw4 = LAB_ADDR.gwCli4;
      const control = path.join(this.tmp, 'control.sock');
      const metricsAddr = `${gw4}:${opts.metricsPort}`;
      const args = ['run', '--rules', rules, '--iptables', 'auto'];
      const hasMetrics = opts.runSupports('--metrics', metricsAddr);
      const hasControl = opts.runSupports('--control', control);
      if (hasMetrics) args.push('--metrics', metricsAddr);
      else opts.log('this build of `nfqwall run` has no --metrics yet: the status line uses the kernel queue counters and the log');
      if (hasControl) args.push('--control', control);
      else opts.log('this build of `nfqwall run` has no --control yet: conntrack/rules/sysctl commands are not available');
      args.push(...opts.runArgs);

      const daemonLog = path.join(this.tmp, 'nfqwall.log');
      const logFd = fs.openSync(daemonLog, 'a');
      this.daemon = this.lab.spawn('gw', [process.execPath, this.bin, ...args], {
        cwd: this.root,
        stdio: ['ignore', logFd, logFd],
      });
      fs.closeSync(logFd);
      opts.log(`daemon: nfqwall ${args.join(' ')} (pid ${this.daemon.pid}, log ${daemonLog})`);
      await this.waitDaemonReady(daemonLog);

      // services in srv
      const http = this.spawnService('http', [process.execPath, '-e', HTTP_SERVER_JS, '80', '8080']);
      const servicePids: Record<string, number | undefined> = { http: http.pid };
      const ftpUser = anonFtpUser();
      const ftp = opts.ftp === 'auto' ? rulesAllowFtp(rules) && fs.existsSync('/usr/sbin/vsftpd') && ftpUser !== undefined : opts.ftp;
      if (opts.ftp === 'auto' && !ftp && rulesAllowFtp(rules)) {
        opts.log('no FTP server: needs /usr/sbin/vsftpd and an ftp (or nobody) account with an existing home directory');
      }
      if (ftp) {
        fs.mkdirSync(path.join(this.tmp, 'ftp'), { mode: 0o755 });
        fs.mkdirSync(path.join(this.tmp, 'empty'), { mode: 0o755 });
        fs.writeFileSync(
          path.join(this.tmp, 'ftp', 'README.txt'),
          'Fetched through nfqwall: the control connection on port 21 is NEW, the data connection is RELATED (ftp helper).\n',
        );
        fs.writeFileSync(path.join(this.tmp, 'ftp', 'random-256k.bin'), Buffer.alloc(256 * 1024, 0x5a));
        const conf = path.join(this.tmp, 'vsftpd.conf');
        fs.writeFileSync(conf, vsftpdConfig(this.tmp, ftpUser ?? 'ftp'), { mode: 0o600 });
        servicePids.ftp = this.spawnService('vsftpd', ['vsftpd', conf]).pid;
      }
      await this.waitListening([80, 8080, ...(ftp ? [21] : [])]);

      this.info = {
        id: this.lab.id,
        ns: { ...this.lab.ns },
        addr: LAB_ADDR,
        rules,
        tmpdir: this.tmp,
        daemonLog,
        daemonPid: this.daemon.pid,
        servicePids,
        control: hasControl ? control : null,
        metrics: hasMetrics ? `http://${metricsAddr}/metrics` : null,
        ftp,
        bin: this.bin,
      };
      return this.info;
    } catch (err) {
      const tail = this.daemonLogTail();
      await this.stop();
      if (tail) throw new Error(`${(err as Error).message}\n--- daemon log ---\n${tail}`);
      throw err;
    }
  }

  private spawnService(name: string, argv: string[]): ChildProcess {
    const fd = fs.openSync(path.join(this.tmp, `${name}.log`), 'a');
    const child = this.lab.spawn('srv', argv, { cwd: this.tmp, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.services.push(child);
    this.opts.log(`service: ${name} in ${this.lab.ns.srv} (pid ${child.pid})`);
    return child;
  }

  private daemonLogTail(n = 2000): string {
    try {
      return fs.readFileSync(path.join(this.tmp, 'nfqwall.log'), 'utf8').slice(-n).trim();
    } catch {
      return '';
    }
  }

  /** Ready = the daemon's queue has a listener in gw's /proc/net/netfilter/nfnetlink_queue. */
  private async waitDaemonReady(logFile: string): Promise<void> {
    const d = this.daemon!;
    const deadline = Date.now() + this.opts.readyTimeoutSec * 1000;
    while (Date.now() < deadline) {
      if (d.exitCode !== null || d.signalCode !== null) {
        throw new Error(`the daemon exited (${d.exitCode ?? d.signalCode}) before binding its queue (log ${logFile})`);
      }
      const q = await this.queueCounters();
      if (q.length > 0) {
        // the queue is bound; the iptables jump rules are installed right after
        await sleep(300);
        return;
      }
      await sleep(100);
    }
    throw new Error(`the daemon did not bind its queue within ${this.opts.readyTimeoutSec}s`);
  }

  private async waitListening(ports: number[]): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await this.lab.exec('srv', ['ss', '-Htln'], { timeoutMs: 5000 });
      const open = new Set([...r.stdout.matchAll(/:(\d+)\s/g)].map((m) => Number(m[1])));
      const missing = ports.filter((p) => !open.has(p));
      if (missing.length === 0) return;
      for (const s of this.services) {
        if (s.exitCode !== null || s.signalCode !== null) {
          throw new Error(`a service in srv exited (${s.exitCode ?? s.signalCode}); logs in ${this.tmp}`);
        }
      }
      if (Date.now() > deadline) throw new Error(`services not listening on ${missing.join(', ')} in srv`);
      await sleep(100);
    }
  }

  async queueCounters(): Promise<KernelQueueInfo[]> {
    const r = await this.lab.exec('gw', ['cat', '/proc/net/netfilter/nfnetlink_queue'], { timeoutMs: 5000 });
    return parseKernelQueues(r.stdout);
  }

  async metrics(): Promise<PromSample[] | undefined> {
    if (!this.info?.metrics) return undefined;
    const r = await this.lab.exec('gw', ['curl', '-s', '--max-time', '1', this.info.metrics], { timeoutMs: 3000 });
    if (r.code !== 0) return undefined;
    return parsePrometheus(r.stdout);
  }

  /** Drops the rules logged (lines with the LOG prefix in the daemon log; a lower bound: LOG is rate limited). */
  loggedDrops(): number {
    try {
      const text = fs.readFileSync(this.info.daemonLog, 'utf8');
      return (text.match(/nfqwall drop: /g) ?? []).length;
    } catch {
      return 0;
    }
  }

  daemonAlive(): boolean {
    const d = this.daemon;
    return !!d && d.exitCode === null && d.signalCode === null;
  }

  /** What to try, as commands to paste. */
  instructions(): string {
    const i = this.info;
    const A = LAB_ADDR;
    const c = `ip netns exec ${i.ns.cli}`;
    const g = `ip netns exec ${i.ns.gw}`;
    const ctl = i.control ? ` --control ${i.control}` : '';
    const L: string[] = [];
    L.push(`nfqwall lab ${i.id} is up.`);
    L.push(`  namespaces: cli=${i.ns.cli} gw=${i.ns.gw} srv=${i.ns.srv}`);
    L.push(`  cli ${A.cli4}, ${A.cli6}  ->  gw (nfqwall, ${path.relative(this.root, i.rules) || i.rules})  ->  srv ${A.srv4}, ${A.srv6}`);
    L.push(`  daemon pid ${i.daemonPid}, log ${i.daemonLog}`);
    L.push('');
    L.push('Allowed by the rules (new TCP to 80/8080/21, pings, replies and related flows):');
    L.push(`  ${c} curl http://${A.srv4}/`);
    L.push(`  ${c} curl http://${A.srv4}:8080/`);
    L.push(`  ${c} curl 'http://[${A.srv6}]/'`);
    L.push(`  ${c} ping -c 3 ${A.srv4}`);
    L.push(`  ${c} ping -6 -c 3 ${A.srv6}`);
    if (i.ftp) {
      L.push(`  ${c} curl ftp://${A.srv4}/README.txt                 # passive FTP: data connection RELATED via the ftp helper`);
      L.push(`  ${c} curl --ftp-port - ftp://${A.srv4}/README.txt    # active FTP (server connects back)`);
      L.push(`  ${c} lftp -e 'ls; cat README.txt; bye' ${A.srv4}`);
    }
    L.push('');
    L.push('Refused or dropped:');
    L.push(`  ${c} curl http://${A.srv4}:23/                 # REJECT --reject-with tcp-reset: "Connection refused" at once`);
    L.push(`  ${c} curl --max-time 3 http://${A.srv4}:3000/  # dropped (and logged "nfqwall drop:"): times out`);
    L.push('');
    L.push('Inside the firewall:');
    if (i.control) {
      L.push(`  ${g} node ${i.bin} conntrack -L${ctl}`);
      L.push(`  ${g} node ${i.bin} conntrack -S${ctl}`);
      L.push(`  ${g} node ${i.bin} rules -L -v${ctl}`);
      L.push(`  ${g} node ${i.bin} sysctl net.netfilter.nf_conntrack_tcp_timeout_established${ctl}`);
    } else {
      L.push('  (conntrack -L / rules -L -v / sysctl need the control socket, which this build of `run` does not offer yet)');
    }
    if (i.metrics) L.push(`  ${g} curl -s ${i.metrics}        # Prometheus metrics (also reachable from cli)`);
    L.push(`  ${g} iptables -S; ${g} iptables -t raw -S   # the jump and notrack rules nfqwall installed`);
    L.push(`  tail -f ${i.daemonLog}   # the daemon's log (pino JSON: LOG lines, drops, reloads)`);
    L.push('');
    return L.join('\n');
  }

  /** Stops the daemon (SIGTERM: verdicts out, its iptables rules removed), the services and the lab. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.lab) {
      if (this.daemon) await this.lab.kill(this.daemon, 'SIGTERM', 5000);
      await Promise.all(this.services.map((s) => this.lab.kill(s, 'SIGTERM', 3000)));
      await this.lab.destroy();
    }
    if (this.tmp) fs.rmSync(this.tmp, { recursive: true, force: true });
  }

  /** Last resort on a second Ctrl-C: SIGKILL to everything, namespaces deleted. */
  stopNow(): void {
    this.stopped = true;
    this.lab?.destroySync();
    if (this.tmp) fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** Formats the one-line status from two snapshots taken dtSec apart. */
export function formatStatus(
  elapsedSec: number,
  prev: { q?: KernelQueueInfo; m?: ReturnType<typeof summarizeMetrics> },
  cur: { q?: KernelQueueInfo; m?: ReturnType<typeof summarizeMetrics>; loggedDrops: number },
  dtSec: number,
): string {
  const mm = Math.floor(elapsedSec / 60);
  const ss = Math.floor(elapsedSec % 60);
  const parts = [`lab ${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')}`];
  let pps: number | undefined;
  if (cur.m?.packets !== undefined && prev.m?.packets !== undefined) pps = (cur.m.packets - prev.m.packets) / dtSec;
  else if (cur.q && prev.q) pps = (cur.q.idSequence - prev.q.idSequence) / dtSec;
  parts.push(pps === undefined ? 'packets/s -' : `${pps.toFixed(pps < 10 ? 1 : 0)} packets/s`);
  if (cur.q) parts.push(`${cur.q.idSequence} queued`);
  parts.push(cur.m?.entries !== undefined ? `${cur.m.entries} conntrack entries` : 'conntrack entries - (no metrics)');
  if (cur.m?.dropped !== undefined) parts.push(`${cur.m.dropped} dropped/rejected`);
  else parts.push(`${cur.loggedDrops} drops logged`);
  if (cur.q) parts.push(`queue full drops ${cur.q.queueDropped + cur.q.userDropped}`);
  return parts.join(' | ');
}
