/**
 * Matches differential (issue 17): one rule file with -m recent (the SSH guard operators
 * publish), -m mark (marks the kernel's mangle table sets in both gateways) and -m connmark,
 * loaded into a kernel gateway (iptables-restore) and run by `nfqwall run --rules FILE` in a
 * second lab's gateway. The same traffic goes through both; compared: each step's outcome at
 * the client, the per-rule packet counters of FORWARD (`iptables-save -c` vs `nfqwall rules -L
 * -v`), and the SSH list (`/proc/net/xt_recent/SSH` vs `nfqwall recent SSH`, without the time
 * stamps), also after removing the address from it at run time; -m mac and -m ttl in FORWARD,
 * -m owner in OUTPUT for connections the gateway itself opens as different users and groups,
 * -m addrtype in OUTPUT before, while and after the gateway holds an extra address, -m connlimit
 * with connections held open and closed, -m hashlimit per source, in byte mode and with
 * --hashlimit-rate-match, -m time with windows around now.
 * Needs root. Both labs are destroyed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { NFQWALL, ROOT, sleep, watch } from '../helpers/kernel';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : false;
if (skip) process.stderr.write(`kernel-diff-matches skipped: ${skip}\n`);
const T = { timeout: 180_000 };

/** the client's second address, which the mangle table marks 0x12 */
const MARKED_SRC = '198.18.1.77';
/** the client's link address, the same in both labs (-m mac) */
const CLI_MAC = '02:00:00:00:00:01';
/** an address the gateway takes for a moment (-m addrtype LOCAL) */
const EXTRA_ADDR = '198.19.2.50';

/**
 * -m time rules for one datagram to port 7003, each with a window that includes or excludes the
 * time the test runs, by margins of hours and days (robust over a midnight while it runs):
 * included, excluded, included, … (the kernel's timezone, sys_tz, is the same for both gateways).
 */
