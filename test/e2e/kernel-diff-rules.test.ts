/**
 * Rules differential (issue 4/6): rules/lab.rules loaded into a kernel gateway
 * (iptables-restore / ip6tables-restore, the file split by family) and run by
 * `nfqwall run --rules rules/lab.rules --iptables auto` in a second lab's gateway. The same
 * scripted traffic goes through both; compared: what was delivered / refused / silently dropped
 * (client-side outcome of every step), and the per-rule packet counters of the FORWARD and
 * LOGDROP chains (`iptables-save -c` vs `nfqwall rules -L -v`). The counter of the
 * ESTABLISHED,RELATED rule depends on how many segments the real stacks exchange, so it is only
 * required to be non-zero on both sides.
 * Needs root. Both labs are destroyed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { NFQWALL, ROOT, sleep, warmNeighbours, watch } from '../helpers/kernel';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : false;
if (skip) process.stderr.write(`kernel-diff-rules skipped: ${skip}\n`);

const RULES_FILE = path.join(ROOT, 'rules', 'lab.rules');
const T = { timeout: 120_000 };

type Fam = 4 | 6;
/** The family of a rule line: -4/-6, address literals, icmp protocol names; null = both. */
function ruleFamily(line: string): Fam | null {
  if (/\s-4(\s|$)/.test(line)) return 4;
  if (/\s-6(\s|$)/.test(line)) return 6;
  if (/ipv6-icmp|icmpv6|icmp6/.test(line) || /\s[0-9a-f]*:[0-9a-f:]*(\/\d+)?(\s|$)/i.test(line)) return 6;
  if (/\d+\.\d+\.\d+\.\d+/.test(line) || /-p icmp\s|icmp-/.test(line)) return 4;
  return null;
}

interface SrcRule {
  table: string;
  chain: string;
  line: string;
  fam: Fam | null;
  /** index among the rules of (table, chain) in the kernel's v4 / v6 tables */
  idx4?: number;
  idx6?: number;
}

/** Splits an iptables-restore file into the v4 and v6 halves and remembers where each rule went. */
function splitRules(text: string): { v4: string; v6: string; rules: SrcRule[] } {
  const out: Record<Fam, string[]> = { 4: [], 6: [] };
  const rules: SrcRule[] = [];
  const count: Record<string, number> = {};
  let table = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('*')) table = line.slice(1);
    if (!line.startsWith('-A ')) {
      out[4].push(line);
      out[6].push(line);
      continue;
    }
    const chain = line.split(/\s+/)[1];
    const r: SrcRule = { table, chain, line, fam: ruleFamily(line) };
    for (const f of [4, 6] as const) {
      if (r.fam !== null && r.fam !== f) continue;
      const k = `${f} ${table} ${chain}`;
      const i = (count[k] = (count[k] ?? 0) + 1) - 1;
      if (f === 4) r.idx4 = i;
      else r.idx6 = i;
      out[f].push(line.replace(/\s-[46](?=\s|$)/, ''));
    }
    rules.push(r);
  }
  return { v4: out[4].join('\n') + '\n', v6: out[6].join('\n') + '\n', rules };
}

/** `[pkts:bytes] -A CHAIN …` lines of a table section, grouped by chain, in order. */
function countersByChain(save: string, table: string): Map<string, number[]> {
  const m = new Map<string, number[]>();
  let cur = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) cur = line.slice(1).trim();
    const r = /^\[(\d+):(\d+)\]\s+-A\s+(\S+)/.exec(line.trim());
    if (!r || cur !== table) continue;
    if (!m.has(r[3])) m.set(r[3], []);
    m.get(r[3])!.push(Number(r[1]));
  }
  return m;
}

/**
 * One SYN to srv:8080 (a port the rules accept NEW connections to) whose TCP checksum is wrong.
 * The kernel (nf_conntrack_checksum=1) makes it INVALID, so it goes to LOGDROP; nfqwall must
 * verify it too: the queue marks it as not verified by the kernel (NFQA_SKB_CSUM_NOTVERIFIED).
 * Had nfqwall taken it as verified, the NEW ACCEPT rule would count it instead.
 */
const BAD_CSUM_SYN = `
from scapy.all import IP, TCP, send
p = IP(bytes(IP(dst='${A.srv4}') / TCP(sport=40123, dport=8080, flags='S', seq=1000)))
p[TCP].chksum ^= 0x5555
send(p, verbose=0)
`;

