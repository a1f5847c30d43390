/**
 * nftables differential (issue #20 point 4): test/e2e/nft/gateway.nft, written in nft syntax,
 * is turned into JSON by the real `nft -j list ruleset` in a throwaway namespace; that JSON is
 * loaded into a kernel gateway (`nft -j -f`) and run by `nfqwall run --rules FILE.json` in a
 * second lab's gateway (its own namespace: nft and iptables-nft share the nf_tables backend).
 * The same scripted traffic goes through both; compared: what each client step saw (delivered,
 * refused by a TCP reset or ICMP error, or silently dropped), and the counter of every rule
 * that has one (`nft -j list ruleset` in the kernel gateway vs `nfqwall rules -L -v`). The
 * steps the rules drop wait 0.5 s, less than the first SYN retransmission, so each is one packet.
 * Then the same `nft add element` / `delete element` on a named set in both gateways (the
 * real nft, `nfqwall nft`): the same exit codes, and the same fate for the traffic after each.
 * The rule set also checks concatenated sets and maps, ip6 nexthdr, meta iif, meta mark set and
 * ct mark set (the entry's mark in conntrack -L of both), limit over. Needs root and nft. Both labs and the namespace are removed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { NFQWALL, ROOT, sleep, warmNeighbours, watch } from '../helpers/kernel';
import { nftJson, ruleCounters, tcpOutcome, udpEcho, udpProbe } from '../helpers/nft-diff';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const hasNft = fs.existsSync('/usr/sbin/nft');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : !hasNft ? 'nft not installed (Debian package nftables)' : false;
if (skip) process.stderr.write(`kernel-diff-nft skipped: ${skip}\n`);

const NFT_FILE = path.join(ROOT, 'test', 'e2e', 'nft', 'gateway.nft');
const T = { timeout: 180_000 };
const BLOCKED_SRC = '198.18.1.77';
const TCP_PORTS = [8080, 8443, 7000, 7001, 7002, 9050, 7010, 7011, 7012, 7013, 7014, 7015, 7016];
/** the TCP steps the rule set drops (asserted below from the kernel's own outcome) */
const DROPPED = new Set(['tcp4 8443', 'tcp4 9050', 'tcp6 9050', 'tcp4 7015', 'tcp6 7016', `tcp4 8080 from ${BLOCKED_SRC}`]);

