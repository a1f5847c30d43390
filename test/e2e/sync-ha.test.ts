/**
 * State sync and fail-over (issue #19), in the high-availability lab (src/lab/netns.ts, HA_ADDR):
 * a client and a server, each on a segment shared with two gateways, a sync link between the
 * gateways, the floating gateway addresses moved by the test (with gratuitous ARP, as keepalived
 * does). Both gateways run the same ESTABLISHED-only policy: a connection is let in only by its
 * first packet (TCP SYN, UDP from the client side), so a gateway that does not know a connection
 * drops it; nothing is restarted on the client or the server, and the transfers must arrive whole.
 *
 *   nfqwall ↔ nfqwall (multicast): an established TCP transfer and a UDP flow (whose server
 *   replies need the entry) survive the active gateway's kill -9 and `nfqwall sync commit` on the
 *   other one.
 *   nfqwall → conntrackd → nfqwall (UDP unicast): the kernel gateway's conntrackd 1.4.7 lists
 *   nfqwall's entries (conntrackd -e), commits them (-c) and the connections carry on through the
 *   kernel; then nfqwall starts again on the first gateway, gets conntrackd's table by its resync
 *   request, and takes the connections back when the kernel gateway goes down.
 * Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HA_ADDR as H, Lab } from '../../src/lab/netns';
import { BIN, ENV, ROOT, skip as baseSkip, TCP_TOOL, tmpDir, until, watch, type Watched } from './ops-harness';

const hasConntrackd = fs.existsSync('/usr/sbin/conntrackd');
const skip = baseSkip || (!hasConntrackd ? 'conntrackd not installed (scripts/setup.sh)' : false);
if (skip) process.stderr.write(`sync-ha e2e skipped: ${skip}\n`);
const T = { timeout: 300_000 };
const ECHO = path.join(ROOT, 'test', 'helpers', 'udp-echo.js');
const TCP_PORT = 5001;
const UDP_PORT = 5002;
const SYNC_PORT = 3780;

/** the same policy on both gateways, nfqwall's and the kernel's (iptables-restore) */
const RULES = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -i gy -p udp --dport ${SYNC_PORT} -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i g0 -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i g0 -p udp -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;

const last = (out: string, re: RegExp) => {
  const all = [...out.matchAll(re)];
  return all.length ? Number(all[all.length - 1][1]) : 0;
};

