/**
 * mangle differential (issue 17): one rule file with the mangle targets, loaded into a kernel
 * gateway (iptables-restore / ip6tables-restore) and run by `nfqwall run --rules FILE` in a
 * second lab's gateway; the same traffic goes through both, and what arrives at the far side
 * (tcpdump -vv at srv and at cli) is compared, packet fields that the targets change:
 *  - TCPMSS --set-mss: the MSS option of the SYN seen at srv (IPv4 and IPv6), none raised;
 *  - TTL --ttl-set/--ttl-dec, HL --hl-dec, DSCP in POSTROUTING: TTL / hop limit / TOS at srv;
 *  - CONNMARK across a connection: the SYN's mark saved in the entry, restored on every later
 *    packet of both directions, made visible by a POSTROUTING DSCP rule on the mark; `mark=` in
 *    `conntrack -L`, `-L -m MARK[/MASK]` and `-D -m MARK` on both gateways;
 *  - CHECKSUM --checksum-fill: veth passes UDP with the partial checksum its sender left
 *    (CHECKSUM_PARTIAL), so srv sees a bad checksum unless the gateway filled it;
 *  - mangle OUTPUT MARK steering policy routing (`ip rule fwmark 0x7/0xfffffff lookup 100`) for the
 *    gateway's own datagrams: the kernel re-routes after mangle OUTPUT, nfqwall's verdict mark
 *    makes nf_reinject re-route; the marked datagram arrives at srv, the unmarked one at cli;
 *  - mangle PREROUTING MARK steering the route of forwarded datagrams the same way (nfqwall's
 *    pre-routing crossing gives the mark back before the kernel routes), and a TTL test there
 *    seeing the TTL before ip_forward's decrement.
 * The L4 checksum is compared only for CHECKSUM's ports: a packet whose bytes nfqwall's verdict
 * replaced has a complete checksum (the kernel treats a replaced payload as CHECKSUM_NONE),
 * where the kernel's own rewrite leaves a partial one for the device to finish.
 * Needs root. Both labs are destroyed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { NFQWALL, ROOT, sleep, warmNeighbours, watch } from '../helpers/kernel';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : false;
if (skip) process.stderr.write(`kernel-diff-mangle skipped: ${skip}\n`);
const T = { timeout: 180_000 };

/** reached from the gateway through cli's link (main table) or srv's (table 100, fwmark 0x7) */
const STEERED = '198.19.9.9';

