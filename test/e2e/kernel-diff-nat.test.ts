/**
 * NAT differential (issue #16): the same rule file through the kernel's nat table in one lab's
 * gateway (iptables-restore / ip6tables-restore, the file split by family) and through
 * `nfqwall run --iptables auto` in another's; the same traffic; compared: what the far side saw
 * (address and port of every connection and datagram), what arrived back, and the NATed
 * entries' reply tuples in `conntrack -L` (the kernel's conntrack tool vs nfqwall's listing).
 * The server has no route back to the client's subnet, so only NATed traffic can work.
 *  A. MASQUERADE (IPv4 and IPv6) and SNAT to a 4-port range: the gateway's address, the client's
 *     port kept when free, another port for a second client on the same port, 6 concurrent UDP
 *     flows into the 4 ports (4 answered, 2 dropped and counted, the first flow unharmed).
 *     Only replies to the gateway cross at pre-routing (addrtype LOCAL).
 *  B. DNAT port forwarding from outside (the inside server sees the real client, the filter
 *     accepts the post-DNAT address), REDIRECT to a port on the gateway, MASQUERADE: every packet
 *     crosses at pre-routing.
 *  C. FTP through MASQUERADE with the ftp helper (raw CT --helper ftp): vsftpd in srv (which
 *     refuses a PORT that does not name the control connection's peer), curl in cli, passive
 *     (PASV/227, EPSV/229) and active (PORT, EPRT): the file arrives intact through both gateways.
 * Needs root. Both labs are destroyed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { NFQWALL, ROOT, parseCtList, sleep, warmNeighbours, watch } from '../helpers/kernel';
import { createHash, randomBytes } from 'node:crypto';
import { writeVsftpdConf } from '../helpers/vsftpd';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : false;
if (skip) process.stderr.write(`kernel-diff-nat skipped: ${skip}\n`);

const PEER = path.join(ROOT, 'test', 'helpers', 'nat_peer.py');
const PY = '/usr/bin/python3';
const T = { timeout: 180_000 };
const CLI2 = '198.18.1.77';

const HEAD = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];
const FILTER = [
  '*filter',
  ':INPUT ACCEPT [0:0]',
  ':FORWARD DROP [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
  '-A FORWARD -i g0 -o g1 -j ACCEPT',
];

const RULES_A = [
  ...HEAD,
  `-A POSTROUTING -o g1 -p udp --dport 7000 -j SNAT --to-source ${A.gwSrv4}:20000-20003`,
  '-A POSTROUTING -o g1 -j MASQUERADE',
  'COMMIT',
  ...FILTER,
  'COMMIT',
  '',
].join('\n');

const RULES_B = [
  ...HEAD,
  `-A PREROUTING -i g1 -p tcp --dport 2222 -j DNAT --to-destination ${A.cli4}:8080`,
  '-A PREROUTING -i g0 -p tcp --dport 8089 -j REDIRECT --to-ports 3128',
  '-A POSTROUTING -o g1 -j MASQUERADE',
  'COMMIT',
  ...FILTER,
  `-A FORWARD -d ${A.cli4} -p tcp --dport 8080 -j ACCEPT`,
  'COMMIT',
  '',
].join('\n');

const RULES_C = [
  '*raw',
  ':PREROUTING ACCEPT [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  '-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp',
  'COMMIT',
  ...HEAD,
  '-A POSTROUTING -o g1 -j MASQUERADE',
  'COMMIT',
  ...FILTER,
  'COMMIT',
  '',
].join('\n');

/** The v4 and v6 halves of a rule file: a rule with an IPv4 literal is IPv4 only. */
function split(text: string): { v4: string; v6: string } {
  const v6 = text
    .split('\n')
    .filter((l) => !(l.startsWith('-A') && /\d+\.\d+\.\d+\.\d+/.test(l)))
    .join('\n');
  return { v4: text, v6 };
}

async function waitReady(child: ChildProcess): Promise<void> {
  await watch(child).waitFor(/ready/, 'out');
}