/** Sends 20 UDP datagrams to srv:53 from BURST_SRC at once and prints how many ICMP port unreachables came back. */
const BURST_SRC = '198.18.1.77';
const ICMP_BURST = `
import socket, time
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('${BURST_SRC}', 0))
port = u.getsockname()[1]
for i in range(20):
    u.sendto(b'q', ('${A.srv4}', 53))
n = 0
end = time.time() + 1.5
while True:
    left = end - time.time()
    if left <= 0:
        break
    r.settimeout(left)
    try:
        p = r.recv(2048)
    except socket.timeout:
        break
    ihl = (p[0] & 15) * 4
    inner = p[ihl + 8:]
    iihl = (inner[0] & 15) * 4
    if p[ihl] == 3 and p[ihl + 1] == 3 and inner[12:16] == socket.inet_aton('${BURST_SRC}') and int.from_bytes(inner[iihl:iihl + 2], 'big') == port:
        n += 1
print(n)
`;

describe('rules differential: rules/lab.rules in the kernel vs nfqwall run', { skip }, () => {
  let kLab: Lab;
  let nLab: Lab;
  let nfq: ChildProcess | undefined;
  let nfqOut: ReturnType<typeof watch>;
  const control = `/tmp/nfqw-rdiff-${process.pid}.sock`;
  const split = splitRules(fs.readFileSync(RULES_FILE, 'utf8'));

  before(async () => {
    [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'rdk' }), Lab.create({ prefix: 'rdn' })]);
    for (const lab of [kLab, nLab]) {
      await lab.exec('cli', ['ip', 'addr', 'add', `${BURST_SRC}/24`, 'dev', 'c0'], { check: true });
      lab.spawn('srv', ['socat', '-u', 'TCP6-LISTEN:8080,fork,reuseaddr,ipv6only=0', 'OPEN:/dev/null']);
      lab.spawn('srv', ['socat', '-u', 'TCP6-LISTEN:9999,fork,reuseaddr,ipv6only=0', 'OPEN:/dev/null']);
    }
    await kLab.exec('gw', ['iptables-restore', '-w'], { input: split.v4, check: true });
    await kLab.exec('gw', ['ip6tables-restore', '-w'], { input: split.v6, check: true });
    nfq = nLab.spawn(
      'gw',
      ['node', NFQWALL, 'run', '--rules', RULES_FILE, '--queue', '3', '--iptables', 'auto', '--control', control, '--metrics', '127.0.0.1:9471'],
      {
        cwd: ROOT,
        env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
      },
    );
    nfqOut = watch(nfq);
    await nfqOut.waitFor(/"portids"/, 'err');
    for (const lab of [kLab, nLab]) {
      for (let i = 0; ; i++) {
        const r = await lab.exec('srv', ['ss', '-Hltn', 'sport = :9999']);
        if (r.stdout.trim()) break;
        if (i > 200) throw new Error('socat did not start');
        await sleep(25);
      }
    }
  });

  after(async () => {
    if (nfq && nLab) await nLab.kill(nfq);
    await Promise.all([kLab?.destroy(), nLab?.destroy()]);
  });

  /** The scripted traffic; returns each step's outcome as seen by the client. */
  async function traffic(lab: Lab): Promise<Record<string, string>> {
    const res: Record<string, string> = {};
    const run = async (name: string, argv: string[]) => {
      const r = await lab.exec('cli', argv, { timeoutMs: 30_000 });
      res[name] = r.code === 0 ? 'ok' : /refused/i.test(r.stderr) ? 'refused' : 'failed';
    };
    await run('tcp4 8080 allowed', ['sh', '-c', `echo hello | socat -u - TCP4:${A.srv4}:8080,connect-timeout=2`]);
    await run('tcp6 8080 allowed', ['sh', '-c', `echo hello | socat -u - TCP6:[${A.srv6}]:8080,connect-timeout=2`]);
    await run('tcp4 23 REJECT tcp-reset', ['sh', '-c', `echo x | socat -u - TCP4:${A.srv4}:23,connect-timeout=2`]);
    await run('tcp6 23 REJECT tcp-reset', ['sh', '-c', `echo x | socat -u - TCP6:[${A.srv6}]:23,connect-timeout=2`]);
    await run('tcp4 8080 SYN with a bad checksum (INVALID)', ['/usr/bin/python3', '-c', BAD_CSUM_SYN]);
    // one SYN only (no retransmission within 0.5 s): dropped by LOGDROP
    await run('tcp4 9999 dropped', ['sh', '-c', `echo x | socat -u - TCP4:${A.srv4}:9999,connect-timeout=0.5`]);
    await run('udp4 53 REJECT icmp-port-unreachable', [
      '/usr/bin/python3',
      '-c',
      `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.connect(('${A.srv4}',53))\ns.send(b'q')\ns.settimeout(3)\ntry:\n  s.recv(10)\nexcept ConnectionRefusedError:\n  raise SystemExit('refused')\nexcept OSError:\n  raise SystemExit('no answer')`,
    ]);
    // The kernel rate-limits the ICMP errors REJECT sends (icmp_ratelimit per destination, burst
    // 6): a burst of 20 from an address that has had no ICMP error yet gets 6 answers.
    const burst = await lab.exec('cli', ['/usr/bin/python3', '-c', ICMP_BURST], { timeoutMs: 30_000 });
    res['udp4 53 REJECT burst of 20: ICMP errors received'] = burst.code === 0 ? burst.stdout.trim() : `failed: ${burst.stderr}`;
    await run('ping', ['ping', '-c', '2', '-i', '0.2', '-W', '2', A.srv4]);
    await run('ping6', ['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', A.srv6]);
    return res;
  }

  test('same delivered / refused / dropped outcomes and the same per-rule counters', T, async (t) => {
    await Promise.all([warmNeighbours(kLab), warmNeighbours(nLab)]);
    const [k, n] = await Promise.all([traffic(kLab), traffic(nLab)]);
    t.diagnostic(JSON.stringify(k));
    assert.deepEqual(n, k, 'client-side outcomes differ (nfqwall vs kernel)');
    assert.equal(k['tcp4 8080 allowed'], 'ok');
    assert.equal(k['tcp4 9999 dropped'], 'failed');
    assert.equal(k['udp4 53 REJECT burst of 20: ICMP errors received'], '6', 'the kernel should send 6 of 20 ICMP errors (per-destination burst)');
    const scrape = await nLab.exec('gw', ['curl', '-sf', 'http://127.0.0.1:9471/metrics'], { check: true });
    assert.match(scrape.stdout, /^nfqwall_reject_icmp_ratelimited_total\{limit="host"\} 14$/m, 'the 14 ICMP errors held back are counted');

    const ksave4 = (await kLab.exec('gw', ['iptables-save', '-c'], { check: true })).stdout;
    const ksave6 = (await kLab.exec('gw', ['ip6tables-save', '-c'], { check: true })).stdout;
    const nl = await nLab.exec('gw', ['node', NFQWALL, 'rules', '-L', '-v', '--control', control], {
      cwd: ROOT,
      env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
    });
    assert.equal(nl.code, 0, `nfqwall rules -L -v: ${nl.stderr}`);
    const k4 = countersByChain(ksave4, 'filter');
    const k6 = countersByChain(ksave6, 'filter');
    const nc = countersByChain(nl.stdout, 'filter');
    const idx: Record<string, number> = {};
    const diffs: string[] = [];
    for (const r of split.rules.filter((x) => x.table === 'filter' && (x.chain === 'FORWARD' || x.chain === 'LOGDROP'))) {
      const i = (idx[r.chain] = (idx[r.chain] ?? 0) + 1) - 1;
      const kernel = (r.idx4 !== undefined ? (k4.get(r.chain)?.[r.idx4] ?? 0) : 0) + (r.idx6 !== undefined ? (k6.get(r.chain)?.[r.idx6] ?? 0) : 0);
      const ours = nc.get(r.chain)?.[i];
      if (/ESTABLISHED/.test(r.line)) {
        assert.ok(kernel > 0 && (ours ?? 0) > 0, `${r.line}: kernel ${kernel}, nfqwall ${ours}`);
        continue;
      }
      t.diagnostic(`${r.line}: kernel ${kernel}, nfqwall ${ours}`);
      if (ours !== kernel) diffs.push(`${r.line}: kernel ${kernel}, nfqwall ${ours}`);
    }
    assert.deepEqual(diffs, [], `per-rule packet counters differ\nkernel v4:\n${ksave4}\nkernel v6:\n${ksave6}\nnfqwall:\n${nl.stdout}`);
  });
});
