/**
 * Operator commands against a live `nfqwall run --rules …` on a lab gateway after real
 * traffic (ping, TCP and UDP from cli to srv): conntrack -L/-C/-S/-D/-F/-L expect with
 * conntrack-tools' line format (compared with the kernel's own `conntrack -L` for the same
 * traffic in a second lab whose gateway uses kernel conntrack), rules -L -v, sysctl, reload,
 * metrics, bad control requests, --sysctl files. Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { BIN, ENV, ftpPasvClient, nfq, ROOT, skip, sleep, startDaemon, tcpServer, tmpDir, until, waitListen, type Watched } from './ops-harness';

if (skip) process.stderr.write(`ops-cli e2e skipped: ${skip}\n`);
const T = { timeout: 240_000 };

const RULES = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
-A FORWARD -p ipv6-icmp -j ACCEPT
-A FORWARD -p udp -j ACCEPT
COMMIT
`;

const SUMMARY_SHOWN = /^conntrack v1\.4\.8 \(conntrack-tools\): (\d+) flow entries have been shown\.\n$/;

/** Timeouts and ephemeral values (ports of the client side, ICMP ids) normalised. */
function normalise(line: string): string {
  return line
    .replace(/^(\S+\s+\d+ )\d+ /, '$1T ')
    .replace(/^(ipv[46]\s+\d+\s+\S+\s+\d+ )\d+ /, '$1T ')
    .replace(/id=\d+/g, 'id=ID')
    .replace(/sport=(\d+)/, (m, p) => (Number(p) >= 1024 && p !== '5300' ? 'sport=EPH' : m))
    .replace(/dport=(\d+)(?=\s*(\[|mark))/, (m, p) => (Number(p) >= 1024 && p !== '5300' ? 'dport=EPH' : m));
}

async function traffic(lab: Lab): Promise<void> {
  const p = await lab.exec('cli', ['ping', '-c', '2', '-i', '0.2', A.srv4]);
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const p6 = await lab.exec('cli', ['ping', '-6', '-c', '2', '-i', '0.2', A.srv6]);
  assert.equal(p6.code, 0, p6.stdout + p6.stderr);
  const t = await lab.exec('cli', ['socat', '-T', '5', '-', `TCP:${A.srv4}:8080`]);
  assert.equal(t.stdout, 'hello\n', t.stderr);
  const u = await lab.exec('cli', ['socat', '-T', '1', '-', `UDP:${A.srv4}:5300,sourceport=40000`], { input: 'x\n' });
  assert.equal(u.stdout, 'x\n', u.stderr);
}

describe('operator commands against a live daemon', { skip }, () => {
  let lab: Lab;
  let kern: Lab;
  let tmp: string;
  let rulesFile: string;
  let ctl: string;
  let daemon: Watched;
  const ct = (...a: string[]) => nfq(lab, ['conntrack', ...a, '--control', ctl]);

  before(async () => {
    tmp = tmpDir('ops');
    rulesFile = path.join(tmp, 'fw.rules');
    fs.writeFileSync(rulesFile, RULES);
    ctl = path.join(tmp, 'ctl.sock');
    lab = await Lab.create();
    kern = await Lab.create();
    for (const l of [lab, kern]) {
      tcpServer(l, A.srv4, 8080);
      l.spawn('srv', ['socat', `UDP-LISTEN:5300,bind=${A.srv4},fork,reuseaddr`, 'PIPE']);
      await waitListen(l, 8080);
      await waitListen(l, 5300, 'u');
    }
    // the kernel's conntrack on the second gateway: any conntrack match turns tracking on
    await kern.exec('gw', ['iptables', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED,RELATED', '-j', 'ACCEPT'], { check: true });
    await kern.exec('gw', ['ip6tables', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED,RELATED', '-j', 'ACCEPT'], { check: true });
    daemon = await startDaemon(lab, ['--rules', rulesFile, '--control', ctl, '--metrics', '127.0.0.1:9464']);
    await traffic(lab);
    await traffic(kern);
  });

  after(async () => {
    await lab?.destroy();
    await kern?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("conntrack -L: conntrack-tools lines and summary, same shape as the kernel's conntrack -L", T, async () => {
    const ours = await ct('-L');
    assert.equal(ours.code, 0, ours.stderr);
    const lines = ours.stdout.trim().split('\n');
    const m = SUMMARY_SHOWN.exec(ours.stderr);
    assert.ok(m, ours.stderr);
    assert.equal(Number(m[1]), lines.length);
    const theirs = await kern.exec('gw', ['conntrack', '-L']);
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.match(theirs.stderr, /^conntrack v[\d.]+ \(conntrack-tools\): \d+ flow entries have been shown\.\n$/);
    const want = theirs.stdout.trim().split('\n').map(normalise).sort();
    const got = lines.map(normalise).sort();
    // the same flows, field for field (kernel: the same traffic through kernel conntrack)
    const pick = (ls: string[], re: RegExp) => ls.filter((l) => re.test(l));
    for (const re of [/^tcp .*dport=8080 /, /^udp .*dport=5300 /, /^icmp .*dst=198\.19\.2\.1 /, /^icmpv6 .*dst=2001:2:0:2::1 /]) {
      assert.deepEqual(pick(got, re), pick(want, re), `flow ${re}`);
      assert.equal(pick(got, re).length, 1, `one ${re} line: ${got.join('\n')}`);
    }
    const ext = await ct('-L', '-o', 'extended', '-p', 'tcp');
    assert.match(ext.stdout, /^ipv4     2 tcp      6 \d+ TIME_WAIT src=198\.18\.1\.1 dst=198\.19\.2\.1 sport=\d+ dport=8080 /m);
    const kext = await kern.exec('gw', ['conntrack', '-L', '-o', 'extended', '-p', 'tcp', '--dport', '8080']);
    assert.deepEqual(
      ext.stdout
        .trim()
        .split('\n')
        .map(normalise)
        .filter((l) => l.includes('dport=8080')),
      kext.stdout.trim().split('\n').map(normalise),
    );
  });

  test('filters: -p, -s/-d (ORIG tuple), --orig-src/--orig-dst, --sport/--dport, -f', T, async () => {
    const n = async (...a: string[]) => {
      const r = await ct('-L', ...a);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n');
      assert.equal(Number(SUMMARY_SHOWN.exec(r.stderr)?.[1]), lines.length);
      return lines;
    };
    assert.ok((await n('-p', 'tcp')).every((l) => l.startsWith('tcp ')));
    assert.equal((await n('-p', 'tcp', '--dport', '8080')).length, 1);
    assert.equal((await n('-p', 'udp', '--sport', '40000')).length, 1);
    assert.equal((await n('-s', A.srv4)).length, 0, 'srv is the ORIG destination, never the source');
    assert.equal((await n('-d', A.srv4)).length, 3);
    const norm = (ls: string[]) => ls.map(normalise).sort();
    assert.deepEqual(norm(await n('--orig-dst', A.srv4)), norm(await n('-d', A.srv4)));
    assert.deepEqual(norm(await n('--orig-src', A.cli4)), norm(await n('-s', A.cli4)));
    const v6 = await n('-f', 'ipv6');
    assert.ok(v6.length >= 1 && v6.every((l) => l.includes('2001:2:')));
    const k = await kern.exec('gw', ['conntrack', '-L', '-d', A.srv4]);
    assert.equal(k.stdout.trim().split('\n').length, 3, 'the kernel lists the same three flows for -d');
  });

  test('-C and -S', T, async () => {
    const c = await ct('-C');
    const l = await ct('-L');
    assert.equal(Number(c.stdout.trim()), l.stdout.trim().split('\n').length);
    const s = await ct('-S');
    assert.match(
      s.stdout,
      /^cpu=0\s+found=\d+ invalid=\d+ insert=\d+ insert_failed=\d+ drop=\d+ early_drop=\d+ error=\d+ search_restart=\d+ clash_resolve=\d+ chaintoolong=\d+ ?\n$/,
    );
    const ks = await kern.exec('gw', ['conntrack', '-S']);
    const fields = (t: string) => [...t.split('\n')[0].matchAll(/(\w+)=/g)].map((x) => x[1]);
    assert.deepEqual(fields(s.stdout), fields(ks.stdout));
  });

  test('rules -L -v counts the traffic per rule', T, async () => {
    const r = await nfq(lab, ['rules', '-L', '-v', '--control', ctl]);
    assert.equal(r.code, 0, r.stderr);
    const est = /^\[(\d+):(\d+)\] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT$/m.exec(r.stdout);
    assert.ok(est && Number(est[1]) > 0, r.stdout);
    const plain = await nfq(lab, ['rules', '-L', '--control', ctl]);
    assert.match(plain.stdout, /^-A FORWARD -p udp -j ACCEPT$/m);
    assert.doesNotMatch(plain.stdout, /^\[\d+:\d+\] -A/m);
  });

  test('metrics after the traffic (scraped inside the gateway namespace)', T, async () => {
    const r = await lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/metrics']);
    assert.equal(r.code, 0, r.stderr);
    const val = (re: RegExp) => {
      const m = re.exec(r.stdout);
      assert.ok(m, `${re} in\n${r.stdout.slice(0, 2000)}`);
      return Number(m[1]);
    };
    const count = Number((await ct('-C')).stdout.trim());
    assert.equal(val(/^nfqwall_nf_conntrack_entries (\d+)$/m), count);
    assert.ok(val(/^nfqwall_nf_conntrack_entries_limit (\d+)$/m) > 0);
    for (const st of [
      'found',
      'invalid',
      'ignore',
      'insert',
      'insert_failed',
      'drop',
      'early_drop',
      'error',
      'search_restart',
      'clash_resolve',
      'chaintoolong',
      'expect_new',
      'expect_create',
      'expect_delete',
      'per_source_drop',
    ]) {
      assert.match(r.stdout, new RegExp(`^nfqwall_nf_conntrack_stat_${st} \\d+$`, 'm'));
    }
    assert.equal(val(/^nfqwall_nf_conntrack_stat_early_drop (\d+)$/m), 0);
    assert.ok(val(/^nfqwall_packets_total\{hook="FORWARD",verdict="accept"\} (\d+)$/m) >= 10);
    assert.ok(val(/^nfqwall_queue_packets_total\{queue="0"\} (\d+)$/m) >= 10);
    assert.equal(val(/^nfqwall_queue_enobufs_total\{queue="0"\} (\d+)$/m), 0);
    assert.match(r.stdout, /^nfqwall_queue_in_flight\{queue="0"\} \d+$/m);
    assert.ok(val(/^nfqwall_batch_size_count (\d+)$/m) > 0);
    assert.ok(val(/^nfqwall_rule_packets_total\{table="filter",chain="FORWARD",rule="1"\} (\d+)$/m) > 0);
    assert.match(r.stdout, /^nfqwall_nodejs_eventloop_lag_seconds /m);
    assert.match(r.stdout, /^nfqwall_reload_failures_total 0$/m);
  });

  test('-L expect and -F expect (FTP PASV answer through the helper)', T, async () => {
    // a minimal FTP server: greets (the helper, like the kernel's, parses only after a line
    // end), answers PASV with a 227 line and keeps the connection open
    const script = path.join(tmp, 'ftp.sh');
    fs.writeFileSync(script, "printf '220 ready\\r\\n'; read l; printf '227 Entering Passive Mode (198,19,2,1,200,10).\\r\\n'; sleep 60\n");
    lab.spawn('srv', ['socat', `TCP-LISTEN:21,bind=${A.srv4},reuseaddr`, `EXEC:sh ${script}`]);
    await waitListen(lab, 21);
    ftpPasvClient(lab, A.srv4);
    const listing = await until(
      async () => {
        const r = await ct('-L', 'expect');
        return r.stdout.trim() !== '' ? r : undefined;
      },
      'an expectation',
      20,
    );
    assert.match(
      listing.stdout,
      /^\d+ proto=6 src=198\.18\.1\.1 dst=198\.19\.2\.1 sport=0 dport=51210 mask-src=255\.255\.255\.255 mask-dst=255\.255\.255\.255 sport=0 dport=65535 master-src=198\.18\.1\.1 master-dst=198\.19\.2\.1 sport=\d+ dport=21 class=0 helper=ftp\n$/,
    );
    assert.equal(listing.stderr, 'conntrack v1.4.8 (conntrack-tools): 1 expectations have been shown.\n');
    const f = await ct('-F', 'expect');
    assert.equal(f.code, 0);
    assert.equal(f.stderr, 'conntrack v1.4.8 (conntrack-tools): expectation table has been emptied.\n');
    const after = await ct('-L', 'expect');
    assert.equal(after.stdout, '');
    assert.equal(after.stderr, 'conntrack v1.4.8 (conntrack-tools): 0 expectations have been shown.\n');
  });

  test('bad control requests leave the daemon serving', T, async () => {
    const send = (data: string | Buffer, keepOpen = false) =>
      new Promise<string>((resolve) => {
        const c = net.connect(ctl);
        let out = '';
        c.on('connect', () => c.write(data));
        c.on('data', (d) => {
          out += d.toString();
          if (keepOpen) c.destroy();
        });
        c.on('error', () => resolve(out));
        c.on('close', () => resolve(out));
        if (!keepOpen) setTimeout(() => c.end(), 300);
      });
    assert.match(await send('garbage\n'), /"ok":false.*malformed/);
    assert.match(await send('{"op":"selfdestruct"}\n'), /unknown op/);
    assert.match(await send(Buffer.alloc(200 * 1024, 0x41)), /too large/);
    // leaves after the first streamed chunk of a listing
    await send('{"op":"ct.list"}\n', true);
    assert.equal(daemon.child.exitCode, null);
    const r = await ct('-L');
    assert.equal(r.code, 0);
    await traffic(lab);
  });

  test('sysctl: read all, read one, set at run time, errors', T, async () => {
    const all = await nfq(lab, ['sysctl', '--control', ctl]);
    assert.equal(all.code, 0);
    assert.ok(
      all.stdout
        .trim()
        .split('\n')
        .every((l) => /^[\w.]+ = \d+$/.test(l)),
    );
    assert.match(all.stdout, /^nfqwall\.per_source_max = 0$/m);
    const set = await nfq(lab, ['sysctl', 'net.netfilter.nf_conntrack_udp_timeout=7', '--control', ctl]);
    assert.equal(set.stdout, 'net.netfilter.nf_conntrack_udp_timeout = 7\n');
    await lab.exec('cli', ['socat', '-T', '1', '-', `UDP:${A.srv4}:5300,sourceport=40001`], { input: 'y\n' });
    const udp = await ct('-L', '-p', 'udp', '--sport', '40001');
    // a replied UDP flow younger than 2 s keeps nf_conntrack_udp_timeout (7 s)
    assert.match(udp.stdout, /^udp {6}17 [0-7] /);
    const buckets = await nfq(lab, ['sysctl', 'net.netfilter.nf_conntrack_buckets=1024', '--control', ctl]);
    assert.equal(buckets.code, 0, buckets.stderr);
    assert.equal((await nfq(lab, ['sysctl', '-n', 'net.netfilter.nf_conntrack_buckets', '--control', ctl])).stdout, '1024\n');
    assert.ok((await ct('-L', '-p', 'udp', '--sport', '40001')).stdout.includes('sport=40001'), 'entries survive the rehash');
    const bad = await nfq(lab, ['sysctl', 'net.netfilter.nf_conntrack_max=lots', '--control', ctl]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid value 'lots'/);
    const unknown = await nfq(lab, ['sysctl', 'net.ipv4.ip_forward', '--control', ctl]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown tunable/);
  });

  test('reload: a bad file keeps the old rules and exits non-zero with FILE:LINE:COL', T, async () => {
    fs.writeFileSync(rulesFile, RULES.replace('-A FORWARD -p udp -j ACCEPT', '-A FORWARD -p udp --frobnicate -j ACCEPT'));
    const r = await nfq(lab, ['reload', '--control', ctl]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${rulesFile}:14:`), r.stderr);
    assert.match(r.stderr, new RegExp(`^${rulesFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:14:\\d+: `, 'm'));
    await traffic(lab);
    const m = await lab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9464/metrics']);
    assert.match(m.stdout, /^nfqwall_reload_failures_total 1$/m);
    fs.writeFileSync(rulesFile, RULES.replace('-A FORWARD -p udp -j ACCEPT', '-A FORWARD -p udp --dport 5300 -j ACCEPT'));
    const ok = await nfq(lab, ['reload', '--control', ctl]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match((await nfq(lab, ['rules', '-L', '--control', ctl])).stdout, /-A FORWARD -p udp -m udp --dport 5300 -j ACCEPT/);
  });

  test('-D and -F', T, async () => {
    const d = await ct('-D', '-p', 'icmp');
    assert.equal(d.code, 0);
    const deleted = d.stdout.trim().split('\n');
    assert.ok(deleted.length >= 1 && deleted.every((l) => l.startsWith('icmp ')), d.stdout);
    assert.equal(d.stderr, `conntrack v1.4.8 (conntrack-tools): ${deleted.length} flow entries have been deleted.\n`);
    assert.equal((await ct('-L', '-p', 'icmp')).stdout, '');
    const f = await ct('-F');
    assert.equal(f.stderr, 'conntrack v1.4.8 (conntrack-tools): connection tracking table has been emptied.\n');
    assert.equal((await ct('-L', '-p', 'tcp')).stdout, '');
    assert.equal((await ct('-L', '-p', 'udp')).stdout, '');
  });

  test('no daemon: a clear message', T, async () => {
    const r = await nfq(lab, ['conntrack', '-L', '--control', path.join(tmp, 'nobody.sock')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no nfqwall daemon is listening on .*nobody\.sock/);
  });
});

describe('run --sysctl FILE / --set', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  before(async () => {
    tmp = tmpDir('sysctl');
    fs.writeFileSync(path.join(tmp, 'fw.rules'), RULES);
    lab = await Lab.create();
  });
  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a good file (with an ignored - line) and --set apply before the table is created', T, async () => {
    const file = path.join(tmp, 'good.conf');
    fs.writeFileSync(
      file,
      '# tuning\nnet.netfilter.nf_conntrack_max = 5000\nnet.netfilter.nf_conntrack_buckets=2048\n-net.ipv4.ip_forward = 1\n; comment\nnfqwall.per_source_max = 100\n',
    );
    const ctl = path.join(tmp, 'ctl.sock');
    const d = await startDaemon(lab, [
      '--rules',
      path.join(tmp, 'fw.rules'),
      '--control',
      ctl,
      '--iptables',
      'off',
      '--queue',
      '3',
      '--sysctl',
      file,
      '--set',
      'net.netfilter.nf_conntrack_max=6000',
    ]);
    assert.match(d.err, /"buckets":2048,"max":6000/);
    const r = await nfq(lab, ['sysctl', 'net.netfilter.nf_conntrack_max', 'net.netfilter.nf_conntrack_buckets', 'nfqwall.per_source_max', '--control', ctl]);
    assert.equal(r.stdout, 'net.netfilter.nf_conntrack_max = 6000\nnet.netfilter.nf_conntrack_buckets = 2048\nnfqwall.per_source_max = 100\n');
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
    assert.equal(fs.existsSync(ctl), false, 'the control socket is removed on exit');
  });

  test('a bad file: FILE:LINE: message, exit 1', T, async () => {
    const file = path.join(tmp, 'bad.conf');
    fs.writeFileSync(file, 'net.netfilter.nf_conntrack_max = 5000\n\nnet.netfilter.nf_conntrack_nope = 1\nnet.netfilter.nf_conntrack_max = many\n');
    const r = await lab.exec(
      'gw',
      [
        process.execPath,
        BIN,
        'run',
        '--rules',
        path.join(tmp, 'fw.rules'),
        '--iptables',
        'off',
        '--queue',
        '4',
        '--sysctl',
        file,
        '--control',
        path.join(tmp, 'x.sock'),
      ],
      { cwd: ROOT, env: ENV },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^${file}:3: unknown tunable 'net.netfilter.nf_conntrack_nope'$`, 'm'));
    assert.match(r.stderr, new RegExp(`^${file}:4: invalid value 'many'`, 'm'));
    const s = await lab.exec(
      'gw',
      [process.execPath, BIN, 'run', '--rules', path.join(tmp, 'fw.rules'), '--iptables', 'off', '--queue', '4', '--set', 'nfqwall.ftp_loose=7'],
      { cwd: ROOT, env: ENV },
    );
    assert.equal(s.code, 1);
    assert.match(s.stderr, /--set nfqwall\.ftp_loose=7: value 7 out of range/);
    void sleep;
  });
});