describe('NAT differential: the kernel nat table vs nfqwall', { skip }, () => {
  let kLab: Lab;
  let nLab: Lab;
  let nfq: ChildProcess | undefined;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-natdiff-'));
  const control = path.join(tmp, 'control.sock');
  const metricsPort = 9400 + (process.pid % 500);

  before(async () => {
    [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'ndk' }), Lab.create({ prefix: 'ndn' })]);
    for (const lab of [kLab, nLab]) {
      await lab.exec('cli', ['ip', 'addr', 'add', `${CLI2}/24`, 'dev', 'c0'], { check: true });
      // the server reaches only its own subnet: what comes back must have been NATed
      await lab.exec('srv', ['ip', 'route', 'del', 'default'], { check: true });
      await lab.exec('srv', ['ip', '-6', 'route', 'del', 'default'], { check: true });
      const peers = [
        lab.spawn('srv', [PY, PEER, 'serve', A.srv4, A.srv6, '8080', '7000']),
        lab.spawn('cli', [PY, PEER, 'serve', A.cli4, '-', '8080', '7001']),
        lab.spawn('gw', [PY, PEER, 'serve', '0.0.0.0', '-', '3128', '7002']),
      ];
      await Promise.all(peers.map(waitReady));
    }
  });

  after(async () => {
    if (nfq && nLab) await nLab.kill(nfq);
    await Promise.all([kLab?.destroy(), nLab?.destroy()]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function load(rules: string): Promise<void> {
    const s = split(rules);
    await kLab.exec('gw', ['iptables-restore', '-w'], { input: s.v4, check: true });
    await kLab.exec('gw', ['ip6tables-restore', '-w'], { input: s.v6, check: true });
    await kLab.exec('gw', ['conntrack', '-F']);
    if (nfq) await nLab.kill(nfq);
    const file = path.join(tmp, 'nat.rules');
    fs.writeFileSync(file, rules);
    nfq = nLab.spawn(
      'gw',
      ['node', NFQWALL, 'run', '--rules', file, '--queue', '5', '--iptables', 'auto', '--control', control, '--metrics', `127.0.0.1:${metricsPort}`],
      { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } },
    );
    await watch(nfq).waitFor(/"portids"/, 'err', 120_000);
    await Promise.all([warmNeighbours(kLab), warmNeighbours(nLab)]);
  }

  const peer = async (lab: Lab, ns: 'cli' | 'srv', args: string[]): Promise<string[]> => {
    const r = await lab.exec(ns, [PY, PEER, ...args], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n');
  };

  /** The reply tuple of the listed entry whose original tuple is from src:sport. */
  function replyOf(listing: string, src: string, sport: number): string | undefined {
    const e = parseCtList(listing).find((x) => x.orig.src === src && x.orig.l4.startsWith(`sport=${sport} `));
    return e ? `${e.reply.src} ${e.reply.dst} ${e.reply.l4}` : undefined;
  }

  async function stat(name: string): Promise<number> {
    const r = await nLab.exec('gw', ['curl', '-sf', `http://127.0.0.1:${metricsPort}/metrics`], { check: true });
    const m = new RegExp(`^nfqwall_nf_conntrack_stat_${name}(?:_total)?(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(r.stdout);
    assert.ok(m, `metric ${name} missing`);
    return Number(m[1]);
  }

  test('A: MASQUERADE (IPv4, IPv6) and SNAT to a port range, exhaustion under new flows', T, async (t) => {
    await load(RULES_A);
    const run = async (lab: Lab) => {
      const first = (await peer(lab, 'cli', ['tcp', A.srv4, '8080', A.cli4, '40000']))[0];
      const second = (await peer(lab, 'cli', ['tcp', A.srv4, '8080', CLI2, '40000']))[0];
      const v6 = (await peer(lab, 'cli', ['tcp', A.srv6, '8080', A.cli6, '40001']))[0];
      const udp = await peer(lab, 'cli', ['udp', A.srv4, '7000', '6']);
      const list = (
        await lab.exec('gw', lab === kLab ? ['conntrack', '-L'] : ['node', NFQWALL, 'conntrack', '-L', '--control', control], {
          cwd: ROOT,
          env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
        })
      ).stdout;
      return { first, second, v6, udp, list };
    };
    const [k, n] = [await run(kLab), await run(nLab)];
    t.diagnostic(`kernel: ${JSON.stringify({ ...k, list: undefined })}`);
    t.diagnostic(`nfqwall: ${JSON.stringify({ ...n, list: undefined })}`);
    for (const [who, r] of [
      ['kernel', k],
      ['nfqwall', n],
    ] as const) {
      assert.equal(r.first, `${A.gwSrv4} 40000`, `${who}: the far side sees the gateway, the client's port kept`);
      const m = /^(\S+) (\d+)$/.exec(r.second);
      assert.ok(
        m && m[1] === A.gwSrv4 && Number(m[2]) !== 40000 && Number(m[2]) >= 1024,
        `${who}: a second client on the same port gets another port (${r.second})`,
      );
      assert.equal(r.v6, `${A.gwSrv6} 40001`, `${who}: IPv6 MASQUERADE`);
      const answered = r.udp.slice(0, 6).filter((l) => l !== 'none');
      assert.equal(answered.length, 4, `${who}: 4 of 6 flows fit the 4 ports: ${r.udp.join(', ')}`);
      assert.deepEqual(answered.map((l) => l.split(' ')[1]).sort(), ['20000', '20001', '20002', '20003'], `${who}: distinct in-range ports`);
      assert.ok(answered.every((l) => l.startsWith(`${A.gwSrv4} `)));
      assert.equal(r.udp[6], r.udp[0], `${who}: the first flow is unharmed after the exhaustion`);
      assert.equal(
        replyOf(r.list, A.cli4, 40000),
        `${A.srv4} ${A.gwSrv4} sport=8080 dport=40000`,
        `${who}: conntrack -L shows the real reply tuple\n${r.list}`,
      );
    }
    assert.ok((await stat('nat_drop')) >= 2, 'the flows that found no port are counted');
  });

  test('B: DNAT port forwarding from outside, REDIRECT to the gateway, MASQUERADE', T, async (t) => {
    await load(RULES_B);
    const run = async (lab: Lab) => ({
      dnat: (await peer(lab, 'srv', ['tcp', A.gwSrv4, '2222', A.srv4, '41000']))[0],
      redirect: (await peer(lab, 'cli', ['tcp', A.srv4, '8089', A.cli4, '41001']))[0],
      masq: (await peer(lab, 'cli', ['tcp', A.srv4, '8080', A.cli4, '41002']))[0],
    });
    const [k, n] = [await run(kLab), await run(nLab)];
    t.diagnostic(`kernel: ${JSON.stringify(k)} nfqwall: ${JSON.stringify(n)}`);
    assert.deepEqual(n, k);
    assert.equal(k.dnat, `${A.srv4} 41000`, 'the inside server sees the real client');
    assert.equal(k.redirect, `${A.cli4} 41001`, 'the gateway port answered the redirected connection');
    assert.equal(k.masq, `${A.gwSrv4} 41002`);
  });
  test('C: FTP through MASQUERADE, passive and active: the file arrives through both gateways', T, async (t) => {
    if (!fs.existsSync('/usr/sbin/vsftpd') || !fs.existsSync('/usr/bin/curl')) return t.skip('vsftpd/curl not installed');
    const root = path.join(tmp, 'ftproot');
    fs.mkdirSync(path.join(root, 'pub'), { recursive: true, mode: 0o755 });
    fs.chmodSync(root, 0o755);
    const data = randomBytes(200_000);
    fs.writeFileSync(path.join(root, 'pub', 'down.bin'), data);
    fs.chmodSync(path.join(root, 'pub', 'down.bin'), 0o644);
    const conf = writeVsftpdConf(tmp, root, ['port_enable=YES', 'connect_timeout=5', 'data_connection_timeout=10', 'dirmessage_enable=NO']);
    await load(RULES_C);
    const servers = [kLab.spawn('srv', ['/usr/sbin/vsftpd', conf]), nLab.spawn('srv', ['/usr/sbin/vsftpd', conf])];
    try {
      for (const lab of [kLab, nLab]) {
        for (let i = 0; !(await lab.exec('srv', ['ss', '-Hltn', 'sport = :21'])).stdout.trim(); i++) {
          if (i > 200) throw new Error('vsftpd did not start listening');
          await sleep(50);
        }
      }
      const want = createHash('sha256').update(data).digest('hex');
      const modes: [string, string[]][] = [
        ['PASV', ['--disable-epsv']],
        ['EPSV', []],
        ['PORT', ['-P', '-', '--disable-eprt']],
        ['EPRT', ['-P', '-']],
      ];
      const run = async (lab: Lab) => {
        const out: Record<string, string> = {};
        for (const [name, args] of modes) {
          const file = path.join(tmp, `down-${lab === kLab ? 'k' : 'n'}-${name}.bin`);
          const r = await lab.exec('cli', ['curl', '-sS', '--connect-timeout', '5', '--max-time', '25', ...args, `ftp://${A.srv4}/pub/down.bin`, '-o', file]);
          const got = fs.existsSync(file) ? createHash('sha256').update(fs.readFileSync(file)).digest('hex') : '';
          out[name] = r.code === 0 && got === want ? 'intact' : `failed (curl ${r.code}: ${r.stderr.trim()})`;
        }
        return out;
      };
      const [k, n] = [await run(kLab), await run(nLab)];
      t.diagnostic(`kernel: ${JSON.stringify(k)} nfqwall: ${JSON.stringify(n)}`);
      assert.deepEqual(k, { PASV: 'intact', EPSV: 'intact', PORT: 'intact', EPRT: 'intact' }, 'the kernel gateway');
      assert.deepEqual(n, k, 'nfqwall as the kernel');
    } finally {
      await Promise.all([kLab.kill(servers[0]), nLab.kill(servers[1])]);
    }
  });
});
