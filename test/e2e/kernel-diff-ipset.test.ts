/**
 * ipset differential (issue #17): test/e2e/ipset/gateway.ipset loaded by the real `ipset
 * restore` and test/e2e/ipset/gateway.rules by iptables-restore in a kernel gateway; the same two
 * files in a second lab's gateway through `nfqwall run --ipsets FILE --rules FILE --queues 3:4`
 * (two worker threads sharing the sets). The same scripted traffic goes through both and each
 * client step's fate is compared (delivered or silently dropped); then the same ipset
 * commands run in both gateways (the real ipset, `nfqwall ipset`) while a UDP flow from the
 * blocked address keeps going: the same exit codes, the same fate after each change (the flow
 * stops when its source is added, comes back when deleted), `-j SET --add-set` feeding the set a
 * later rule matches, and the same members in `ipset save`. Steps the rules drop wait 0.5 s,
 * less than the SYN retransmission. Needs root, ipset and iptables; both labs are removed in
 * after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import { NFQWALL, ROOT, sleep, warmNeighbours, watch } from '../helpers/kernel';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const hasIpset = fs.existsSync('/usr/sbin/ipset') || fs.existsSync('/sbin/ipset');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : !hasIpset ? 'ipset not installed (Debian package ipset)' : false;
if (skip) process.stderr.write(`kernel-diff-ipset skipped: ${skip}\n`);

const RULES = path.join(ROOT, 'test', 'e2e', 'ipset', 'gateway.rules');
const SETS = path.join(ROOT, 'test', 'e2e', 'ipset', 'gateway.ipset');
const T = { timeout: 240_000 };
const ENV = { ...process.env, NFQWALL_FROM_SOURCE: '1' };
/** a second client address (in nets' nomatch /28) and a third (in nets, not in the /28) */
const OTHER = '198.18.1.70';
const THIRD = '198.18.1.90';
const TCP_PORTS = [8080, 7000, 7001, 7002, 8443];

/** srv's UDP echo on PORT (one process, no fork per datagram). */
const udpEcho = (port: number): string => `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', ${port}))
while True:
    d, a = s.recvfrom(100)
    s.sendto(d, a)
`;

/** One UDP flow from BIND to srv:5001: each line on stdin sends a datagram, prints ok or lost (no answer in 1 s). */
const udpFlow = (bind: string): string => `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('${bind}', 0))
s.connect(('${A.srv4}', 5001))
s.settimeout(1)
for line in sys.stdin:
    s.send(line.strip().encode())
    try:
        while s.recv(100).decode() != line.strip():
            pass
        print('ok', flush=True)
    except socket.timeout:
        print('lost', flush=True)
`;

class Flow {
  private readonly lines: string[] = [];
  private waiting: ((l: string) => void) | null = null;
  private n = 0;
  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(l);
      } else this.lines.push(l);
    });
  }
  send(): Promise<string> {
    this.child.stdin!.write(`d${this.n++}\n`);
    const l = this.lines.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((r) => (this.waiting = r));
  }
}

