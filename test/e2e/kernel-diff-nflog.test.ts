/**
 * NFLOG differential (issue 17): one rule file with -j NFLOG rules (two groups, a prefix,
 * --nflog-size, a group nobody reads) in a kernel gateway (iptables-restore), read there by
 * `tcpdump -i nflog:N -w` (libpcap reads nfnetlink_log groups), and run by `nfqwall run` in a
 * second lab's gateway, read by `nfqwall nflog --group N --pcap`. The same datagrams go
 * through both; compared: what each group's reader got (prefix, hook, the packet bytes
 * without the IP id and checksum, which the two clients choose themselves, and how many
 * bytes were copied), and the per-rule counters (NFLOG goes on to the next rule); a second,
 * text reader of nfqwall that stops after five packets prints them as -j LOG would. One queue
 * (the main thread's ring) and two worker threads (a ring each).
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
import { nflogAttributes, NFULA_PACKET_HDR, NFULA_PAYLOAD, NFULA_PREFIX } from '../../src/pcap/nflog';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const hasTcpdump = fs.existsSync('/usr/bin/tcpdump') || fs.existsSync('/usr/sbin/tcpdump');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : !hasTcpdump ? 'tcpdump not installed' : false;
if (skip) process.stderr.write(`kernel-diff-nflog skipped: ${skip}\n`);
const T = { timeout: 180_000 };

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p udp -m udp --dport 7010 -j NFLOG --nflog-prefix "nfq test 7010" --nflog-group 5
-A FORWARD -p udp -m udp --dport 7010 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7011 -j NFLOG --nflog-group 6 --nflog-size 40
-A FORWARD -p udp -m udp --dport 7011 -j NFLOG --nflog-prefix second --nflog-group 5
-A FORWARD -p udp -m udp --dport 7012 -j NFLOG --nflog-prefix nobody --nflog-group 7
-A FORWARD -p udp -j ACCEPT
COMMIT
`;

/** What one reader got, per packet: prefix, hook, bytes copied, the bytes without IP id and checksum (hex). */
function readCapture(buf: Buffer): string[] {
  assert.ok(buf.length >= 24, 'a pcap header');
  assert.equal(buf.readUInt32LE(0), 0xa1b2c3d4, 'a little-endian microsecond pcap');
  assert.equal(buf.readUInt32LE(20), 239, 'link type NFLOG');
  const out: string[] = [];
  for (let p = 24; p + 16 <= buf.length;) {
    const cap = buf.readUInt32LE(p + 8);
    if (p + 16 + cap > buf.length) break;
    const { group, attrs } = nflogAttributes(new Uint8Array(buf.subarray(p + 16, p + 16 + cap)));
    const hdr = attrs.get(NFULA_PACKET_HDR)!;
    const pfx = attrs.get(NFULA_PREFIX);
    const data = Buffer.from(attrs.get(NFULA_PAYLOAD) ?? []);
    if (data.length >= 12) data.fill(0, 4, 6).fill(0, 10, 12);
    out.push(
      `group ${group} hook ${hdr[2]} prefix "${pfx ? Buffer.from(pfx).toString().replace(/\0+$/, '') : ''}" copied ${data.length} ${data.toString('hex')}`,
    );
    p += 16 + cap;
  }
  return out;
}

