/**
 * Issue #7 and the restart part of #9, against `nfqwall run` on a lab gateway:
 *
 * - the default control socket (/run/nfqwall/queue-N.sock, no --control; N random in
 *   1000..60000 so parallel runs do not meet): created 0600 root:root in a 0700 directory,
 *   `conntrack -L`, `rules -L`, `sysctl` find it with --queue N, a non-root client is refused,
 *   the socket is removed at exit;
 * - periodic state saves (--state FILE --state-interval 1): the file appears and follows the
 *   table while the daemon runs; kill -9 during traffic, then (fail-closed) traffic stops
 *   while it is down and the stale iptables rules are replaced at restart; the restart with
 *   --state restores the entries of the last periodic save and the connections resume
 *   (a stream arrives byte-exact); with --fail-open traffic passes while it is down;
 * - an FTP expectation (PASV seen) survives SIGTERM + restart with --state: the data
 *   connection is then RELATED and admitted by rules that admit nothing else to its port.
 * Rules admit TCP only as a NEW SYN (to chosen ports) and then as ESTABLISHED, with
 * nf_conntrack_tcp_loose=0, so a connection whose entry was not restored is dropped.
 * Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import {
  bulkStream,
  ftpPasvClient,
  nfq,
  nfqCopy,
  ROOT,
  skip,
  startDaemon,
  talker,
  TCP_TOOL,
  tmpDir,
  until,
  waitListen,
  watch,
  type Watched,
} from './ops-harness';
import { clientCopy } from '../helpers/client-copy';

if (skip) process.stderr.write(`ops-default e2e skipped: ${skip}\n`);
const T = { timeout: 300_000 };

const RULES = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp --syn -m multiport --dports 21,6100,6201 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

interface StateView {
  savedAt: number;
  entries: Array<{ tuple: number[]; status: number }>;
  expectations: number;
}
function readState(file: string): StateView | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const h = lines[0];
  return { savedAt: h.savedAt, entries: lines.slice(1, 1 + h.entries), expectations: h.expectations };
}
/** Does the saved state hold the TCP entry cli:sport → srv:dport? (ports word of the ORIG tuple) */
const holds = (s: StateView | undefined, sport: number, dport: number) =>
  !!s && s.entries.some((e) => (e.tuple[0] & 0xff) === 6 && e.tuple[9] >>> 0 === ((sport << 16) | dport) >>> 0);