const RULES = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 7300 -j MARK --set-mark 0x7
-A PREROUTING -4 -p udp -m udp --dport 7302 -m ttl --ttl-eq 64 -j TTL --ttl-set 30
-A FORWARD -p tcp -m tcp --dport 7100 --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1300
-A FORWARD -p tcp -m tcp --dport 7108 --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1480
-A FORWARD -p tcp -m tcp --dport 7106 -m conntrack --ctstate NEW -j MARK --set-mark 0x5
-A FORWARD -p tcp -m tcp --dport 7106 -m conntrack --ctstate NEW -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff
-A FORWARD -p tcp -m conntrack --ctstate ESTABLISHED -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff
-A FORWARD -4 -p udp -m udp --dport 7101 -j TTL --ttl-set 17
-A FORWARD -4 -p udp -m udp --dport 7102 -j TTL --ttl-dec 5
-A FORWARD -6 -p udp -m udp --dport 7102 -j HL --hl-dec 5
-A FORWARD -p udp -m udp --dport 7104 -j CHECKSUM --checksum-fill
-A OUTPUT -p udp -m udp --dport 7200 -j MARK --set-mark 0x7
-A POSTROUTING -p udp -m udp --dport 7103 -j DSCP --set-dscp-class AF41
-A POSTROUTING -m mark --mark 0x5/0xff -j DSCP --set-dscp 0x05
COMMIT
`;

/** One packet as tcpdump -vv prints it (first line and continuation lines joined). */
interface Seen {
  v6: boolean;
  ttl: number;
  tos: number;
  proto: string;
  sport: number;
  dport: number;
  dst: string;
  syn: boolean;
  mss: number | null;
  /** 'ok', 'bad', or '' when tcpdump said nothing about it */
  cksum: string;
}

function parseTcpdump(text: string): Seen[] {
  const recs: string[] = [];
  for (const line of text.split('\n')) {
    if (/^\d\d:\d\d:\d\d\./.test(line)) recs.push(line);
    else if (recs.length && /^\s/.test(line)) recs[recs.length - 1] += ' ' + line.trim();
  }
  const out: Seen[] = [];
  for (const r of recs) {
    const v6 = / IP6 /.test(r);
    const ttl = Number((v6 ? /hlim (\d+)/ : /ttl (\d+)/).exec(r)?.[1] ?? -1);
    const tos = parseInt((v6 ? /class (0x[0-9a-f]+)/ : /tos (0x[0-9a-f]+)/).exec(r)?.[1] ?? '0', 16);
    const ep = /\) ([0-9a-f.:]+)\.(\d+) > ([0-9a-f.:]+)\.(\d+): (\w+)?/.exec(r);
    if (!ep) continue;
    const proto = /: Flags \[/.test(r) ? 'tcp' : / UDP|udp/.test(r) ? 'udp' : 'other';
    const syn = /Flags \[S/.test(r);
    const mss = /mss (\d+)/.exec(r);
    const cksum = /bad udp cksum|cksum 0x[0-9a-f]+ \(incorrect/.test(r) ? 'bad' : /udp sum ok|cksum 0x[0-9a-f]+ \(correct\)/.test(r) ? 'ok' : '';
    out.push({ v6, ttl, tos, proto, sport: Number(ep[2]), dport: Number(ep[4]), dst: ep[3], syn, mss: mss ? Number(mss[1]) : null, cksum });
  }
  return out;
}

/** What the comparison looks at, per connection or datagram port: the distinct field sets seen. */
function summary(seen: Seen[]): Record<string, string[]> {
  const by: Record<string, Set<string>> = {};
  const add = (k: string, v: string) => (by[k] ??= new Set()).add(v);
  for (const p of seen) {
    const fam = p.v6 ? '6' : '4';
    const port = p.dport >= 7100 && p.dport < 7400 ? p.dport : p.sport >= 7100 && p.sport < 7400 ? -p.sport : 0;
    if (port === 0) continue;
    const k = `${fam} ${p.proto} ${port > 0 ? `to ${port}` : `from ${-port}`}`;
    add(k, `ttl ${p.ttl} tos 0x${p.tos.toString(16)}`);
    if (p.syn) add(k, `syn mss ${p.mss}`);
    if (port === 7104 || port === 7105) add(k, `cksum ${p.cksum}`);
    if (port === 7200 || port === 7201 || port === 7300 || port === 7301) add(k, `dst ${p.dst}`);
  }
  return Object.fromEntries(
    Object.entries(by)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => [k, [...v].sort()]),
  );
}

describe('mangle differential: TCPMSS, TTL/HL, DSCP, CONNMARK, CHECKSUM, OUTPUT marks and policy routing in the kernel vs nfqwall run', { skip }, () => {
  let kLab: Lab;
  let nLab: Lab;
  let nfq: ChildProcess | undefined;
  let nfqLog: ReturnType<typeof watch>;
  const control = `/tmp/nfqw-mgl-${process.pid}.sock`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-mgl-'));
  const rulesFile = path.join(dir, 'mangle.rules');
  fs.writeFileSync(rulesFile, RULES);
  const results = new Map<Lab, { srv: Seen[]; cli: Seen[] }>();
  const nfqwall = (args: string[]) =>
    nLab.exec('gw', ['node', NFQWALL, ...args, '--control', control], { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } });
  const conntrack = (lab: Lab, args: string[]) => (lab === nLab ? nfqwall(['conntrack', ...args]) : lab.exec('gw', ['conntrack', ...args]));

  before(async () => {
    [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'mgk' }), Lab.create({ prefix: 'mgn' })]);
    for (const lab of [kLab, nLab]) {
      await lab.exec('srv', ['ip', 'addr', 'add', `${STEERED}/32`, 'dev', 's0'], { check: true });
      await lab.exec('gw', ['ip', 'route', 'add', `${STEERED}/32`, 'via', A.cli4, 'dev', 'g0'], { check: true });
      await lab.exec('gw', ['ip', 'route', 'add', `${STEERED}/32`, 'via', A.srv4, 'dev', 'g1', 'table', '100'], { check: true });
      // masked: while a packet is between nfqwall's two crossings its mark also holds the crossing bits
      // (CROSS_MASK, 0x30000000), which a policy routing rule must not test (README); the same rule in both labs
      await lab.exec('gw', ['ip', 'rule', 'add', 'fwmark', '0x7/0xfffffff', 'lookup', '100'], { check: true });
      // one that does (a bare fwmark is a full mask) and that no packet here carries: nfqwall must name it
      await lab.exec('gw', ['ip', 'rule', 'add', 'fwmark', '0x99', 'lookup', '100'], { check: true });
      for (const port of [7100, 7106, 7107, 7108]) {
        lab.spawn('srv', ['socat', '-u', `TCP4-LISTEN:${port},fork,reuseaddr`, 'OPEN:/dev/null']);
        lab.spawn('srv', ['socat', '-u', `TCP6-LISTEN:${port},fork,reuseaddr,ipv6only=1`, 'OPEN:/dev/null']);
      }
    }
    await kLab.exec('gw', ['iptables-restore', '-w'], { input: RULES, check: true });
    await kLab.exec('gw', ['ip6tables-restore', '-w'], { input: RULES, check: true });
    nfq = nLab.spawn('gw', ['node', NFQWALL, 'run', '--rules', rulesFile, '--queue', '6', '--iptables', 'auto', '--control', control], {
      cwd: ROOT,
      env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
    });
    nfqLog = watch(nfq);
    await nfqLog.waitFor(/"portids"/, 'err');
    for (const lab of [kLab, nLab]) {
      for (let i = 0; ; i++) {
        const r = await lab.exec('srv', ['ss', '-Hltn', 'sport = :7108']);
        if (r.stdout.trim().split('\n').length >= 2) break;
        if (i > 200) throw new Error('socat did not start');
        await sleep(25);
      }
      await warmNeighbours(lab);
      await lab.exec('gw', ['ping', '-c', '1', '-W', '2', A.cli4]);
      await lab.exec('gw', ['ping', '-c', '1', '-W', '2', A.srv4]);
    }
  });

  after(async () => {
    if (nfq && nLab) await nLab.kill(nfq);
    await Promise.all([kLab?.destroy(), nLab?.destroy()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const udp = (lab: Lab, ns: 'cli' | 'srv' | 'gw', dst: string, port: number) =>
    lab.exec(
      ns,
      [
        '/usr/bin/python3',
        '-c',
        `import socket\ns=socket.socket(socket.AF_INET6 if ':' in '${dst}' else socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x'*40,('${dst}',${port}))`,
      ],
      { check: true },
    );
  const tcp = async (lab: Lab, dst: string, port: number) => {
    const addr = dst.includes(':') ? `TCP6:[${dst}]:${port}` : `TCP4:${dst}:${port}`;
    const r = await lab.exec('cli', ['sh', '-c', `echo x | socat -u - ${addr},connect-timeout=5`], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `connect ${dst}:${port}: ${r.stderr}`);
  };

  /** tcpdump -vv of what arrives in ns on dev, until the sentinel datagram to port 7999 is in it. */
  async function capture(lab: Lab, ns: 'cli' | 'srv', dev: string, traffic: () => Promise<void>, sentinel: () => Promise<unknown>): Promise<Seen[]> {
    const child = lab.spawn(ns, ['tcpdump', '-i', dev, '-Q', 'in', '-n', '-vv', '-l', 'ip or ip6']);
    const w = watch(child);
    await w.waitFor(/listening on/, 'err');
    await traffic();
    for (let i = 0; i < 100 && !/\.7999: /.test(w.out); i++) {
      await sentinel();
      for (let j = 0; j < 25 && !/\.7999: /.test(w.out); j++) await sleep(20);
    }
    await lab.kill(child, 'SIGINT');
    assert.match(w.out, /\.7999: /, `the sentinel never reached ${ns}: ${w.err}`);
    return parseTcpdump(w.out);
  }

  test('the same traffic through both gateways', T, async () => {
    for (const lab of [kLab, nLab]) {
      let srvSeen: Seen[] = [];
      const cliSeen = await capture(
        lab,
        'cli',
        'c0',
        async () => {
          srvSeen = await capture(
            lab,
            'srv',
            's0',
            async () => {
              for (const dst of [A.srv4, A.srv6]) for (const port of [7100, 7106, 7107, 7108]) await tcp(lab, dst, port);
              for (const dst of [A.srv4, A.srv6]) for (const port of [7101, 7102, 7103, 7104, 7105]) await udp(lab, 'cli', dst, port);
              await udp(lab, 'gw', STEERED, 7200);
              await udp(lab, 'gw', STEERED, 7201);
              for (const port of [7300, 7301]) await udp(lab, 'cli', STEERED, port);
              await udp(lab, 'cli', A.srv4, 7302);
            },
            () => udp(lab, 'cli', A.srv4, 7999),
          );
        },
        () => udp(lab, 'srv', A.cli4, 7999),
      );
      results.set(lab, { srv: srvSeen, cli: cliSeen });
    }
  });

  test('what arrives at srv and at cli is the same, and is what the rules say', T, () => {
    const k = results.get(kLab)!;
    const n = results.get(nLab)!;
    const ks = summary(k.srv);
    const ns = summary(n.srv);
    const kc = summary(k.cli);
    const nc = summary(n.cli);
    // the kernel is the oracle; the expectations below make sure the comparison is not vacuous
    assert.deepEqual(ks['4 tcp to 7100'], ['syn mss 1300', 'ttl 63 tos 0x0']);
    assert.deepEqual(ks['6 tcp to 7100'], ['syn mss 1300', 'ttl 63 tos 0x0']);
    assert.deepEqual(ks['4 tcp to 7107'], ['syn mss 1460', 'ttl 63 tos 0x0']);
    assert.deepEqual(ks['4 tcp to 7108'], ['syn mss 1460', 'ttl 63 tos 0x0'], 'never raised');
    assert.deepEqual(ks['4 tcp to 7106'], ['syn mss 1460', 'ttl 63 tos 0x14']);
    assert.deepEqual(ks['6 tcp to 7106'], ['syn mss 1440', 'ttl 63 tos 0x14']);
    assert.deepEqual(kc['4 tcp from 7106'], ['syn mss 1460', 'ttl 63 tos 0x14'], 'replies: the restored mark');
    assert.deepEqual(kc['4 tcp from 7107'], ['syn mss 1460', 'ttl 63 tos 0x0']);
    assert.deepEqual(ks['4 udp to 7101'], ['ttl 17 tos 0x0']);
    assert.deepEqual(ks['4 udp to 7102'], ['ttl 58 tos 0x0']);
    assert.deepEqual(ks['6 udp to 7102'], ['ttl 58 tos 0x0']);
    assert.deepEqual(ks['4 udp to 7103'], ['ttl 63 tos 0x88']);
    assert.deepEqual(ks['6 udp to 7103'], ['ttl 63 tos 0x88']);
    assert.deepEqual(ks['4 udp to 7104'], ['cksum ok', 'ttl 63 tos 0x0']);
    assert.deepEqual(ks['4 udp to 7105'], ['cksum bad', 'ttl 63 tos 0x0'], 'veth passes the partial checksum');
    assert.deepEqual(ks['4 udp to 7200'], ['dst 198.19.9.9', 'ttl 64 tos 0x0'], 'the marked datagram was routed by table 100');
    assert.equal(ks['4 udp to 7201'], undefined);
    assert.deepEqual(kc['4 udp to 7201'], ['dst 198.19.9.9', 'ttl 64 tos 0x0'], 'the unmarked one by the main table');
    assert.equal(kc['4 udp to 7200'], undefined);
    // mangle PREROUTING: the mark set there chose the route (table 100 to srv; unmarked: the main
    // table's route back out of cli's link), and its TTL test saw the TTL before ip_forward's decrement
    assert.deepEqual(ks['4 udp to 7300'], ['dst 198.19.9.9', 'ttl 63 tos 0x0']);
    assert.equal(kc['4 udp to 7300'], undefined);
    assert.deepEqual(kc['4 udp to 7301'], ['dst 198.19.9.9', 'ttl 63 tos 0x0']);
    assert.equal(ks['4 udp to 7301'], undefined);
    assert.deepEqual(ks['4 udp to 7302'], ['ttl 29 tos 0x0']);
    assert.deepEqual(ns, ks, 'at srv');
    assert.deepEqual(nc, kc, 'at cli');
  });

  test('nfqwall warns about the policy routing rule that tests its crossing bits, and only that one', T, () => {
    const warn = nfqLog.err.split('\n').find((l) => l.includes('policy routing rules test the mark bits'));
    assert.ok(warn, nfqLog.err);
    assert.deepEqual((JSON.parse(warn) as { rules: string[] }).rules, ['ip -4 rule 32764: fwmark 0x99 lookup 100']);
  });

  test('connection marks: mark= in conntrack -L, -L -m MARK[/MASK], -D -m MARK, the same on both gateways', T, async () => {
    const marks = async (lab: Lab, args: string[]) => {
      const r = await conntrack(lab, ['-L', '-p', 'tcp', ...args]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout
        .split('\n')
        .filter((l) => / dport=71\d\d /.test(l))
        .map((l) => `${/ dport=(\d+) /.exec(l)![1]} ${l.includes('src=2001') ? '6' : '4'} ${/ mark=(\d+) /.exec(l)?.[1]}`)
        .sort();
    };
    for (const args of [[], ['-m', '5'], ['-m', '0x4/0x4'], ['-m', '0x1/0x2'], ['-m', '0/0xff']]) {
      const k = await marks(kLab, args);
      assert.deepEqual(await marks(nLab, args), k, `conntrack -L ${args.join(' ')}`);
      if (args.length === 0) assert.ok(k.includes('7106 4 5') && k.includes('7106 6 5') && k.includes('7107 4 0'), k.join('\n'));
    }
    for (const lab of [kLab, nLab]) {
      const d = await conntrack(lab, ['-D', '-p', 'tcp', '-m', '5']);
      assert.equal(d.code, 0, d.stderr);
    }
    assert.deepEqual(await marks(nLab, ['-m', '5']), []);
    assert.deepEqual(await marks(nLab, []), await marks(kLab, []), 'after -D -m 5');
  });
});
