/**
 * Interoperability with tcpdump/libpcap: files our writer produces are read and
 * rewritten by tcpdump, and captures tcpdump makes on a private network namespace
 * (198.18.0.0/15 and 2001:2::/48 only) are read back. Skipped without tcpdump;
 * the live capture is skipped when not root.
 */
import { describe, it, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, readCaptureFile } from '../../../src/pcap/read';
import { PcapWriter } from '../../../src/pcap/write';
import { ipv4, ipv6, tcp, udp } from '../../helpers/packets';

const TCPDUMP = ['/usr/bin/tcpdump', '/usr/sbin/tcpdump'].find((p) => fs.existsSync(p));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const P4 = ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }, tcp({ sport: 40000, dport: 80, flags: 'S', seq: 1 }));
const P6 = ipv6({ src: '2001:2::1', dst: '2001:2::2' }, udp({ sport: 1000, dport: 2000, payload: 'ipv6!' }));

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-pcap-'));
});
after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function tcpdump(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(TCPDUMP!, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("pcap: tcpdump reads our files and we read tcpdump's", { skip: !TCPDUMP && 'tcpdump not installed' }, () => {
  for (const linkType of [LINKTYPE_RAW, LINKTYPE_ETHERNET]) {
    for (const nanosecond of [false, true]) {
      it(`link type ${linkType}, ${nanosecond ? 'ns' : 'µs'}: tcpdump -r decodes, tcpdump -w rewrites, we read the rewrite`, () => {
        const x = path.join(dir, `x-${linkType}-${+nanosecond}.pcap`);
        const y = path.join(dir, `y-${linkType}-${+nanosecond}.pcap`);
        const w = new PcapWriter({ linkType, nanosecond });
        w.add(P4, 1700000000123.456);
        w.add(P6, 1700000000200.5, { vlans: linkType === LINKTYPE_ETHERNET ? [{ vid: 42 }] : undefined });
        w.writeFile(x);

        const txt = tcpdump(['-nn', '-r', x]);
        assert.equal(txt.status, 0, txt.stderr);
        const lines = txt.stdout.trim().split('\n');
        assert.equal(lines.length, 2, txt.stdout);
        assert.match(lines[0], /IP 198\.18\.0\.1\.40000 > 198\.18\.0\.2\.80: Flags \[S\]/);
        assert.match(lines[1], /IP6 2001:2::1\.1000 > 2001:2::2\.2000: UDP, length 5/);
        if (linkType === LINKTYPE_ETHERNET) assert.match(tcpdump(['-nn', '-e', '-r', x]).stdout, /vlan 42/);

        const args = ['-r', x, '-w', y];
        if (nanosecond) args.unshift('--time-stamp-precision=nano');
        const rw = tcpdump(args);
        assert.equal(rw.status, 0, rw.stderr);
        const raw = fs.readFileSync(y);
        assert.equal(raw.readUInt32LE(0), nanosecond ? 0xa1b23c4d : 0xa1b2c3d4);
        const r = readCaptureFile(y);
        assert.equal(r.error, null);
        assert.equal(r.packets.length, 2);
        assert.deepEqual(Buffer.from(r.packets[0].data), Buffer.from(P4));
        assert.deepEqual(Buffer.from(r.packets[1].data), Buffer.from(P6));
        assert.equal(r.packets[0].linkType, linkType);
        assert.ok(Math.abs(r.packets[0].tsMs - 1700000000123.456) <= 1e-3);
        assert.ok(Math.abs(r.packets[1].tsMs - 1700000000200.5) <= 1e-3);
      });
    }
  }

  it('a capture filtered by tcpdump keeps only the matching packets', () => {
    const x = path.join(dir, 'mixed.pcap');
    const y = path.join(dir, 'only6.pcap');
    const w = new PcapWriter({ linkType: LINKTYPE_ETHERNET });
    for (let i = 0; i < 5; i++) {
      w.add(P4, i);
      w.add(P6, i + 0.5);
    }
    w.writeFile(x);
    const rw = tcpdump(['-r', x, '-w', y, 'ip6']);
    assert.equal(rw.status, 0, rw.stderr);
    const r = readCaptureFile(y);
    assert.equal(r.error, null);
    assert.deepEqual(
      r.packets.map((p) => [p.family, p.tsMs]),
      [0, 1, 2, 3, 4].map((i) => [6, i + 0.5]),
    );
  });
});

// ---------------------------------------------------------------------------
// Live capture on lo inside a private namespace

const NS = 'nfqw-pcap-' + crypto.randomBytes(4).toString('hex');
const A4 = '198.18.99.1';
const A6 = '2001:2:0:99::1';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

/** Starts tcpdump in the namespace and resolves once it listens. */
function startCapture(args: string[]): Promise<{ child: ChildProcess; done: Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', NS, TCPDUMP!, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const done = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    let err = '';
    let listening = false;
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (!listening && /listening on/.test(err)) {
        listening = true;
        resolve({ child, done });
      }
    });
    child.on('exit', (code) => {
      if (!listening) reject(new Error(`tcpdump exited (${code}) before listening: ${err}`));
    });
  });
}

