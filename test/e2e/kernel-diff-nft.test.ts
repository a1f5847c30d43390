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
 * Needs root and nft. Both labs and the namespace are removed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { NFQWALL, ROOT, sleep, warmNeighbours, watch } from '../helpers/kernel';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const hasNft = fs.existsSync('/usr/sbin/nft');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : !hasNft ? 'nft not installed (Debian package nftables)' : false;
if (skip) process.stderr.write(`kernel-diff-nft skipped: ${skip}\n`);

const NFT_FILE = path.join(ROOT, 'test', 'e2e', 'nft', 'gateway.nft');
const T = { timeout: 180_000 };
const BLOCKED_SRC = '198.18.1.77';
const TCP_PORTS = [8080, 8443, 7000, 7001, 7002, 9050];
/** the TCP steps the rule set drops (asserted below from the kernel's own outcome) */
const DROPPED = new Set(['tcp4 8443', 'tcp4 9050', 'tcp6 9050', `tcp4 8080 from ${BLOCKED_SRC}`]);

/** Each rule's counter by chain and position: "FAMILY TABLE CHAIN #N" → packets. */
function ruleCounters(json: string): Record<string, number> {
  const out: Record<string, number> = {};
  const seen: Record<string, number> = {};
  for (const item of (JSON.parse(json) as { nftables: Record<string, unknown>[] }).nftables) {
    const r = item.rule as { family: string; table: string; chain: string; expr: Record<string, unknown>[] } | undefined;
    if (!r) continue;
    const chain = `${r.family} ${r.table} ${r.chain}`;
    const n = (seen[chain] = (seen[chain] ?? 0) + 1);
    const c = r.expr.find((e) => 'counter' in e)?.counter as { packets: number } | undefined;
    if (c) out[`${chain} #${n}`] = c.packets;
  }
  return out;
}

/** `nft -j list ruleset` of an nft file, loaded in a namespace of its own that is removed after. */
function nftJson(file: string): string {
  const ns = `nfqw-nftj-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', file]);
    return execFileSync('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'ruleset'], { encoding: 'utf8' });
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

/** srv's UDP echo on PORT (both families, one process, no fork per datagram). */
const udpEcho = (port: number): string => `
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', ${port}))
while True:
    d, a = s.recvfrom(100)
    s.sendto(b'r', a)
`;

/**
 * A UDP request to srv:PORT from one socket, sent up to 3 times while no answer comes;
 * prints ok, refused (ICMP port unreachable) or failed (no answer).
 */
const udpProbe = (fam: 4 | 6, port: number): string => `
import socket
s = socket.socket(socket.AF_INET${fam === 6 ? '6' : ''}, socket.SOCK_DGRAM)
s.connect(('${fam === 6 ? A.srv6 : A.srv4}', ${port}))
s.settimeout(1)
out = 'failed'
for i in range(3):
    s.send(b'q')
    try:
        s.recv(10)
        out = 'ok'
        break
    except ConnectionRefusedError:
        out = 'refused'
        break
    except socket.timeout:
        continue
print(out)
`;

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
    fs.writeFileSync(jsonFile, nftJson(NFT_FILE));
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
    const outcome = (code: number | null, stderr: string): string =>
      code === 0 ? 'ok' : /refused/i.test(stderr) ? 'refused' : /no route|unreachable|permission|prohibited/i.test(stderr) ? 'unreachable' : 'failed';
    const tcp = async (fam: 4 | 6, port: number, bind?: string) => {
      const to = fam === 6 ? `TCP6:[${A.srv6}]:${port}` : `TCP4:${A.srv4}:${port}`;
      const name = `tcp${fam} ${port}${bind ? ` from ${bind}` : ''}`;
      const wait = DROPPED.has(name) ? 0.5 : 3;
      const r = await lab.exec('cli', ['sh', '-c', `echo x | socat -u - ${to},connect-timeout=${wait}${bind ? `,bind=${bind}` : ''}`], { timeoutMs: 30_000 });
      res[name] = outcome(r.code, r.stderr);
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