/** `[pkts:bytes] -A FORWARD …` packet counters in order. */
function forwardCounters(save: string): number[] {
  return save
    .split('\n')
    .map((l) => /^\[(\d+):\d+\]\s+-A FORWARD\s/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
}

for (const queues of [
  ['--queue', '6'],
  ['--queues', '6:7'],
])
  describe(`NFLOG differential: the kernel read by tcpdump -i nflog:N vs nfqwall nflog --pcap (${queues.join(' ')})`, { skip }, () => {
    let kLab: Lab;
    let nLab: Lab;
    let nfq: ChildProcess | undefined;
    const control = `/tmp/nfqw-nflog-${process.pid}-${queues[1].replace(':', '-')}.sock`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-nflog-'));
    const rulesFile = path.join(dir, 'nflog.rules');
    fs.writeFileSync(rulesFile, RULES);
    const env = { ...process.env, NFQWALL_FROM_SOURCE: '1' };

    before(async () => {
      [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'nlk' }), Lab.create({ prefix: 'nln' })]);
      await kLab.exec('gw', ['iptables-restore', '-w'], { input: RULES, check: true });
      nfq = nLab.spawn('gw', ['node', NFQWALL, 'run', '--rules', rulesFile, ...queues, '--iptables', 'auto', '--control', control], { cwd: ROOT, env });
      await watch(nfq).waitFor(/"portids"/, 'err');
      for (const lab of [kLab, nLab]) {
        await lab.exec('cli', ['ping', '-c', '1', '-W', '2', A.gwCli4]);
        await lab.exec('srv', ['ping', '-c', '1', '-W', '2', A.gwSrv4]);
      }
    });

    after(async () => {
      if (nfq && nLab) await nLab.kill(nfq);
      await Promise.all([kLab?.destroy(), nLab?.destroy()]);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** A reader of group g in the gateway: its capture so far, and a stop. */
    async function reader(lab: Lab, g: number): Promise<{ bytes: () => Buffer; stop: () => Promise<void> }> {
      const chunks: Buffer[] = [];
      const file = path.join(dir, `${lab === kLab ? 'k' : 'n'}${g}.pcap`);
      const child =
        lab === kLab
          ? lab.spawn('gw', ['tcpdump', '-i', `nflog:${g}`, '-U', '-s', '65535', '-w', file])
          : lab.spawn('gw', ['node', NFQWALL, 'nflog', '--group', String(g), '--pcap', '--control', control], { cwd: ROOT, env });
      child.stdout!.on('data', (b: Buffer) => chunks.push(b));
      await watch(child).waitFor(lab === kLab ? /listening on nflog:/ : /reading group/, 'err');
      const bytes = () => (lab === kLab ? (fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0)) : Buffer.concat(chunks));
      return { bytes, stop: () => lab.kill(child, 'SIGINT') };
    }

    async function traffic(lab: Lab): Promise<Record<number, string[]>> {
      const want: Record<number, number> = { 5: 5, 6: 2 };
      const readers = { 5: await reader(lab, 5), 6: await reader(lab, 6) };
      // nfqwall: a second reader of group 5, in text, that stops after five packets
      const text =
        lab === nLab ? watch(lab.spawn('gw', ['node', NFQWALL, 'nflog', '--group', '5', '--count', '5', '--control', control], { cwd: ROOT, env })) : null;
      await text?.waitFor(/reading group 5/, 'err');
      // fixed source ports: the packets are the same bytes in both labs but for the IP id
      const send = (sport: number, dport: number, payloads: string[]) =>
        lab.exec(
          'cli',
          [
            '/usr/bin/python3',
            '-c',
            `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('${A.cli4}',${sport}))\nfor p in ${JSON.stringify(payloads)}: s.sendto(p.encode(),('${A.srv4}',${dport}))`,
          ],
          { check: true },
        );
      await send(41010, 7010, ['a'.repeat(10), 'b'.repeat(200), 'c'.repeat(1400)]);
      await send(41011, 7011, ['d'.repeat(100), 'e'.repeat(3)]);
      await send(41012, 7012, ['nobody reads group 7']);
      const got: Record<number, string[]> = {};
      for (const g of [5, 6] as const) {
        for (let i = 0; readCapture(readers[g].bytes()).length < want[g]; i++) {
          if (i > 1500) throw new Error(`group ${g}: ${readCapture(readers[g].bytes()).length} of ${want[g]} packets read`);
          await sleep(20);
        }
        await readers[g].stop();
        got[g] = readCapture(readers[g].bytes());
      }
      if (text) {
        assert.equal(await text.exited, 0, text.err);
        const lines = text.out.trim().split('\n');
        assert.equal(lines.length, 5, text.out);
        assert.match(
          lines[0],
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z nfq test 7010IN=\S+ OUT=\S+ SRC=198\.18\.1\.1 DST=198\.19\.2\.1 LEN=38 .*PROTO=UDP SPT=41010 DPT=7010 LEN=18 $/,
        );
        assert.match(lines[4], /Z secondIN=\S+ OUT=\S+ SRC=/);
      }
      return got;
    }

    test('each group reader gets the same packets and prefixes; NFLOG goes on to the next rule', T, async (t) => {
      const k = await traffic(kLab);
      const n = await traffic(nLab);
      t.diagnostic(JSON.stringify(k).slice(0, 2000));
      assert.equal(k[5].length, 5);
      assert.match(k[5][0], /^group 5 hook 2 prefix "nfq test 7010" copied 38 /, 'the kernel: FORWARD, the prefix, the whole packet');
      assert.match(k[6][0], /^group 6 hook 2 prefix "" copied 40 /, 'the kernel: --nflog-size 40');
      assert.deepEqual(n, k, 'what the readers got differs (nfqwall vs kernel)');
      const ksave = (await kLab.exec('gw', ['iptables-save', '-c'], { check: true })).stdout;
      const nl = await nLab.exec('gw', ['node', NFQWALL, 'rules', '-L', '-v', '--control', control], { cwd: ROOT, env });
      assert.equal(nl.code, 0, nl.stderr);
      const kc = forwardCounters(ksave);
      const nc = forwardCounters(nl.stdout);
      assert.deepEqual(kc.slice(1), [3, 3, 2, 2, 1, 3], 'the kernel: NFLOG is not terminal');
      assert.deepEqual(nc.slice(1), kc.slice(1), `per-rule counters differ\nkernel:\n${ksave}\nnfqwall:\n${nl.stdout}`);
    });
  });