describe('ipset differential: the real ipset and iptables vs nfqwall run --ipsets', { skip }, () => {
  let kLab: Lab;
  let nLab: Lab;
  let nfq: ChildProcess | undefined;
  let nfqOut: ReturnType<typeof watch>;
  const control = `/tmp/nfqw-ipsetdiff-${process.pid}.sock`;
  const flows: [Flow, Flow][] = [];

  before(async () => {
    [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'isk' }), Lab.create({ prefix: 'isn' })]);
    for (const lab of [kLab, nLab]) {
      for (const a of [OTHER, THIRD]) await lab.exec('cli', ['ip', 'addr', 'add', `${a}/24`, 'dev', 'c0'], { check: true });
      for (const p of TCP_PORTS) lab.spawn('srv', ['socat', '-u', `TCP4-LISTEN:${p},fork,reuseaddr`, 'OPEN:/dev/null']);
      lab.spawn('srv', ['/usr/bin/python3', '-c', udpEcho(5001)]);
    }
    await kLab.exec('gw', ['ipset', 'restore', '-f', SETS], { check: true });
    await kLab.exec('gw', ['iptables-restore', RULES], { check: true });
    const check = await nLab.exec('gw', ['node', NFQWALL, 'check', '--ipsets', SETS, RULES], { cwd: ROOT, env: ENV });
    assert.equal(check.code, 0, `nfqwall check: ${check.stdout}${check.stderr}`);
    nfq = nLab.spawn('gw', ['node', NFQWALL, 'run', '--rules', RULES, '--ipsets', SETS, '--queues', '3:4', '--iptables', 'auto', '--control', control], {
      cwd: ROOT,
      env: ENV,
    });
    nfqOut = watch(nfq);
    await nfqOut.waitFor(/"portids"/, 'err');
    for (const lab of [kLab, nLab]) {
      for (let i = 0; ; i++) {
        const r = await lab.exec('srv', ['ss', '-Hltn', 'sport = :8443']);
        const u = await lab.exec('srv', ['ss', '-Hlun', 'sport = :5001']);
        if (r.stdout.trim() && u.stdout.trim()) break;
        if (i > 200) throw new Error('the servers did not start');
        await sleep(25);
      }
    }
  });

  after(async () => {
    if (process.env.NFQWALL_TEST_DEBUG) process.stderr.write(nfqOut?.err ?? '');
    for (const [k, n] of flows) {
      await kLab?.kill(k.child);
      await nLab?.kill(n.child);
    }
    if (nfq && nLab) await nLab.kill(nfq);
    await Promise.all([kLab?.destroy(), nLab?.destroy()]);
  });

  /** tcp4 to srv:PORT from BIND: ok, reset (refused) or failed (dropped: waits 0.5 s, less than the SYN retransmission) */
  async function tcp(lab: Lab, port: number, bind: string, dropped: boolean): Promise<string> {
    const r = await lab.exec('cli', ['sh', '-c', `echo x | socat -u - TCP4:${A.srv4}:${port},connect-timeout=${dropped ? 0.5 : 3},bind=${bind}`], {
      timeoutMs: 30_000,
    });
    return r.code === 0 ? 'ok' : /refused/i.test(r.stderr) ? 'reset' : 'failed';
  }
  const both = async (port: number, bind: string, dropped: boolean) => Promise.all([tcp(kLab, port, bind, dropped), tcp(nLab, port, bind, dropped)]);
  const ipset = async (cmd: string): Promise<[number | null, number | null]> => {
    const w = cmd.split(' ');
    const [k, n] = await Promise.all([
      kLab.exec('gw', ['ipset', ...w]),
      nLab.exec('gw', ['node', NFQWALL, 'ipset', '--control', control, ...w], { cwd: ROOT, env: ENV }),
    ]);
    return [k.code, n.code];
  };
  const members = async (name: string): Promise<[string[], string[]]> => {
    const [k, n] = await Promise.all([
      kLab.exec('gw', ['ipset', 'save', name], { check: true }),
      nLab.exec('gw', ['node', NFQWALL, 'ipset', '--control', control, 'save', name], { cwd: ROOT, env: ENV }),
    ]);
    const m = (t: string) =>
      t
        .split('\n')
        .filter((l) => l.startsWith('add '))
        .map((l) => l.replace(/ timeout \d+/, ''))
        .sort();
    return [m(k.stdout), m(n.stdout)];
  };

  test('the same traffic gets the same fate (hash:ip,port, hash:net nomatch and --return-nomatch, bitmap:port, list:set, ! --match-set)', T, async () => {
    await Promise.all([warmNeighbours(kLab), warmNeighbours(nLab)]);
    const steps: [number, string, boolean, string][] = [
      [8080, A.cli4, false, 'ok'], // svc: srv,tcp:8080
      [7002, A.cli4, false, 'ok'], // in nets
      [7002, OTHER, true, 'failed'], // in the nomatch /28: --return-nomatch matches, DROP
      [7002, THIRD, false, 'ok'],
      [8443, A.cli4, true, 'failed'], // not in lst (its only member is IPv6): ! --match-set, DROP
    ];
    for (const [port, bind, dropped, expected] of steps) {
      const [k, n] = await both(port, bind, dropped);
      assert.equal(k, expected, `kernel: tcp ${port} from ${bind}`);
      assert.equal(n, k, `tcp ${port} from ${bind}: nfqwall vs kernel`);
    }
    for (const [k, n] of [await Promise.all([kLab, nLab].map((l) => l.exec('cli', ['/usr/bin/python3', '-c', udpOnce])))])
      assert.deepEqual([n.stdout.trim(), k.stdout.trim()], ['ok', 'ok'], 'udp 5001 (bitmap:port)');
  });

  test('-j SET --add-set feeds the set a later rule matches', T, async () => {
    assert.deepEqual(await both(7001, THIRD, true), ['failed', 'failed'], 'not seen yet: the ! --match-set lst rule drops it');
    assert.deepEqual(await both(7000, THIRD, false), ['ok', 'ok'], 'port 7000 adds the source to seen');
    assert.deepEqual(await both(7001, THIRD, false), ['ok', 'ok'], 'seen now');
    const [k, n] = await members('seen');
    assert.deepEqual(k, [`add seen ${THIRD}`]);
    assert.deepEqual(n, k, 'ipset save seen');
  });

  test('ipset commands at run time, while a flow from the address runs: the same exit codes and fates', T, async () => {
    const flow = [kLab, nLab].map((l) => new Flow(l.spawn('cli', ['/usr/bin/python3', '-c', udpFlow(OTHER)]))) as [Flow, Flow];
    flows.push(flow);
    const send = () => Promise.all(flow.map((f) => f.send()));
    assert.deepEqual(await send(), ['ok', 'ok'], 'the flow runs');
    assert.deepEqual(await send(), ['ok', 'ok']);
    // what fail2ban runs to ban
    assert.deepEqual(await ipset('create f2b-sshd hash:ip timeout 600 -exist'), [0, 0]);
    assert.deepEqual(await ipset(`add blocked ${OTHER} timeout 600 -exist`), [0, 0]);
    assert.deepEqual(await send(), ['lost', 'lost'], 'its source added to blocked: the running flow stops');
    assert.deepEqual(await both(8080, OTHER, true), ['failed', 'failed'], 'and new connections');
    assert.deepEqual(await both(8080, A.cli4, false), ['ok', 'ok'], 'other sources pass');
    assert.deepEqual(await ipset(`add blocked ${OTHER}`), [1, 1], 'already added');
    assert.deepEqual(await ipset(`test blocked ${OTHER}`), [0, 0]);
    assert.deepEqual(await ipset(`test blocked ${THIRD}`), [1, 1]);
    assert.deepEqual(await ipset('add nosuch 198.18.1.1'), [1, 1]);
    assert.deepEqual(await ipset(`del blocked ${OTHER}`), [0, 0]);
    assert.deepEqual(await send(), ['ok', 'ok'], 'deleted: the flow comes back');
    assert.deepEqual(await ipset(`del blocked ${OTHER}`), [1, 1], 'not added');
    assert.deepEqual(await ipset('destroy blocked'), [1, 1], 'in use by the rules');
    assert.deepEqual(await ipset('destroy f2b-sshd'), [0, 0]);
    // a new set, filled, swapped in for the one the rules name
    assert.deepEqual(await ipset('create blocked2 hash:ip timeout 600'), [0, 0]);
    assert.deepEqual(await ipset(`add blocked2 ${A.cli4}`), [0, 0]);
    assert.deepEqual(await ipset('swap blocked blocked2'), [0, 0]);
    assert.deepEqual(await both(8080, A.cli4, true), ['failed', 'failed'], 'blocked is now what blocked2 held');
    assert.deepEqual(await ipset('flush blocked'), [0, 0]);
    assert.deepEqual(await both(8080, A.cli4, false), ['ok', 'ok'], 'flushed');
    assert.deepEqual(await send(), ['ok', 'ok']);
    const [k, n] = await members('blocked2');
    assert.deepEqual(n, k, 'ipset save blocked2 (what blocked was)');
  });
});

/** One UDP datagram to srv:5001 and its answer: ok or lost. */
const udpOnce = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('${A.srv4}', 5001))
s.settimeout(2)
s.send(b'q')
try:
    s.recv(10)
    print('ok')
except socket.timeout:
    print('lost')
`;