describe('state sync: fail-over keeps the connections', { skip }, () => {
  let lab: Lab;
  let tmp: string;
  let rules: string;

  before(async () => {
    tmp = tmpDir('syncha');
    rules = path.join(tmp, 'fw.rules');
    fs.writeFileSync(rules, RULES);
  });
  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  function syncFile(name: string, lines: string[]): string {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, lines.join('\n') + '\n');
    return f;
  }

  async function nfqwall(ns: 'gw' | 'gwb', sync: string, queue: number): Promise<{ d: Watched; ctl: string }> {
    const ctl = path.join(tmp, `${ns}-${queue}.sock`);
    const child = lab.spawn(ns, [process.execPath, BIN, 'run', '--rules', rules, '--queue', String(queue), '--control', ctl, '--sync', sync], {
      cwd: ROOT,
      env: ENV,
    });
    const d = watch(child);
    await d.waitFor(/"msg":"nfqwall started"/, 'err', Infinity);
    return { d, ctl };
  }

  const cli = async (ns: 'gw' | 'gwb', ctl: string, args: string[]) => {
    const r = await lab.exec(ns, [process.execPath, BIN, ...args, '--control', ctl], { cwd: ROOT, env: ENV });
    assert.equal(r.code, 0, `nfqwall ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  /** The TCP transfer and the UDP flow, client → server through the floating addresses. */
  async function traffic() {
    const sink = watch(lab.spawn('srv', [process.execPath, TCP_TOOL, 'sink', H.srv4, String(TCP_PORT)], { cwd: ROOT }));
    await sink.waitFor(/READY/, 'out', 20_000);
    const echo = watch(lab.spawn('srv', [process.execPath, ECHO, 'echo', H.srv4, String(UDP_PORT)], { cwd: ROOT }));
    await echo.waitFor(/READY/, 'out', 20_000);
    const src = watch(lab.spawn('cli', [process.execPath, TCP_TOOL, 'source', H.srv4, String(TCP_PORT), '1400', '5'], { cwd: ROOT }));
    await src.waitFor(/CONNECTED/, 'out', 20_000);
    const ping = watch(lab.spawn('cli', [process.execPath, ECHO, 'ping', H.srv4, String(UDP_PORT), '20'], { cwd: ROOT }));
    const bytes = () => last(sink.out, /^BYTES (\d+)$/gm);
    const echoed = () => last(ping.out, /^ECHOED (\d+)$/gm);
    /** both flows move on: more bytes arrive and more replies come back */
    const flowing = async (what: string) => {
      const b = bytes();
      const e = echoed();
      await until(async () => bytes() > b + 200_000 && echoed() > e + 20, `both flows carry on (${what})`, 6000);
    };
    const finish = async () => {
      src.child.stdin!.write('stop\n');
      await src.waitFor(/^DONE \d+ [0-9a-f]+$/m, 'out', 120_000);
      await sink.waitFor(/^DONE \d+ [0-9a-f]+$/m, 'out', 120_000);
      const sent = /^DONE (\d+ [0-9a-f]+)$/m.exec(src.out)![1];
      const got = /^DONE (\d+ [0-9a-f]+)$/m.exec(sink.out)![1];
      assert.equal(got, sent, 'the server received exactly what the client sent');
      assert.doesNotMatch(src.out, /ERR|CLOSED/);
    };
    return { flowing, finish };
  }

  const hasFlows = (text: string) =>
    new RegExp(`ESTABLISHED src=${H.cli4} dst=${H.srv4} sport=\\d+ dport=${TCP_PORT} .*\\[ASSURED\\]`).test(text) &&
    // replied (conntrackd -e prints the original tuple only)
    new RegExp(`udp .*src=${H.cli4} dst=${H.srv4} sport=\\d+ dport=${UDP_PORT} (?!\\[UNREPLIED\\])`).test(text);

  test('nfqwall ↔ nfqwall over multicast: TCP and UDP survive kill -9 of the active gateway', T, async () => {
    lab = await Lab.create({ prefix: 'nfqha', ha: true });
    await lab.moveVip('gw');
    const mc = (addr: string) => ['transport multicast', `address ${addr}`, 'group 225.0.0.50', `port ${SYNC_PORT}`];
    const a = await nfqwall('gw', syncFile('a.sync', mc(H.gwaSync4)), 61);
    const b = await nfqwall('gwb', syncFile('b.sync', mc(H.gwbSync4)), 62);
    await b.d.waitFor(/"msg":"sync peer up"/, 'err', Infinity);
    const t = await traffic();
    await t.flowing('through A');
    // B has A's connections in its external cache, not in its table
    await until(async () => hasFlows(await cli('gwb', b.ctl, ['conntrack', '-L', '--external'])), "A's flows in B's external cache", 6000);
    assert.doesNotMatch(await cli('gwb', b.ctl, ['conntrack', '-L']), new RegExp(`dport=${TCP_PORT}`));

    await lab.kill(a.d.child, 'SIGKILL');
    await lab.moveVip('gwb');
    // the client's UDP datagrams that reached B before the commit made their entry already (allowed as NEW)
    const out = await cli('gwb', b.ctl, ['sync', 'commit']);
    assert.match(out, /^[12] entries committed, (0 not|1 not \(1 already in the table\))$/m);
    assert.ok(hasFlows(await cli('gwb', b.ctl, ['conntrack', '-L'])), 'committed entries are live');
    await t.flowing('through B after the fail-over');
    await t.finish();
    await b.d.waitFor(/"msg":"sync peer lost: nothing heard for 3 s"/, 'err', Infinity);
    const stats = await cli('gwb', b.ctl, ['sync', 'stats']);
    assert.match(stats, /^msgLost 0$/m);
    await lab.destroy();
  });

  test('nfqwall → conntrackd → nfqwall over UDP: conntrackd -e lists, -c commits, nfqwall takes them back', T, async () => {
    lab = await Lab.create({ prefix: 'nfqhk', ha: true });
    await lab.moveVip('gw');
    // the kernel gateway: the same policy in iptables, conntrackd NOTRACK over UDP to nfqwall
    await lab.exec('gwb', ['iptables-restore'], { input: RULES, check: true });
    const conf = path.join(tmp, 'conntrackd.conf');
    fs.writeFileSync(
      conf,
      `Sync {
  Mode NOTRACK { DisableExternalCache Off }
  UDP {
    IPv4_address ${H.gwbSync4}
    IPv4_Destination_Address ${H.gwaSync4}
    Port ${SYNC_PORT}
    Interface gy
    Checksum on
  }
}
General {
  HashSize 8192
  HashLimit 65536
  LogFile ${tmp}/conntrackd.log
  Syslog off
  LockFile ${tmp}/conntrackd.lock
  UNIX { Path ${tmp}/conntrackd.ctl }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace {
    Address Ignore { IPv4_address 127.0.0.1
      IPv4_address ${H.gwaSync4}
      IPv4_address ${H.gwbSync4} }
  }
}
`,
    );
    const ctd = (opt: string) => lab.exec('gwb', ['conntrackd', '-C', conf, opt], { check: true });
    const conntrackd = lab.spawn('gwb', ['conntrackd', '-C', conf]);
    await until(async () => (await lab.exec('gwb', ['conntrackd', '-C', conf, '-s'])).code === 0, 'conntrackd answering');
    const udp = (peer: string, addr: string) => ['transport udp', `address ${addr}`, `peer ${peer}`, `port ${SYNC_PORT}`];
    const aSync = syncFile('a-udp.sync', udp(H.gwbSync4, H.gwaSync4));
    let a = await nfqwall('gw', aSync, 63);
    const t = await traffic();
    await t.flowing('through nfqwall on A');
    await until(async () => hasFlows((await ctd('-e')).stdout), "nfqwall's flows in conntrackd's external cache (conntrackd -e)", 6000);

    await lab.kill(a.d.child, 'SIGKILL');
    await lab.moveVip('gwb');
    // primary-backup.sh "primary": commit, flush, resync the internal cache, send a bulk update
    await ctd('-c');
    await ctd('-f');
    await ctd('-R');
    await ctd('-B');
    const kernel = (await lab.exec('gwb', ['conntrack', '-L'], { check: true })).stdout;
    assert.ok(hasFlows(kernel), `the kernel gateway's table has them:\n${kernel}`);
    await t.flowing('through the kernel gateway after the fail-over');

    // nfqwall comes back on A: its resync request gets conntrackd's table into its external cache
    a = await nfqwall('gw', aSync, 63);
    await until(
      async () => hasFlows(await cli('gw', a.ctl, ['conntrack', '-L', '--external'])),
      "the kernel gateway's flows in nfqwall's external cache",
      6000,
    );
    // the kernel gateway goes down; A takes the connections back
    await lab.exec('gwb', ['ip', 'link', 'set', 'g0', 'down'], { check: true });
    await lab.exec('gwb', ['ip', 'link', 'set', 'g1', 'down'], { check: true });
    await lab.moveVip('gw');
    assert.match(await cli('gw', a.ctl, ['sync', 'commit']), /^[12] entries committed, (0 not|1 not \(1 already in the table\))$/m);
    await t.flowing('through nfqwall on A again');
    await t.finish();
    await lab.kill(conntrackd, 'SIGTERM');
  });
});
