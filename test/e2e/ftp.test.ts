/**
 * FTP end to end (issue 6): vsftpd in srv, curl / a raw client in cli, and in gw either
 * `nfqwall run --rules FILE` (the FTP helper assigned by `-t raw … -j CT --helper ftp`) or the
 * kernel with the same rules loaded by iptables-restore / ip6tables-restore (the kernel's own
 * nf_conntrack_ftp). Checked:
 *   - downloads and uploads arrive intact (sha256) in passive and active mode, IPv4 (PASV/PORT)
 *     and IPv6 (EPSV/EPRT), through nfqwall;
 *   - without the helper rule the data connections fail;
 *   - a PORT bounce (another host's address) creates no expectation, a PORT with the client's
 *     own address does (nfqwall conntrack -L expect, kernel conntrack -L expect);
 *   - differential: the same transfers through the kernel gw have the same outcomes, and the
 *     capture at gw replayed through nfqwall (same rules) gives the same table (control and
 *     RELATED data connections) and the same ctstate counts as the kernel;
 *   - expectation limit: nf_conntrack_expect_max=2 with several PASV at once keeps the table
 *     bounded and logs `nf_conntrack: expectation table full`.
 * Needs root. Only PIDs started here are stopped; the lab is destroyed in after().
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { Capture, comparableTable, disableOffload, KernelGw, NFQWALL, replay, replayCtstateCounts, ROOT, sleep, watch } from '../helpers/kernel';
import { writeVsftpdConf } from '../helpers/vsftpd';

const isRoot = process.getuid?.() === 0;
const haveTools = fs.existsSync('/usr/sbin/vsftpd') && fs.existsSync('/usr/bin/curl');
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const skip = !isRoot ? 'needs root' : !haveTools ? 'vsftpd/curl not installed' : !fs.existsSync(ADDON) ? 'native addon not built' : false;
if (skip) process.stderr.write(`ftp e2e skipped: ${skip}\n`);

const T = { timeout: 90_000 };
const FTP_RAW = path.join(ROOT, 'test', 'helpers', 'ftp_raw.py');

const RULES_BODY = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;
const RAW_HELPER = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
COMMIT
`;
const RULES = RAW_HELPER + RULES_BODY;

interface Mode {
  name: string;
  host: string;
  args: string[];
}
const MODES: Mode[] = [
  { name: 'IPv4 passive (PASV)', host: A.srv4, args: ['--disable-epsv'] },
  { name: 'IPv4 active (PORT)', host: A.srv4, args: ['-P', '-', '--disable-eprt'] },
  { name: 'IPv6 passive (EPSV)', host: `[${A.srv6}]`, args: [] },
  { name: 'IPv6 active (EPRT)', host: `[${A.srv6}]`, args: ['-P', '-'] },
];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('FTP end to end through the gateway', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let root: string;
  let data: Buffer;
  let nUp = 0;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-ftp-'));
    fs.chmodSync(tmp, 0o755);
    root = path.join(tmp, 'root');
    fs.mkdirSync(path.join(root, 'pub'), { recursive: true });
    fs.chmodSync(root, 0o755);
    const ftpUser = /^ftp:x:(\d+):(\d+):/m.exec(fs.readFileSync('/etc/passwd', 'utf8'));
    if (ftpUser) fs.chownSync(path.join(root, 'pub'), Number(ftpUser[1]), Number(ftpUser[2]));
    fs.chmodSync(path.join(root, 'pub'), 0o777);
    data = randomBytes(40_000); // small: every packet of the kernel run must fit the capture
    fs.writeFileSync(path.join(root, 'pub', 'down.bin'), data);
    fs.chmodSync(path.join(root, 'pub', 'down.bin'), 0o644);
    for (const n of ['rules', 'rules-nohelper']) fs.writeFileSync(path.join(tmp, n), n === 'rules' ? RULES : RULES_BODY);
    const conf = writeVsftpdConf(tmp, root, [
      'write_enable=YES',
      'anon_upload_enable=YES',
      'anon_umask=022',
      'port_enable=YES',
      'connect_from_port_20=YES',
      'connect_timeout=5',
      'data_connection_timeout=10',
      'dirmessage_enable=NO',
    ]);
    lab = await Lab.create({ prefix: 'ftp' });
    await disableOffload(lab);
    lab.spawn('srv', ['/usr/sbin/vsftpd', conf]);
    for (let i = 0; ; i++) {
      const r = await lab.exec('srv', ['ss', '-Hltn', 'sport = :21']);
      if (r.stdout.trim()) break;
      if (i > 200) throw new Error('vsftpd did not start listening');
      await sleep(50);
    }
  });

  after(async () => {
    await lab?.destroy();
    if (tmp && !process.env.NFQW_KEEP_CAPTURES) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Download + upload in one mode; returns whether each arrived intact. */
  async function transfer(m: Mode): Promise<{ down: boolean; up: boolean; err: string }> {
    const out = path.join(tmp, `down-${nUp}.bin`);
    const upName = `up-${++nUp}.bin`;
    const upSrc = path.join(tmp, `src-${upName}`);
    fs.writeFileSync(upSrc, data);
    const common = ['-sS', '--connect-timeout', '5', '--max-time', '25', ...m.args];
    const d = await lab.exec('cli', ['curl', ...common, `ftp://${m.host}/pub/down.bin`, '-o', out]);
    const u = await lab.exec('cli', ['curl', ...common, '-T', upSrc, `ftp://${m.host}/pub/${upName}`]);
    const got = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0);
    const upPath = path.join(root, 'pub', upName);
    const up = fs.existsSync(upPath) ? fs.readFileSync(upPath) : Buffer.alloc(0);
    return { down: d.code === 0 && sha(got) === sha(data), up: u.code === 0 && sha(up) === sha(data), err: d.stderr + u.stderr };
  }

  async function startNfqwall(rulesFile: string, extra: string[] = []) {
    const control = path.join(tmp, `ctl-${nUp}-${Date.now()}.sock`);
    const child = lab.spawn(
      'gw',
      ['node', NFQWALL, 'run', '--rules', rulesFile, '--queue', '7', '--iptables', 'auto', '--control', control, '--log-level', 'info', ...extra],
      { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } },
    );
    const w = watch(child);
    try {
      await w.waitFor(/"portids"/, 'err');
    } catch (err) {
      await lab.kill(child);
      throw err;
    }
    for (let i = 0; !fs.existsSync(control) && i < 200; i++) await sleep(25);
    return {
      w,
      control,
      async cli(args: string[]) {
        return lab.exec('gw', ['node', NFQWALL, ...args, '--control', control], { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } });
      },
      async stop() {
        await lab.kill(child as ChildProcess, 'SIGTERM');
      },
    };
  }

  async function rawPort(addr: string): Promise<{ child: ChildProcess; reply: string }> {
    const child = lab.spawn('cli', ['/usr/bin/python3', FTP_RAW, 'port', A.srv4, addr]);
    const w = watch(child);
    await w.waitFor(/^\d{3} /m);
    return { child, reply: w.out.trim() };
  }

  const kernelResults: Record<string, { down: boolean; up: boolean; err: string }> = {};

  test('kernel gw with its own FTP helper: transfers, RELATED data connections, replay of the capture agrees', T, async () => {
    const gw = new KernelGw(lab);
    await gw.restore(RULES, RULES);
    await gw.installCtstateCounters();
    await gw.flush();
    const file = path.join(tmp, 'ftp-kernel.pcap');
    const cap = await Capture.start(lab, 'gw', file);
    await gw.zeroCounters(['mangle']);
    try {
      for (const m of MODES) {
        kernelResults[m.name] = await transfer(m);
        assert.deepEqual(
          { ...kernelResults[m.name], err: '' },
          { down: true, up: true, err: '' },
          `${m.name} through the kernel gw: ${kernelResults[m.name].err}`,
        );
      }
    } finally {
      await cap.stop();
    }
    const kernelCounts = await gw.ctstateCounts();
    const kernelTable = await gw.table();
    // every transfer = 2 control + 2 data connections; data connections are RELATED to the control one
    assert.equal(kernelCounts.RELATED, MODES.length * 2, `kernel RELATED count ${JSON.stringify(kernelCounts)}`);
    const r = await replay(lab, file, ['--rules', path.join(tmp, 'rules')]);
    const msg = `kernel:\n${kernelTable.map((e) => e.line).join('\n')}\nnfqwall:\n${r.table.map((e) => e.line).join('\n')}`;
    assert.deepEqual(replayCtstateCounts(r.packets), kernelCounts, `ctstate counts differ\n${msg}`);
    assert.deepEqual(comparableTable(r.table), comparableTable(kernelTable), `tables differ\n${msg}`);
    // packets between the hosts (the replay treats every packet as FORWARD; ND/MLD to gw went to INPUT in the kernel)
    const hosts = new Set<string>([A.cli4, A.srv4, A.cli6, A.srv6]);
    const dropped = r.packets.filter((p) => hosts.has(p.src) && hosts.has(p.dst) && p.verdict === 'DROP');
    assert.deepEqual(dropped, [], 'the replay dropped forwarded packets the kernel let through');

    // bounce vs legitimate PORT: expectations in the kernel
    const bounce = await rawPort('198.18.1.77');
    assert.deepEqual(await gw.expectations(), [], 'the kernel created an expectation for a bounce');
    const legit = await rawPort(A.cli4);
    const exp = await gw.expectations();
    assert.equal(exp.length, 1, `kernel expectations after a PORT with the client's own address: ${exp.join('\n')}`);
    await lab.kill(bounce.child);
    await lab.kill(legit.child);
    // back to an empty gw for the nfqwall tests
    for (const bin of ['iptables', 'ip6tables']) for (const t of ['filter', 'raw', 'mangle']) await lab.exec('gw', [bin, '-w', '-t', t, '-F'], { check: true });
    for (const bin of ['iptables', 'ip6tables']) await lab.exec('gw', [bin, '-w', '-P', 'FORWARD', 'ACCEPT'], { check: true });
    await gw.flush();
  });

  test('nfqwall run with the ftp helper: downloads and uploads intact, same outcomes as the kernel; bounce creates no expectation', T, async () => {
    const fw = await startNfqwall(path.join(tmp, 'rules'));
    try {
      for (const m of MODES) {
        const r = await transfer(m);
        assert.deepEqual({ down: r.down, up: r.up }, { down: true, up: true }, `${m.name} through nfqwall: ${r.err}\n${fw.w.err}`);
        if (kernelResults[m.name]) assert.deepEqual({ down: r.down, up: r.up }, { down: kernelResults[m.name].down, up: kernelResults[m.name].up });
      }
      const bounce = await rawPort('198.18.1.77');
      let exp = await fw.cli(['conntrack', '-L', 'expect']);
      assert.equal(exp.code, 0, exp.stderr);
      assert.equal(exp.stdout.trim(), '', `nfqwall created an expectation for a bounce (${bounce.reply})`);
      const legit = await rawPort(A.cli4);
      exp = await fw.cli(['conntrack', '-L', 'expect']);
      assert.equal(
        exp.stdout
          .trim()
          .split('\n')
          .filter((l) => l.trim()).length,
        1,
        `expectations after a legitimate PORT: ${exp.stdout}`,
      );
      assert.match(exp.stdout, /198\.18\.1\.1/);
      await lab.kill(bounce.child);
      await lab.kill(legit.child);
    } finally {
      await fw.stop();
    }
  });

  test('nfqwall run without the helper rule: the data connections fail', T, async () => {
    const fw = await startNfqwall(path.join(tmp, 'rules-nohelper'));
    try {
      for (const m of [MODES[0], MODES[1]]) {
        const r = await transfer(m);
        assert.deepEqual({ down: r.down, up: r.up }, { down: false, up: false }, `${m.name} should fail without the helper`);
      }
    } finally {
      await fw.stop();
    }
  });

  test('expectation limit: expect_max=2 and several PASV at once stay bounded and log "expectation table full"', T, async () => {
    const fw = await startNfqwall(path.join(tmp, 'rules'), ['--set', 'net.netfilter.nf_conntrack_expect_max=2']);
    const child = lab.spawn('cli', ['/usr/bin/python3', FTP_RAW, 'pasv', A.srv4, '5']);
    const w = watch(child);
    try {
      await w.waitFor(/^HOLD/m, 'out', 60_000);
      const exp = await fw.cli(['conntrack', '-L', 'expect']);
      const n = exp.stdout.split('\n').filter((l) => l.trim()).length;
      assert.ok(n > 0 && n <= 2, `expectations: ${n}\n${exp.stdout}`);
      await fw.w.waitFor(/nf_conntrack: expectation table full/, 'err', 10_000);
    } finally {
      await lab.kill(child);
      await fw.stop();
    }
  });
});
