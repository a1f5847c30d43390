/**
 * nftables differential with the rule sets the firewall tools write (issue #20 point 4):
 * test/e2e/nft/firewalld.nft (firewalld 1.3's chains for zones internal/public and a lan-wan
 * policy with the ftp helper) and test/e2e/nft/fw4.nft (OpenWrt firewall4's for zones lan/wan,
 * masquerading IPv4 to wan: the NAT statement onto MASQUERADE, both queue crossings),
 * each through the real `nft -j list ruleset` in a throwaway namespace, loaded by `nft -j -f` in a
 * kernel gateway and by `nfqwall run` in a second lab's. The same client steps through both (TCP
 * and UDP to allowed, rejected and dropped ports, ping, an FTP download in passive mode over IPv4
 * and IPv6 whose data connection the helper makes RELATED): the same outcome for each step and
 * the same counter for every rule with one in the chains only forwarded packets reach. Steps the rules drop wait 0.5 s, less than the
 * first SYN retransmission. Needs root, nft, vsftpd and curl; the labs and namespaces are removed
 * in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { disableOffload, NFQWALL, ROOT, sleep, warmNeighbours, watch } from '../helpers/kernel';
import { nftJson, ruleCounters, tcpOutcome, udpEcho, udpProbe } from '../helpers/nft-diff';
import { writeVsftpdConf } from '../helpers/vsftpd';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const tools = ['/usr/sbin/nft', '/usr/sbin/vsftpd', '/usr/bin/curl'].filter((f) => !fs.existsSync(f));
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : tools.length ? `not installed: ${tools.join(', ')}` : false;
if (skip) process.stderr.write(`kernel-diff-nft-tools skipped: ${skip}\n`);

const T = { timeout: 240_000 };
const ENV = { ...process.env, NFQWALL_FROM_SOURCE: '1' };
const TCP_PORTS = [8080, 23, 9050, 7000];
/** 5002: echo, 5003: nothing, 5004: answers with the source address it saw (masquerading shows) */
const UDP_PORTS = [5002, 5003, 5004];

interface Case {
  name: string;
  file: string;
  /** client steps the kernel drops (they wait less than a retransmission) */
  dropped: Set<string>;
  /** what the kernel must do, so that the comparison covers each path */
  expect: Record<string, string>;
  /**
   * the chains whose counters are compared: those only forwarded packets reach (the gateway's
   * own traffic, IPv6 neighbour discovery and MLD, comes and goes with timing)
   */
  counted: string[];
  /** steps left out, with why */
  without?: Record<string, string>;
  /** the FTP control connections carry the helper ct helper set gave them (conntrack -L of both) */
  helper?: boolean;
}

const CASES: Case[] = [
  {
    name: 'firewalld',
    file: 'firewalld.nft',
    dropped: new Set(),
    counted: [],
    helper: true,
    expect: {
      'tcp4 8080': 'ok',
      'tcp6 8080': 'ok',
      'tcp4 23': 'unreachable',
      'tcp6 9050': 'unreachable',
      'udp4 5002': 'ok',
      'udp6 5003': 'unreachable',
      ping4: 'ok',
      ping6: 'ok',
      'ftp4 PASV': 'ok',
      'ftp6 EPSV': 'ok',
      'udp4 5004': 'unreachable',
    },
  },
  {
    name: 'fw4',
    file: 'fw4.nft',
    dropped: new Set(['tcp4 9050', 'tcp6 9050']),
    counted: ['forward_lan', 'forward_wan', 'reject_to_wan'],
    helper: true,
    without: {
      // the port unreachable srv sends back to the masqueraded address: nfqwall's NAT core does not
      // translate ICMP errors back yet (issue #16, natx), so the client would not see it
      'udp4 5003': 'ICMP errors of NAT flows are not translated back yet',
    },
    expect: {
      'tcp4 8080': 'ok',
      'tcp6 7000': 'ok',
      'tcp4 23': 'refused',
      'tcp6 23': 'refused',
      'tcp4 9050': 'failed',
      'udp6 5003': 'refused',
      'udp4 5004': 'ok ::ffff:198.19.2.254',
      'udp6 5004': `ok ${A.cli6}`,
      ping6: 'ok',
      'ftp4 PASV': 'ok',
      'ftp6 EPSV': 'ok',
    },
  },
];

