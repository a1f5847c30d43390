/**
 * Tracker differential tests against the kernel (issues 4, 5): scripted traffic goes through
 * a lab gateway that uses the kernel's own conntrack (iptables-restore counter rules, one per
 * ctstate, in mangle PREROUTING); tcpdump captures every packet arriving at gw; the capture is
 * replayed through `nfqwall replay --table --json`. Compared per scenario:
 *   - the connection table: protocol, TCP state, original/reply tuples, [UNREPLIED]/[ASSURED],
 *     timeout class (the remaining timeout bucketed to the kernel's default timeout classes);
 *   - how many packets (from lab addresses) the kernel saw as NEW/ESTABLISHED/RELATED/INVALID/
 *     UNTRACKED vs the replay's per-packet ctstate.
 * Needs root. One lab for the file, destroyed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, LAB_ADDR as A } from '../../src/lab/netns';
import {
  Capture,
  disableOffload,
  comparableTable,
  CtEntry,
  isLabSource,
  isNeighbourDiscovery,
  KernelGw,
  replay,
  replayCtstateCounts,
  ROOT,
  sleep,
  watch,
} from '../helpers/kernel';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root (network namespaces, kernel conntrack)' : false;
if (skip) process.stderr.write(`kernel-diff-conntrack skipped: ${skip}\n`);

const SCAPY = path.join(ROOT, 'test', 'helpers', 'ct_scenarios.py');
const T = { timeout: 60_000 };

describe('tracker differential against the kernel (conntrack -L, ctstate counters)', { skip }, () => {
  let lab: Lab;
  let gw: KernelGw;
  let tmp: string;
  let nCap = 0;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-kdiff-'));
    lab = await Lab.create({ prefix: 'kdct' });
    gw = new KernelGw(lab);
    await gw.installCtstateCounters();
    // veth hands packets on with partial checksums (offload): the capture would hold packets
    // whose checksum is not filled in. Software checksums make the capture what the wire carries.
    await disableOffload(lab);
    // nf_conntrack_log_invalid shows the kernel's reasons in dmesg when a scenario disagrees
    await gw.sysctl('net.netfilter.nf_conntrack_log_invalid', 255);
    // the cli kernel must not answer the scripted connections' SYN/ACKs with RSTs
    for (const bin of ['iptables', 'ip6tables']) {
      await lab.exec('cli', [bin, '-w', '-A', 'OUTPUT', '-p', 'tcp', '--tcp-flags', 'RST', 'RST', '-j', 'DROP'], { check: true });
    }
    // srv: TCP sink on 8080 (v4+v6), 8081 closed, 8082 silently dropped, UDP echo on 5353
    await lab.exec('srv', ['iptables', '-w', '-A', 'INPUT', '-p', 'tcp', '--dport', '8082', '-j', 'DROP'], { check: true });
    lab.spawn('srv', ['socat', '-u', 'TCP6-LISTEN:8080,fork,reuseaddr,ipv6only=0', 'OPEN:/dev/null']);
    const udp = watch(lab.spawn('srv', ['node', 'test/helpers/udp.js', 'server', A.srv4, '5353'], { cwd: ROOT }));
    await udp.waitFor(/READY/);
    for (;;) {
      const r = await lab.exec('srv', ['ss', '-Hltn', 'sport = :8080']);
      if (r.stdout.trim()) break;
      await sleep(50);
    }
  });

  after(async () => {
    await lab?.destroy();
    if (tmp && !process.env.NFQW_KEEP_CAPTURES) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Scripted traffic from cli (scapy scenario or a plain command). */
  async function scapy(name: string): Promise<void> {
    const r = await lab.exec('cli', ['/usr/bin/python3', SCAPY, name], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `scenario ${name} failed: ${r.stderr}`);
  }

  interface Outcome {
    kernelTable: CtEntry[];
    replayTable: CtEntry[];
    kernel: Record<string, number>;
    nfqwall: Record<string, number>;
    /** neighbour discovery (kept out of the ctstate counts): the kernel's count, nfqwall's ctstates for them */
    kernelNd: number;
    nfqwallNd: string[];
    file: string;
  }

  /**
   * Flushes the kernel table, zeroes the counters, captures while `traffic` runs, and returns
   * both views. `replayArgs` are passed to nfqwall replay (e.g. --set for tunables).
   */
  async function differential(traffic: () => Promise<void>, replayArgs: string[] = [], prepare?: () => Promise<void>): Promise<Outcome> {
    await gw.flush();
    const file = path.join(tmp, `cap${++nCap}.pcap`);
    if (prepare) await prepare();
    const cap = await Capture.start(lab, 'gw', file);
    await gw.zeroCounters();
    try {
      await traffic();
    } finally {
      await cap.stop(); // a capture that lost packets proves nothing either way: stop() throws
    }
    const kernel = await gw.ctstateCounts();
    const kernelNd = await gw.ndCount();
    const kernelTable = await gw.table();
    const r = await replay(lab, file, replayArgs);
    const nfqwallNd = r.packets.filter((p) => isLabSource(p.src) && isNeighbourDiscovery(p)).map((p) => p.ctstate);
    return { kernelTable, replayTable: r.table, kernel, nfqwall: replayCtstateCounts(r.packets), kernelNd, nfqwallNd, file };
  }

  async function dmesgHint(): Promise<string> {
    return '';
  }

  function assertSame(o: Outcome, expectSome: { tables?: boolean } = {}) {
    const msg = `capture ${o.file}\nkernel:\n${o.kernelTable.map((e) => e.line).join('\n')}\nnfqwall:\n${o.replayTable.map((e) => e.line).join('\n')}`;
    assert.deepEqual(o.nfqwall, o.kernel, `ctstate counts differ (nfqwall vs kernel)\n${msg}`);
    assert.deepEqual(comparableTable(o.replayTable), comparableTable(o.kernelTable), `tables differ\n${msg}`);
    if (expectSome.tables !== false) assert.ok(o.kernelTable.length > 0, 'the scenario left no entries in the kernel table');
  }
  void dmesgHint;

  /** `kernel`: what the scenario is meant to provoke, checked on the kernel's side (so a scenario that stops provoking it fails). */
  const scenario = (
    name: string,
    traffic: () => Promise<void>,
    opts: { replayArgs?: string[]; tables?: boolean; kernel?: (c: Record<string, number>, table: CtEntry[]) => void; check?: (o: Outcome) => void } = {},
  ) =>
    test(name, T, async (t) => {
      const o = await differential(traffic, opts.replayArgs ?? []);
      t.diagnostic(`kernel ctstates ${JSON.stringify(o.kernel)}, neighbour discovery ${o.kernelNd}; ${o.kernelTable.map((e) => e.line).join(' | ')}`);
      assertSame(o, { tables: opts.tables });
      if (opts.kernel) opts.kernel(o.kernel, o.kernelTable);
      if (opts.check) opts.check(o);
    });

  scenario('TCP handshake + data + FIN close (scapy)', () => scapy('tcp_fin'));
  scenario('TCP handshake + data + FIN close (socat, real stacks)', async () => {
    await lab.exec('cli', ['sh', '-c', `head -c 200000 /dev/zero | socat -u - TCP4:${A.srv4}:8080`], { check: true });
  });
  scenario('TCP RST close', () => scapy('tcp_rst'));
  // the kernel deletes an entry whose only reply is a RST (checked: the table is empty on both sides)
  scenario('TCP SYN to a closed port (RST answer)', () => scapy('tcp_closed_port'), { tables: false });
  scenario('TCP SYN retransmissions unanswered', () => scapy('tcp_syn_unanswered'));
  scenario('TCP NULL / Xmas / SYN+FIN flag combinations (INVALID)', () => scapy('tcp_bad_flags'), { kernel: (c) => assert.ok(c.INVALID >= 6) });
  scenario('TCP out-of-window data', () => scapy('tcp_out_of_window'), { kernel: (c) => assert.ok(c.INVALID > 0) });
  scenario('TCP ACK of unseen data', () => scapy('tcp_ack_unseen'), { kernel: (c) => assert.ok(c.INVALID > 0) });
  scenario('TCP TIME_WAIT reopen (new SYN with the same ports)', () => scapy('tcp_timewait_reopen'), { kernel: (c) => assert.equal(c.NEW, 2) });
  scenario('IPv6 TCP handshake + data + FIN close', () => scapy('tcp6'));
  scenario('IPv6 TCP (socat, real stacks)', async () => {
    await lab.exec('cli', ['sh', '-c', `head -c 100000 /dev/zero | socat -u - TCP6:[${A.srv6}]:8080`], { check: true });
  });

  for (const loose of [1, 0]) {
    test(`TCP mid-stream pickup (kernel table flushed mid-flow, replay starts mid-flow), tcp_loose=${loose}`, T, async () => {
      let child: ChildProcess | undefined;
      let w: ReturnType<typeof watch> | undefined;
      await gw.sysctl('net.netfilter.nf_conntrack_tcp_loose', loose);
      try {
        const o = await differential(
          async () => {
            child!.stdin!.write('go\n');
            assert.equal(await w!.exited, 0, `scenario failed: ${w!.err}`);
          },
          ['--set', `net.netfilter.nf_conntrack_tcp_loose=${loose}`],
          async () => {
            // phase 1 runs before the capture; differential() flushed the kernel table before this
            child = lab.spawn('cli', ['/usr/bin/python3', SCAPY, 'tcp_midstream']);
            w = watch(child);
            await w.waitFor(/PHASE1/);
            await gw.flush();
          },
        );
        assertSame(o, { tables: loose === 1 });
        if (loose === 0) assert.ok(o.kernel.INVALID > 0, 'with tcp_loose=0 the kernel should count mid-stream packets INVALID');
      } finally {
        await gw.sysctl('net.netfilter.nf_conntrack_tcp_loose', 1);
      }
    });
  }

  scenario('UDP request/response', () => scapy('udp_reqresp'));
  scenario('UDP stream lasting more than 2 s (ASSURED)', () => scapy('udp_stream'), { kernel: (_c, tab) => assert.ok(tab[0]?.assured) });
  scenario('ICMP echo (ping)', async () => {
    await lab.exec('cli', ['ping', '-c', '3', '-i', '0.2', '-W', '2', A.srv4], { check: true });
  });
  scenario('ICMP unsolicited echo reply (INVALID)', () => scapy('icmp_unsolicited_reply'), { tables: false, kernel: (c) => assert.equal(c.INVALID, 1) });
  scenario('ICMP port unreachable for a UDP flow (RELATED)', () => scapy('icmp_port_unreach'), { kernel: (c) => assert.equal(c.RELATED, 1) });
  scenario('ICMP/ICMPv6 error about an unknown flow (INVALID)', () => scapy('icmp_unknown_error'), {
    tables: false,
    kernel: (c) => assert.equal(c.INVALID, 2),
  });
  scenario('IPv6 no next header (59), bare and after an extension header (INVALID)', () => scapy('ipv6_no_next_header'), {
    tables: false,
    kernel: (c) => assert.equal(c.INVALID, 2),
  });
  scenario('ICMPv6 echo (ping -6)', async () => {
    await lab.exec('cli', ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', A.srv6], { check: true });
  });
  scenario(
    'ICMPv6 neighbour discovery (UNTRACKED)',
    async () => {
      await lab.exec('cli', ['ip', '-6', 'neigh', 'flush', 'dev', 'c0'], { check: true });
      await lab.exec('gw', ['ip', '-6', 'neigh', 'flush', 'dev', 'g1'], { check: true });
      await lab.exec('cli', ['ping', '-6', '-c', '1', '-W', '3', A.srv6], { check: true });
    },
    {
      // counted apart from the ctstates (a NUD probe may come after the capture stopped), so
      // compared as: the kernel saw some, the capture holds some, and nfqwall left all untracked
      check: (o) => {
        assert.ok(o.kernelNd > 0, 'the kernel saw no neighbour discovery');
        assert.ok(o.nfqwallNd.length > 0, 'the capture holds no neighbour discovery');
        assert.deepEqual(new Set(o.nfqwallNd), new Set(['UNTRACKED']), `nfqwall's ctstates for neighbour discovery: ${o.nfqwallNd.join(' ')}`);
      },
    },
  );
});