const TIME_RULES = (() => {
  const t = Math.floor(Date.now() / 1000);
  const hm = (s: number) => {
    const d = (((s % 86400) + 86400) % 86400) / 60;
    return `${String(Math.floor(d / 60)).padStart(2, '0')}:${String(Math.floor(d % 60)).padStart(2, '0')}`;
  };
  const DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
  const today = (new Date(t * 1000).getUTCDay() + 6) % 7;
  const near = [DAYS[today], DAYS[(today + 1) % 7]];
  const date = (s: number) => new Date(s * 1000).toISOString().slice(0, 19);
  const time = (opts: string) => `-A FORWARD -p udp -m udp --dport 7003 -m time ${opts}`;
  return [
    time(`--timestart ${hm(t - 7200)} --timestop ${hm(t + 7200)}`),
    time(`--timestart ${hm(t + 3 * 3600)} --timestop ${hm(t + 5 * 3600)}`),
    time(`--weekdays ${near.join(',')} --timestart ${hm(t - 7200)} --timestop ${hm(t + 7200)} --kerneltz`),
    time(`--weekdays ${DAYS.filter((d) => !near.includes(d)).join(',')}`),
    time(`--datestart ${date(t - 86400)}`),
    time(`--datestop ${date(t - 86400)}`),
  ].join('\n');
})();

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name SSH --mask 255.255.255.255 --rsource
-A FORWARD -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 600 --hitcount 4 --rttl --name SSH --mask 255.255.255.255 --rsource -j DROP
-A FORWARD -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 8080 -m mark --mark 0x10/0xf0 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 8081 -m mark ! --mark 0x12 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 9090 -m connmark ! --mark 0x1 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 8082 -m mac --mac-source ${CLI_MAC} -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 8083 -m mac ! --mac-source ${CLI_MAC} -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 8084 -m ttl --ttl-eq 63 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 8085 -m ttl --ttl-gt 63 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7001 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j DROP
-A FORWARD -p tcp -m tcp --dport 7001 -j ACCEPT
${TIME_RULES}
-A FORWARD -p udp -m udp --dport 7005 -m hashlimit --hashlimit-upto 512b/s --hashlimit-burst 2kb --hashlimit-mode srcip --hashlimit-name B7005 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7007 -m hashlimit --hashlimit-upto 3/min --hashlimit-rate-match --hashlimit-mode srcip --hashlimit-name R7007 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7002 -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name U7002 -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -m owner --uid-owner 1000 -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -m owner --gid-owner 2000-2010 -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -m owner ! --socket-exists -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j DROP
-A OUTPUT -p udp -m udp --dport 7000 -m addrtype --dst-type LOCAL
-A OUTPUT -p udp -m udp --dport 7000 -m addrtype --dst-type UNICAST
-A OUTPUT -p udp -m udp --dport 7000 -m addrtype --dst-type BROADCAST
-A OUTPUT -p udp -m udp --dport 7000 -m addrtype --src-type LOCAL --limit-iface-out
COMMIT
`;

/** A SYN to srv:9090 with a wrong TCP checksum: INVALID in both, so connmark (no entry) does not match even negated. */
const BAD_CSUM_SYN = `
from scapy.all import IP, TCP, send
p = IP(bytes(IP(dst='${A.srv4}') / TCP(sport=40123, dport=9090, flags='S', seq=1000)))
p[TCP].chksum ^= 0x5555
send(p, verbose=0)
`;

/** `[pkts:bytes] -A CHAIN …` counters in order. */
function chainCounters(save: string, chain: string): number[] {
  const out: number[] = [];
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    const m = /^\[(\d+):(\d+)\]\s+-A\s+(\S+)\s/.exec(line.trim());
    if (m && table === 'filter' && m[3] === chain) out.push(Number(m[1]));
  }
  return out;
}

/** A recent list line without its time stamps: src, ttl and the stamp count. */
function listShape(lines: string): string[] {
  return lines
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const m = /^src=(\S+) ttl: (\d+) last_seen: \d+ oldest_pkt: (\d+) (.*)$/.exec(l.trim());
      return m ? `${m[1]} ttl ${m[2]} index ${m[3]} stamps ${m[4].split(',').length}` : `unparsed: ${l}`;
    })
    .sort();
}

describe('matches differential: recent, mark, connmark, mac, ttl, owner, addrtype, connlimit, hashlimit in the kernel vs nfqwall run', { skip }, () => {
  let kLab: Lab;
  let nLab: Lab;
  let nfq: ChildProcess | undefined;
  const control = `/tmp/nfqw-mdiff-${process.pid}.sock`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-mdiff-'));
  const rulesFile = path.join(dir, 'matches.rules');
  fs.writeFileSync(rulesFile, RULES);
  const nfqwall = (args: string[]) =>
    nLab.exec('gw', ['node', NFQWALL, ...args, '--control', control], { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } });

  before(async () => {
    [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'mdk' }), Lab.create({ prefix: 'mdn' })]);
    for (const lab of [kLab, nLab]) {
      await lab.exec('cli', ['ip', 'addr', 'add', `${MARKED_SRC}/24`, 'dev', 'c0'], { check: true });
      await lab.exec('cli', ['ip', 'link', 'set', 'c0', 'address', CLI_MAC], { check: true });
      await lab.exec('gw', ['iptables', '-w', '-t', 'mangle', '-A', 'PREROUTING', '-s', MARKED_SRC, '-j', 'MARK', '--set-mark', '0x12'], { check: true });
      for (const port of [22, 7001, 8080, 8081, 8082, 8083, 8084, 8085, 9090])
        lab.spawn('srv', ['socat', '-u', `TCP4-LISTEN:${port},fork,reuseaddr`, 'OPEN:/dev/null']);
      lab.spawn('srv', ['socat', '-u', 'UDP4-RECV:7002', 'OPEN:/dev/null']);
    }
    await kLab.exec('gw', ['iptables-restore', '-w'], { input: RULES, check: true });
    nfq = nLab.spawn('gw', ['node', NFQWALL, 'run', '--rules', rulesFile, '--queue', '5', '--iptables', 'auto', '--control', control], {
      cwd: ROOT,
      env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
    });
    await watch(nfq).waitFor(/"portids"/, 'err');
    for (const lab of [kLab, nLab]) {
      for (let i = 0; ; i++) {
        const r = await lab.exec('srv', ['ss', '-Hltn', 'sport = :9090']);
        if (r.stdout.trim()) break;
        if (i > 200) throw new Error('socat did not start');
        await sleep(25);
      }
      // neighbour caches filled first, so that no measured SYN waits for ARP long enough to be retransmitted
      await lab.exec('cli', ['ping', '-c', '1', '-W', '2', A.gwCli4]);
      await lab.exec('srv', ['ping', '-c', '1', '-W', '2', A.gwSrv4]);
    }
  });

  after(async () => {
    if (nfq && nLab) await nLab.kill(nfq);
    await Promise.all([kLab?.destroy(), nLab?.destroy()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One TCP connection attempt from the client (one SYN only when it is dropped: 0.5 s connect timeout). */
  async function connect(lab: Lab, port: number, src?: string): Promise<string> {
    const bind = src ? `,bind=${src}` : '';
    const r = await lab.exec('cli', ['sh', '-c', `echo x | socat -u - TCP4:${A.srv4}:${port},connect-timeout=0.5${bind}`], { timeoutMs: 30_000 });
    return r.code === 0 ? 'ok' : /refused/i.test(r.stderr) ? 'refused' : 'failed';
  }

  /**
   * nfqwall follows the local table asynchronously (rtnetlink → the daemon's event loop): in its
   * lab, wait until it shows the address change before the next datagram. The kernel is synchronous.
   */
  async function settled(lab: Lab, present: boolean): Promise<void> {
    if (lab !== nLab) return;
    for (;;) {
      const r = await nfqwall(['rules', '--local-routes']);
      assert.equal(r.code, 0, r.stderr);
      if (r.stdout.includes(`local ${EXTRA_ADDR}/32`) === present) return;
      await sleep(20);
    }
  }

  /** Waits until the gateway's table (the kernel's, or nfqwall's) has n ESTABLISHED connections to port 7001. */
  async function established(lab: Lab, n: number): Promise<void> {
    for (;;) {
      const r =
        lab === nLab
          ? await nfqwall(['conntrack', '-L', '-p', 'tcp', '--dport', '7001'])
          : await lab.exec('gw', ['conntrack', '-L', '-p', 'tcp', '--dport', '7001']);
      if (r.stdout.split('\n').filter((l) => / ESTABLISHED /.test(l)).length === n) return;
      await sleep(20);
    }
  }

  async function traffic(lab: Lab, removeFromList: () => Promise<void>): Promise<Record<string, string>> {
    const res: Record<string, string> = {};
    for (let i = 1; i <= 5; i++) res[`ssh ${i}`] = await connect(lab, 22);
    await removeFromList();
    res['ssh after -ADDR'] = await connect(lab, 22);
    res['8080 marked 0x12 (0x10/0xf0)'] = await connect(lab, 8080, MARKED_SRC);
    res['8080 unmarked'] = await connect(lab, 8080);
    res['8081 marked 0x12 (! 0x12)'] = await connect(lab, 8081, MARKED_SRC);
    res['8081 unmarked'] = await connect(lab, 8081);
    res['9090 connmark ! 0x1'] = await connect(lab, 9090);
    const bad = await lab.exec('cli', ['/usr/bin/python3', '-c', BAD_CSUM_SYN]);
    res['9090 bad checksum sent'] = bad.code === 0 ? 'ok' : `failed: ${bad.stderr}`;
    res['8082 mac'] = await connect(lab, 8082);
    res['8083 ! mac'] = await connect(lab, 8083);
    res['8084 ttl 63'] = await connect(lab, 8084);
    res['8085 ttl > 63'] = await connect(lab, 8085);
    // the gateway's own connections through OUTPUT, by owner
    const gw = async (who: string[]) => {
      const r = await lab.exec('gw', [...who, 'sh', '-c', `echo x | socat -u - TCP4:${A.srv4}:8080,connect-timeout=0.5`], { timeoutMs: 30_000 });
      return r.code === 0 ? 'ok' : 'failed';
    };
    res['OUTPUT uid 1000'] = await gw(['setpriv', '--reuid=1000', '--regid=3000', '--clear-groups']);
    res['OUTPUT gid 2005'] = await gw(['setpriv', '--reuid=1001', '--regid=2005', '--clear-groups']);
    res['OUTPUT uid 1002 gid 3000'] = await gw(['setpriv', '--reuid=1002', '--regid=3000', '--clear-groups']);
    res['OUTPUT root'] = await gw([]);
    // -m addrtype as the gateway's addresses change: one datagram to ADDR:7000 before, while and after ADDR is its own
    const udp = (dst: string) =>
      lab.exec(
        'gw',
        [
          '/usr/bin/python3',
          '-c',
          `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\ns.sendto(b'x',('${dst}',7000))`,
        ],
        { check: true },
      );
    await udp(EXTRA_ADDR);
    await lab.exec('gw', ['ip', 'addr', 'add', `${EXTRA_ADDR}/24`, 'dev', 'g1'], { check: true });
    await settled(lab, true);
    await udp(EXTRA_ADDR);
    await lab.exec('gw', ['ip', 'addr', 'del', `${EXTRA_ADDR}/24`, 'dev', 'g1'], { check: true });
    await settled(lab, false);
    await udp(EXTRA_ADDR);
    await udp('198.19.2.255');
    // -m connlimit: two connections held open, a third refused; when one has closed, room again
    const hold = () => lab.spawn('cli', ['sh', '-c', `sleep 120 | socat -u - TCP4:${A.srv4}:7001`]);
    const held = [hold(), hold()];
    await established(lab, 2);
    res['7001 third while two are open'] = await connect(lab, 7001);
    await lab.kill(held[0]);
    await established(lab, 1);
    res['7001 after one closed'] = await connect(lab, 7001);
    await lab.kill(held[1]);
    // -m time: one datagram, counted by the rules whose window holds now
    const dgrams = (port: number, n: number, size: number) =>
      lab.exec(
        'cli',
        [
          '/usr/bin/python3',
          '-c',
          `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(${n}): s.sendto(b'x'*${size},('${A.srv4}',${port}))`,
        ],
        { check: true },
      );
    await dgrams(7003, 1, 1);
    // -m hashlimit byte rate: ten 1028-byte packets at once, 512b/s with a 2kb burst (1 + 4 refills)
    await dgrams(7005, 10, 1000);
    // --hashlimit-rate-match: twelve at once, 3/min: rate 3 + burst 5 in the first 60 s window
    await dgrams(7007, 12, 1);
    // -m hashlimit: six datagrams at once from each of two sources, burst 3 each
    for (const src of [A.cli4, MARKED_SRC])
      await lab.exec(
        'cli',
        [
          '/usr/bin/python3',
          '-c',
          `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('${src}',0))\nfor i in range(6): s.sendto(b'x',('${A.srv4}',7002))`,
        ],
        { check: true },
      );
    return res;
  }

  test('same outcomes, counters and recent list', T, async (t) => {
    let kList = '';
    let nList = '';
    const [k, n] = await Promise.all([
      traffic(kLab, async () => {
        kList = (await kLab.exec('gw', ['cat', '/proc/net/xt_recent/SSH'], { check: true })).stdout;
        await kLab.exec('gw', ['sh', '-c', `echo -${A.cli4} > /proc/net/xt_recent/SSH`], { check: true });
      }),
      traffic(nLab, async () => {
        const l = await nfqwall(['recent', 'SSH']);
        assert.equal(l.code, 0, `nfqwall recent SSH: ${l.stderr}`);
        nList = l.stdout;
        const w = await nfqwall(['recent', 'SSH', `-${A.cli4}`]);
        assert.equal(w.code, 0, `nfqwall recent SSH -ADDR: ${w.stderr}`);
      }),
    ]);
    t.diagnostic(JSON.stringify(k));
    t.diagnostic(`kernel list: ${kList.trim()} / nfqwall list: ${nList.trim()}`);
    assert.deepEqual(n, k, 'client-side outcomes differ (nfqwall vs kernel)');
    assert.deepEqual([k['ssh 3'], k['ssh 4'], k['ssh after -ADDR']], ['ok', 'failed', 'ok'], 'the kernel guard lets three through, then drops');
    assert.deepEqual(
      [k['OUTPUT uid 1000'], k['OUTPUT gid 2005'], k['OUTPUT uid 1002 gid 3000'], k['OUTPUT root']],
      ['ok', 'ok', 'failed', 'failed'],
      'the kernel owner rules',
    );
    assert.deepEqual([k['7001 third while two are open'], k['7001 after one closed']], ['failed', 'ok'], 'the kernel connlimit');
    assert.deepEqual(listShape(nList), listShape(kList), 'the SSH list differs');
    assert.equal(listShape(kList).length, 1);

    const names = await nfqwall(['recent']);
    assert.equal(names.stdout.trim(), 'SSH');
    const ksave = (await kLab.exec('gw', ['iptables-save', '-c'], { check: true })).stdout;
    const nl = await nfqwall(['rules', '-L', '-v']);
    assert.equal(nl.code, 0, nl.stderr);
    const kc = chainCounters(ksave, 'FORWARD');
    const nc = chainCounters(nl.stdout, 'FORWARD');
    assert.equal(nc.length, kc.length);
    // rule 0 (ESTABLISHED,RELATED) counts however many segments the stacks exchanged
    assert.ok(kc[0] > 0 && nc[0] > 0);
    assert.deepEqual(nc.slice(1), kc.slice(1), `per-rule counters differ\nkernel:\n${ksave}\nnfqwall:\n${nl.stdout}`);
    assert.deepEqual(chainCounters(nl.stdout, 'OUTPUT'), chainCounters(ksave, 'OUTPUT'), 'OUTPUT counters differ');
    assert.equal(chainCounters(ksave, 'FORWARD').at(-1), 6, 'the kernel hashlimit: three of six per source');
    const fwd = RULES.split('\n').filter((l) => l.startsWith('-A FORWARD'));
    const at = (needle: string) => fwd.findIndex((l) => l.includes(needle));
    const t0 = at('--dport 7003');
    assert.deepEqual(kc.slice(t0, t0 + 6), [1, 0, 1, 0, 1, 0], 'the kernel -m time: windows holding now count the datagram');
    assert.deepEqual([kc[at('B7005')], kc[at('R7007')]], [5, 8], 'the kernel hashlimit byte rate (5 of 10) and rate-match (8 of 12)');
    assert.deepEqual(
      chainCounters(ksave, 'OUTPUT').slice(-4),
      [1, 2, 1, 3],
      'the kernel: LOCAL once (while held), UNICAST twice, BROADCAST once, source LOCAL on g1 thrice',
    );
  });
});