for (const c of CASES) {
  describe(`nftables differential, a ${c.name} rule set: kernel vs nfqwall run`, { skip }, () => {
    let kLab: Lab;
    let nLab: Lab;
    let nfq: ChildProcess | undefined;
    let dir = '';
    const control = `/tmp/nfqw-nftdiff-${c.name}-${process.pid}.sock`;

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `nfqw-nft-${c.name}-`));
      fs.chmodSync(dir, 0o755);
      const jsonFile = path.join(dir, 'gw.json');
      fs.writeFileSync(jsonFile, nftJson(path.join(ROOT, 'test', 'e2e', 'nft', c.file), c.name));
      const root = path.join(dir, 'ftp');
      fs.mkdirSync(path.join(root, 'pub'), { recursive: true });
      fs.chmodSync(root, 0o755);
      fs.writeFileSync(path.join(root, 'pub', 'f.bin'), randomBytes(20_000));
      fs.chmodSync(path.join(root, 'pub', 'f.bin'), 0o644);
      const conf = writeVsftpdConf(dir, root, ['connect_timeout=5', 'data_connection_timeout=10', 'dirmessage_enable=NO']);
      [kLab, nLab] = await Promise.all([Lab.create({ prefix: `n${c.name[0]}k` }), Lab.create({ prefix: `n${c.name[0]}n` })]);
      for (const lab of [kLab, nLab]) {
        await disableOffload(lab);
        for (const p of TCP_PORTS) lab.spawn('srv', ['socat', '-u', `TCP6-LISTEN:${p},fork,reuseaddr,ipv6only=0`, 'OPEN:/dev/null']);
        lab.spawn('srv', ['/usr/bin/python3', '-c', udpEcho(5002)]);
        lab.spawn('srv', ['/usr/bin/python3', '-c', udpEcho(5004, true)]);
        lab.spawn('srv', ['/usr/sbin/vsftpd', conf]);
      }
      await kLab.exec('gw', ['nft', '-j', '-f', jsonFile], { check: true });
      const check = await nLab.exec('gw', ['node', NFQWALL, 'check', jsonFile], { cwd: ROOT, env: ENV });
      assert.equal(check.code, 0, `nfqwall check: ${check.stdout}${check.stderr}`);
      nfq = nLab.spawn('gw', ['node', NFQWALL, 'run', '--rules', jsonFile, '--queue', '3', '--iptables', 'auto', '--control', control], {
        cwd: ROOT,
        env: ENV,
      });
      await watch(nfq).waitFor(/"portids"/, 'err');
      for (const lab of [kLab, nLab]) {
        for (let i = 0; ; i++) {
          const t = await lab.exec('srv', ['ss', '-Hltn', 'sport = :21 or sport = :7000']);
          const u = await lab.exec('srv', ['ss', '-Hlun', 'sport = :5002 or sport = :5004']);
          if (t.stdout.trim().split('\n').length >= 2 && u.stdout.trim().split('\n').length >= 2) break;
          if (i > 200) throw new Error('servers did not start');
          await sleep(25);
        }
      }
    });

    after(async () => {
      if (nfq && nLab) await nLab.kill(nfq);
      await Promise.all([kLab?.destroy(), nLab?.destroy()]);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    async function traffic(lab: Lab): Promise<Record<string, string>> {
      const res: Record<string, string> = {};
      for (const fam of [4, 6] as const) {
        const host = fam === 6 ? A.srv6 : A.srv4;
        for (const p of TCP_PORTS) {
          const name = `tcp${fam} ${p}`;
          const to = fam === 6 ? `TCP6:[${host}]:${p}` : `TCP4:${host}:${p}`;
          const wait = c.dropped.has(name) ? 0.5 : 3;
          const r = await lab.exec('cli', ['sh', '-c', `echo x | socat -u - ${to},connect-timeout=${wait}`], { timeoutMs: 30_000 });
          res[name] = tcpOutcome(r.code, r.stderr);
        }
        for (const p of UDP_PORTS) {
          if (c.without?.[`udp${fam} ${p}`]) continue;
          const r = await lab.exec('cli', ['/usr/bin/python3', '-c', udpProbe(fam, p)], { timeoutMs: 30_000 });
          res[`udp${fam} ${p}`] = r.code === 0 ? r.stdout.trim() : `error: ${r.stderr}`;
        }
        const ping = await lab.exec('cli', ['ping', `-${fam}`, '-c', '1', '-W', '2', host]);
        res[`ping${fam}`] = ping.code === 0 ? 'ok' : 'failed';
        // passive mode: the data connection goes to a port the rules only let through as RELATED (firewalld)
        const url = fam === 6 ? `ftp://[${host}]/pub/f.bin` : `ftp://${host}/pub/f.bin`;
        const ftp = await lab.exec('cli', [
          'curl',
          '-sS',
          '--connect-timeout',
          '3',
          '--max-time',
          '15',
          ...(fam === 4 ? ['--disable-epsv'] : []),
          url,
          '-o',
          '/dev/null',
        ]);
        res[`ftp${fam} ${fam === 4 ? 'PASV' : 'EPSV'}`] = ftp.code === 0 ? 'ok' : `curl ${ftp.code}`;
      }
      return res;
    }

    test('the same traffic gets the same fate, every rule counter the same', T, async (t) => {
      await Promise.all([warmNeighbours(kLab), warmNeighbours(nLab)]);
      const [k, n] = await Promise.all([traffic(kLab), traffic(nLab)]);
      t.diagnostic(JSON.stringify(k));
      assert.deepEqual(n, k, 'client-side outcomes differ (nfqwall vs kernel)');
      for (const [step, want] of Object.entries(c.expect)) assert.equal(k[step], want, `kernel: ${step}`);
      const kj = (await kLab.exec('gw', ['nft', '-j', 'list', 'ruleset'], { check: true })).stdout;
      const nl = await nLab.exec('gw', ['node', NFQWALL, 'rules', '-L', '-v', '--control', control], { cwd: ROOT, env: ENV });
      assert.equal(nl.code, 0, `nfqwall rules -L -v: ${nl.stderr}`);
      const forwarded = (all: Record<string, number>) => Object.fromEntries(Object.entries(all).filter(([k]) => c.counted.includes(k.split(' ')[2])));
      const kc = forwarded(ruleCounters(kj));
      t.diagnostic(JSON.stringify(kc));
      assert.deepEqual(forwarded(ruleCounters(nl.stdout)), kc, 'per-rule counters differ (nfqwall vs kernel)');
      if (c.counted.length)
        assert.ok(
          Object.values(kc).some((n) => n > 0),
          'some compared counter counted',
        );
      if (c.helper) {
        const [kl, nl2] = await Promise.all([
          kLab.exec('gw', ['conntrack', '-L', '-p', 'tcp', '--dport', '21']),
          nLab.exec('gw', ['node', NFQWALL, 'conntrack', '-L', '-p', 'tcp', '--dport', '21', '--control', control], { cwd: ROOT, env: ENV }),
        ]);
        for (const [who, out] of [
          ['kernel', kl.stdout],
          ['nfqwall', nl2.stdout],
        ])
          assert.equal(
            out.split('\n').filter((l) => /dport=21 .*helper=ftp/.test(l)).length,
            2,
            `${who}: both control connections have the ftp helper:\n${out}`,
          );
      }
    });
  });
}