async function waitOrStop(c: { child: ChildProcess; done: Promise<number | null> }): Promise<void> {
  // tcpdump stops by itself after -c packets; a safety net only in case it does not
  const t = setTimeout(() => {
    if (c.child.pid !== undefined && c.child.exitCode === null) c.child.kill('SIGINT');
  }, 20_000);
  await c.done;
  clearTimeout(t);
}

describe('pcap: live capture by tcpdump in a private namespace', { skip: (!TCPDUMP && 'tcpdump not installed') || (!isRoot && 'needs root') }, () => {
  let created = false;
  before(() => {
    ip(['netns', 'add', NS]);
    created = true;
    ip(['-n', NS, 'link', 'set', 'lo', 'up']);
    ip(['-n', NS, 'addr', 'add', `${A4}/32`, 'dev', 'lo']);
    ip(['-n', NS, '-6', 'addr', 'add', `${A6}/128`, 'dev', 'lo', 'nodad']);
  });
  after(() => {
    if (created) spawnSync('ip', ['netns', 'del', NS]);
  });

  it('reads what tcpdump captured on lo (Ethernet) and on any (SLL2)', async () => {
    const lo = path.join(dir, 'lo.pcap');
    const any = path.join(dir, 'any.pcap');
    const filter = 'icmp or (icmp6 and (ip6[40] == 128 or ip6[40] == 129))';
    const c1 = await startCapture(['-i', 'lo', '-U', '-n', '-c', '8', '-w', lo, filter]);
    const c2 = await startCapture(['-i', 'any', '-y', 'LINUX_SLL2', '-U', '-n', '-c', '8', '-w', any, filter]);
    for (const target of [A4, A6]) {
      const r = spawnSync('ip', ['netns', 'exec', NS, 'ping', '-c', '2', '-i', '0.2', '-W', '2', target], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    }
    await waitOrStop(c1);
    await waitOrStop(c2);

    for (const [file, lt] of [
      [lo, LINKTYPE_ETHERNET],
      [any, LINKTYPE_LINUX_SLL2],
    ] as const) {
      const r = readCaptureFile(file);
      assert.equal(r.error, null, file);
      assert.equal(r.format, 'pcap');
      assert.equal(r.packets.length, 8, file);
      assert.deepEqual(
        r.packets.map((p) => p.family),
        [4, 4, 4, 4, 6, 6, 6, 6],
        file,
      );
      for (const p of r.packets) {
        assert.equal(p.linkType, lt);
        if (p.family === 4) {
          assert.equal(p.data[0] >> 4, 4);
          assert.equal(p.data[9], 1); // ICMP
          assert.deepEqual([...p.data.subarray(12, 16)], [198, 18, 99, 1]);
          assert.deepEqual([...p.data.subarray(16, 20)], [198, 18, 99, 1]);
        } else {
          assert.equal(p.data[0] >> 4, 6);
          assert.equal(p.data[6], 58); // ICMPv6
          assert.ok(p.data[40] === 128 || p.data[40] === 129);
        }
      }
      // echo request / reply alternate, timestamps do not go backwards
      assert.deepEqual(
        r.packets.filter((p) => p.family === 4).map((p) => p.data[20]),
        [8, 0, 8, 0],
      );
      for (let i = 1; i < r.packets.length; i++) assert.ok(r.packets[i].tsMs >= r.packets[i - 1].tsMs);
      // milliseconds since the epoch (not seconds, not microseconds)
      assert.ok(r.packets[0].tsMs > 1e12 && r.packets[0].tsMs < 1e14, String(r.packets[0].tsMs));
    }
  });
});