describe('default control socket, periodic state saves, restarts', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let rules: string;
  const daemons: Watched[] = [];
  let defaultSock = '';

  before(async () => {
    tmp = tmpDir('default');
    rules = path.join(tmp, 'fw.rules');
    fs.writeFileSync(rules, RULES);
    lab = await Lab.create();
    const echo = watch(lab.spawn('srv', [process.execPath, TCP_TOOL, 'echo', A.srv4, '6100'], { cwd: ROOT }));
    await echo.waitFor(/^READY$/m, 'out');
    const ping = await lab.exec('cli', ['ping', '-c', '1', '-w', '10', A.srv4]);
    assert.equal(ping.code, 0, 'warm-up ping');
  });
  after(async () => {
    for (const d of daemons) await lab?.kill(d.child);
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    // only if a failed test left it behind (the daemon removes it on exit)
    if (defaultSock && fs.existsSync(defaultSock)) fs.rmSync(defaultSock, { force: true });
  });

  async function daemon(args: string[]): Promise<Watched> {
    const d = await startDaemon(lab, ['--rules', rules, '--set', 'net.netfilter.nf_conntrack_tcp_loose=0', ...args]);
    daemons.push(d);
    return d;
  }

  test('the default control socket: 0600 root, found with --queue N, refused to nobody, removed at exit', T, async () => {
    const q = 1000 + Math.floor(Math.random() * 59000);
    defaultSock = `/run/nfqwall/queue-${q}.sock`;
    assert.equal(fs.existsSync(defaultSock), false, `${defaultSock} must not exist before the test`);
    const d = await daemon(['--queue', String(q)]);
    assert.match(d.err, new RegExp(`"path":"${defaultSock}","msg":"control socket listening"`));
    const st = fs.statSync(defaultSock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600, 'socket mode');
    assert.equal(st.uid, 0);
    assert.equal(st.gid, 0);
    const dir = fs.statSync('/run/nfqwall');
    assert.equal(dir.mode & 0o777, 0o700, '/run/nfqwall mode');
    assert.equal(dir.uid, 0);

    const t = await talker(lab, 6100);
    assert.equal(await t.roundTrip(), true);
    const l = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--queue', String(q)]);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, new RegExp(`^tcp +6 \\d+ ESTABLISHED src=198\\.18\\.1\\.1 dst=198\\.19\\.2\\.1 sport=${t.localPort} dport=6100 `, 'm'));
    assert.match(l.stderr, /1 flow entries have been shown/);
    const r = await nfq(lab, ['rules', '-L', '--queue', String(q)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^-A FORWARD -p tcp .*--dports 21,6100,6201 .*-j ACCEPT$/m);
    const s = await nfq(lab, ['sysctl', 'net.netfilter.nf_conntrack_tcp_loose', '--queue', String(q)]);
    assert.equal(s.stdout, 'net.netfilter.nf_conntrack_tcp_loose = 0\n', s.stderr);
    // the same command pointed at another queue finds no daemon: the queue number selects the socket
    const other = await nfq(lab, ['conntrack', '-C', '--queue', String(q === 60999 ? q - 1 : q + 1)]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /no nfqwall daemon is listening on \/run\/nfqwall\/queue-\d+\.sock/);

    // a local user who is not root cannot use it; the same client files run by root can,
    // so what refuses nobody is the socket's permissions, not the client
    const client = clientCopy();
    try {
      const nobody = await nfqCopy(lab, client, 'nobody', ['conntrack', '-L', '--queue', String(q)]);
      assert.equal(nobody.code, 1, nobody.stdout + nobody.stderr);
      assert.match(nobody.stderr, new RegExp(`${defaultSock}: permission denied`));
      assert.equal(nobody.stdout, '');
      const asRoot = await nfqCopy(lab, client, 'root', ['conntrack', '-L', '-p', 'tcp', '--queue', String(q)]);
      assert.equal(asRoot.code, 0, asRoot.stderr);
      assert.match(asRoot.stdout, new RegExp(` sport=${t.localPort} dport=6100 `));
    } finally {
      client.remove();
    }

    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
    assert.equal(fs.existsSync(defaultSock), false, 'the socket is removed at exit');
  });

  for (const [failOpen, queues] of [
    [false, '41'],
    [true, '42'],
    [false, '44:45'],
  ] as const) {
    test(
      `periodic state saves; kill -9 under traffic: ${failOpen ? 'fail-open passes' : 'fail-closed blocks'} while down, restart with --state restores the entries, connections resume, stale rules replaced (${queues.includes(':') ? `--queues ${queues}` : `--queue ${queues}`})`,
      T,
      async () => {
        const q = queues.replace(':', '-');
        const ctl = path.join(tmp, `ctl-${q}.sock`);
        const state = path.join(tmp, `ct-${q}.state`);
        const args = [
          ...(queues.includes(':') ? ['--queues', queues] : ['--queue', queues]),
          ...['--control', ctl, '--state', state, '--state-interval', '1'],
          ...(failOpen ? ['--fail-open'] : []),
        ];
        const d = await daemon(args);
        // the stream only in fail-closed: with fail-open it would run on unseen while the daemon
        // is down, and a restored window far behind the sequence numbers is INVALID (kernel too)
        const stream = failOpen ? undefined : await bulkStream(lab, 6201);
        await stream?.progress(1 << 20, 'start');
        const first = await until(async () => readState(state), 'a periodic save');
        assert.equal(d.child.exitCode, null, 'saved while running');
        if (stream) await until(async () => holds(readState(state), stream.localPort, 6201), 'the stream in a save');
        // a connection opened after the first save appears in a later one: the file follows the table
        const t = await talker(lab, 6100);
        assert.equal(await t.roundTrip(), true);
        const later = await until(async () => {
          const s = readState(state);
          return s && s.savedAt > first.savedAt && holds(s, t.localPort, 6100) ? s : undefined;
        }, 'a later save with the new connection');
        assert.ok(later.savedAt > first.savedAt);
        assert.match(d.err, /"msg":"state saved"/);
        // restart from this periodic save even though later ones follow, with the stream 16 MB
        // further on by then (beyond any TCP window): the worst case of a save 'interval' old
        const snapshot = path.join(tmp, `snapshot-${q}.state`);
        fs.copyFileSync(state, snapshot);
        const snap = readState(snapshot)!;
        assert.ok(holds(snap, t.localPort, 6100) && (!stream || holds(snap, stream.localPort, 6201)), 'the snapshot holds the connections');
        await stream?.progress(16 << 20, 'after the snapshot');

        await lab.kill(d.child, 'SIGKILL');
        assert.equal(await d.exited, null);
        const ipt = (await lab.exec('gw', ['iptables', '-S'])).stdout;
        assert.match(ipt, new RegExp(`-A FORWARD -j NFQWALL-q${q}\\b`), 'the killed daemon left its rules');
        const ping = await lab.exec('cli', ['ping', '-c', '2', '-i', '0.3', '-W', '1', A.srv4]);
        if (failOpen) {
          assert.equal(ping.code, 0, 'fail-open: traffic passes while the daemon is down');
          // its sequence numbers move on unseen: the restored entry must pick them up again
          assert.equal(await t.roundTrip(), true, 'fail-open: the connection works while the daemon is down');
        } else assert.notEqual(ping.code, 0, 'fail-closed: traffic stops while the daemon is down');

        const d2 = await daemon(args.map((a) => (a === state ? snapshot : a)));
        assert.match(d2.err, /removed stale nfqwall rules/);
        const restored = Number(/"restored":(\d+)/.exec(d2.err)?.[1]);
        const expired = Number(/"expired":(\d+)/.exec(d2.err)?.[1]);
        assert.equal(restored + expired, snap.entries.length, `restored ${restored} + expired ${expired} of ${snap.entries.length}`);
        assert.ok(restored >= (stream ? 2 : 1), `restored ${restored}`);
        const ipt2 = (await lab.exec('gw', ['iptables', '-S'])).stdout;
        assert.equal(ipt2.match(new RegExp(`-A FORWARD -j NFQWALL-q${q}\\b`, 'g'))?.length, 1, ipt2);
        const l = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--control', ctl]);
        assert.match(l.stdout, new RegExp(`ESTABLISHED .*sport=${t.localPort} dport=6100 .*\\[ASSURED\\]`));
        if (stream) assert.match(l.stdout, new RegExp(`ESTABLISHED .*sport=${stream.localPort} dport=6201 .*\\[ASSURED\\]`));
        assert.equal(await t.roundTrip(), true, 'the echo connection resumes');
        if (stream) {
          await stream.progress(1 << 20, 'after the restart');
          const res = await stream.stop();
          assert.deepEqual(res.received, res.sent, 'byte-exact across kill -9 and restart');
        }
        await lab.kill(d2.child);
        assert.equal(await d2.exited, 0);
      },
    );
  }

  test('an FTP expectation survives a restart with --state: the data connection is RELATED and admitted', T, async () => {
    const ctl = path.join(tmp, 'ctl-ftp.sock');
    const state = path.join(tmp, 'ftp.state');
    const args = ['--queue', '43', '--control', ctl, '--state', state, '--state-interval', '0'];
    // data ports: 51210 (announced in the PASV answer) and 51211 (never announced)
    for (const p of [51210, 51211]) {
      const w = watch(lab.spawn('srv', [process.execPath, TCP_TOOL, 'echo', A.srv4, String(p)], { cwd: ROOT }));
      await w.waitFor(/^READY$/m, 'out');
    }
    const script = path.join(tmp, 'ftp.sh');
    fs.writeFileSync(script, "printf '220 ready\\r\\n'; read l; printf '227 Entering Passive Mode (198,19,2,1,200,10).\\r\\n'; sleep 120\n");
    const ftpd = watch(lab.spawn('srv', ['socat', '-d', '-d', `TCP-LISTEN:21,bind=${A.srv4},reuseaddr`, `EXEC:sh ${script}`]));
    await waitListen(lab, 21);
    let d = await daemon(args);
    const ftp = ftpPasvClient(lab, A.srv4);
    const exp = await until(
      async () => {
        const r = await nfq(lab, ['conntrack', '-L', 'expect', '--control', ctl]);
        return r.stdout.trim() !== '' ? r.stdout : undefined;
      },
      'the expectation',
      100,
    ).catch(async (err) => {
      const l = await nfq(lab, ['conntrack', '-L', '--control', ctl]);
      throw new Error(
        `${err.message}\nconntrack -L:\n${l.stdout}\nftp client:\n${ftp.out}\n${ftp.err}\nftp server:\n${ftpd.err}\ndaemon:\n${d.err.slice(-3000)}`,
      );
    });
    assert.match(exp, /proto=6 src=198\.18\.1\.1 dst=198\.19\.2\.1 sport=0 dport=51210 .*helper=ftp/);
    await lab.kill(d.child);
    assert.equal(await d.exited, 0);
    assert.equal(readState(state)?.expectations, 1, 'the expectation is in the state file');

    d = await daemon(args);
    assert.match(d.err, /"msg":"state restored"/);
    assert.match(d.err, /"expectations":1/);
    const after = await nfq(lab, ['conntrack', '-L', 'expect', '--control', ctl]);
    const norm = (s: string) => s.replace(/^\d+ /gm, 'T ');
    assert.equal(norm(after.stdout), norm(exp), 'the same expectation after the restart');
    // the control: a port nobody announced is refused by the rules
    const refused = await lab.exec('cli', ['socat', '-T', '3', '-', `TCP:${A.srv4}:51211,connect-timeout=3`], { input: 'x\n' });
    assert.notEqual(refused.code, 0, 'port 51211 (no expectation) is dropped');
    // the announced data port: RELATED through the restored expectation
    const data = await talker(lab, 51210);
    assert.equal(await data.roundTrip(), true, 'the data connection works');
    const l = await nfq(lab, ['conntrack', '-L', '-p', 'tcp', '--dport', '51210', '--control', ctl]);
    assert.match(l.stdout, new RegExp(`ESTABLISHED src=198\\.18\\.1\\.1 dst=198\\.19\\.2\\.1 sport=${data.localPort} dport=51210 `));
    const e = await nfq(lab, ['conntrack', '-L', 'expect', '--control', ctl]);
    assert.equal(e.stdout, '', 'the expectation was used up by the data connection');
    const v = await nfq(lab, ['rules', '-L', '-v', '--control', ctl]);
    assert.match(v.stdout, /^\[[1-9]\d*:\d+\] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT$/m);
    await lab.kill(d.child);
  });
});