describe('nftables differential: nft -j JSON in the kernel vs nfqwall run', { skip }, () => {
  let kLab: Lab;
  let nLab: Lab;
  let nfq: ChildProcess | undefined;
  let nfqOut: ReturnType<typeof watch>;
  let dir = '';
  const control = `/tmp/nfqw-nftdiff-${process.pid}.sock`;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-nft-'));
    fs.chmodSync(dir, 0o755);
    const jsonFile = path.join(dir, 'gw.json');
    fs.writeFileSync(jsonFile, nftJson(NFT_FILE, 'gw'));
    [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'ndk' }), Lab.create({ prefix: 'ndn' })]);
    for (const lab of [kLab, nLab]) {
      await lab.exec('cli', ['ip', 'addr', 'add', `${BLOCKED_SRC}/24`, 'dev', 'c0'], { check: true });
      for (const p of TCP_PORTS) lab.spawn('srv', ['socat', '-u', `TCP6-LISTEN:${p},fork,reuseaddr,ipv6only=0`, 'OPEN:/dev/null']);
      for (const p of [5001, 5002]) lab.spawn('srv', ['/usr/bin/python3', '-c', udpEcho(p)]);
    }
    await kLab.exec('gw', ['nft', '-j', '-f', jsonFile], { check: true });
    const check = await nLab.exec('gw', ['node', NFQWALL, 'check', jsonFile], { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } });
    assert.equal(check.code, 0, `nfqwall check: ${check.stdout}${check.stderr}`);
    nfq = nLab.spawn('gw', ['node', NFQWALL, 'run', '--rules', jsonFile, '--queue', '3', '--iptables', 'auto', '--control', control], {
      cwd: ROOT,
      env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
    });
    nfqOut = watch(nfq);
    await nfqOut.waitFor(/"portids"/, 'err');
    for (const lab of [kLab, nLab]) {
      for (let i = 0; ; i++) {
        const r = await lab.exec('srv', ['ss', '-Hltn', 'sport = :9050']);
        const u = await lab.exec('srv', ['ss', '-Hlun', 'sport = :5002']);
        if (r.stdout.trim() && u.stdout.trim()) break;
        if (i > 200) throw new Error('socat did not start');
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
    const tcp = async (fam: 4 | 6, port: number, bind?: string) => {
      const to = fam === 6 ? `TCP6:[${A.srv6}]:${port}` : `TCP4:${A.srv4}:${port}`;
      const name = `tcp${fam} ${port}${bind ? ` from ${bind}` : ''}`;
      const wait = DROPPED.has(name) ? 0.5 : 3;
      const r = await lab.exec('cli', ['sh', '-c', `echo x | socat -u - ${to},connect-timeout=${wait}${bind ? `,bind=${bind}` : ''}`], { timeoutMs: 30_000 });
      res[name] = tcpOutcome(r.code, r.stderr);
    };
    for (const fam of [4, 6] as const) {
      for (const p of [...TCP_PORTS, 23]) await tcp(fam, p);
      for (const p of [53, 5001, 5002]) {
        const r = await lab.exec('cli', ['/usr/bin/python3', '-c', udpProbe(fam, p)], { timeoutMs: 30_000 });
        res[`udp${fam} ${p}`] = r.code === 0 ? r.stdout.trim() : `error: ${r.stderr}`;
      }
      const ping = await lab.exec('cli', ['ping', `-${fam}`, '-c', '1', '-W', '2', fam === 6 ? A.srv6 : A.srv4]);
      res[`ping${fam}`] = ping.code === 0 ? 'ok' : 'failed';
    }
    await tcp(4, 8080, BLOCKED_SRC);
    return res;
  }

  test('the same traffic gets the same fate', T, async (t) => {
    await Promise.all([warmNeighbours(kLab), warmNeighbours(nLab)]);
    const [k, n] = await Promise.all([traffic(kLab), traffic(nLab)]);
    t.diagnostic(JSON.stringify(k));
    assert.deepEqual(n, k, 'client-side outcomes differ (nfqwall vs kernel)');
    // the ruleset does what it says in the kernel, so the comparison covers each path
    assert.equal(k['tcp4 8080'], 'ok');
    assert.equal(k['tcp4 8443'], 'failed', 'the second forward chain drops what the first accepted');
    assert.equal(k['tcp6 8443'], 'ok', 'the ip table does not see IPv6');
    assert.equal(k['tcp4 23'], 'refused');
    assert.equal(k['udp4 53'], 'refused');
    assert.equal(k['tcp4 9050'], 'failed');
    assert.equal(k['tcp4 7000'], 'unreachable', 'return, then log and reject admin-prohibited');
    assert.equal(k['tcp6 7000'], 'ok');
    assert.equal(k['udp4 5002'], 'ok');
    assert.equal(k['udp4 5001'], 'failed', 'notrack: the answer is a new connection from the server side, refused at the gateway');
    for (const d of DROPPED) assert.equal(k[d], 'failed', d);
    // concatenated set, ip6 nexthdr, iif, mark set and tested, concatenated verdict map, limit over
    assert.equal(k['tcp4 7010'], 'ok');
    assert.equal(k['tcp6 7010'], 'unreachable');
    assert.equal(k['tcp6 7011'], 'ok');
    assert.equal(k['tcp4 7011'], 'unreachable');
    assert.equal(k['tcp4 7012'], 'ok');
    assert.equal(k['tcp6 7013'], 'ok');
    assert.equal(k['tcp4 7014'], 'ok');
    assert.equal(k['tcp6 7015'], 'unreachable', 'the map holds IPv4 keys only');
    assert.equal(k['tcp4 7016'], 'ok', 'the bucket holds one packet');

    const kj = (await kLab.exec('gw', ['nft', '-j', 'list', 'ruleset'], { check: true })).stdout;
    const nl = await nLab.exec('gw', ['node', NFQWALL, 'rules', '-L', '-v', '--control', control], {
      cwd: ROOT,
      env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
    });
    assert.equal(nl.code, 0, `nfqwall rules -L -v: ${nl.stderr}`);
    const kc = ruleCounters(kj);
    t.diagnostic(JSON.stringify(kc));
    assert.deepEqual(ruleCounters(nl.stdout), kc, 'per-rule counters differ (nfqwall vs kernel)');
    assert.equal(kc['inet filter lan_to_wan #3'], 2, 'tcp 23: one SYN per family');
    // ct mark set on the 7016 connection (IPv4: the IPv6 one was dropped by limit over): the entry holds it in both
    const ct7016 = await Promise.all([
      kLab.exec('gw', ['conntrack', '-L', '-p', 'tcp', '--dport', '7016']),
      nLab.exec('gw', ['node', NFQWALL, 'conntrack', '-L', '-p', 'tcp', '--dport', '7016', '--control', control], {
        cwd: ROOT,
        env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
      }),
    ]);
    for (const [who, r] of [
      ['kernel', ct7016[0]],
      ['nfqwall', ct7016[1]],
    ] as const) {
      const lines = r.stdout.split('\n').filter((l) => l.includes('dport=7016'));
      assert.equal(lines.length, 1, `${who}: ${r.stdout}${r.stderr}`);
      assert.match(lines[0], /mark=5/, `${who}: ${lines[0]}`);
    }
  });

  test('the same nft add/delete element in both gateways: the same fate after each', T, async () => {
    const env = { ...process.env, NFQWALL_FROM_SOURCE: '1' };
    const both = async (cmd: string): Promise<[number | null, number | null]> => {
      const w = cmd.split(' ');
      const [k, n] = await Promise.all([
        kLab.exec('gw', ['nft', ...w]),
        nLab.exec('gw', ['node', NFQWALL, 'nft', ...w, '--control', control], { cwd: ROOT, env }),
      ]);
      return [k.code, n.code];
    };
    /** tcp4 8080 from BLOCKED_SRC: ok or failed (waiting less than the SYN retransmission when dropped is expected) */
    const probe = async (lab: Lab, dropped: boolean): Promise<string> => {
      const to = `TCP4:${A.srv4}:8080,connect-timeout=${dropped ? 0.5 : 3},bind=${BLOCKED_SRC}`;
      const r = await lab.exec('cli', ['sh', '-c', `echo x | socat -u - ${to}`], { timeoutMs: 30_000 });
      return r.code === 0 ? 'ok' : 'failed';
    };
    const fate = (dropped: boolean) => Promise.all([probe(kLab, dropped), probe(nLab, dropped)]);
    assert.deepEqual(await both(`delete element inet filter blocked4 { ${BLOCKED_SRC} }`), [0, 0]);
    assert.deepEqual(await fate(false), ['ok', 'ok'], 'after delete element (kernel, nfqwall)');
    assert.deepEqual(await both('add element inet filter blocked4 { 198.18.1.64/28 }'), [0, 0]);
    assert.deepEqual(await fate(true), ['failed', 'failed'], 'after add element (kernel, nfqwall)');
    // refused by both: an interval overlapping one there, an element not there
    assert.deepEqual(await both('add element inet filter blocked4 { 198.18.1.70 }'), [1, 1]);
    assert.deepEqual(await both(`delete element inet filter blocked4 { ${BLOCKED_SRC} }`), [1, 1]);
    const nl = await nLab.exec('gw', ['node', NFQWALL, 'rules', '-L', '--control', control], { cwd: ROOT, env });
    const set = (JSON.parse(nl.stdout) as { nftables: { set?: { name: string; elem: unknown[] } }[] }).nftables.find((i) => i.set?.name === 'blocked4')!.set!;
    assert.deepEqual(set.elem.slice(-1), [{ prefix: { addr: '198.18.1.64', len: 28 } }], 'rules -L lists the current elements');
  });
});
