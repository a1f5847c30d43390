/**
 * SCTP differential (issue 17): the kernel's nf_conntrack_proto_sctp and xt_sctp vs nfqwall's
 * tracker and -m sctp. One rule file (a stateful policy: ESTABLISHED,RELATED accepted, INVALID
 * dropped, new SCTP associations only from the inside, by INIT or HEARTBEAT, to port 5000)
 * loaded into a kernel gateway (iptables-restore) and run by `nfqwall run --rules FILE` in a
 * second lab's gateway. This kernel has no SCTP sockets, so both ends are scripted
 * (test/helpers/sctp_peer.py, scapy's SCTP layers): the steps of associations A (INIT,
 * INIT_ACK, COOKIE_ECHO, COOKIE_ACK, DATA/SACK, HEARTBEAT, SHUTDOWN, SHUTDOWN_ACK,
 * SHUTDOWN_COMPLETE), B (picked up by its HEARTBEAT, closed by an ABORT with the T flag) and
 * packets that must not pass (wrong vtags, a bad CRC32c, chunks out of state or out of order,
 * chunks that cannot start an association, a NEW association from outside) and D (over IPv6:
 * the file has no addresses, so the same rules hold for both families). After each step,
 * compared: whether the packet arrived at the other end (each step is followed by a datagram the
 * policy passes; when it has arrived, so has the step's packet if it passed), and the SCTP
 * entries (`conntrack -L -p sctp` vs `nfqwall conntrack -L -p sctp`: state, tuples, [UNREPLIED],
 * [ASSURED], and the state's timeout: each SCTP timeout sysctl is set to its own multiple of
 * 10000 s in both, so the remaining time names the state the timeout came from); at the end the
 * FORWARD rule counters. Needs root. Both labs are destroyed in after() even on failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab } from '../../src/lab/netns';
import { NFQWALL, parseCtList, ROOT, tupleKey, watch, type CtEntry } from '../helpers/kernel';
import type { Watched } from '../helpers/watch';

const isRoot = process.getuid?.() === 0;
const ADDON = path.join(ROOT, 'build', 'Release', 'nfqwall.node');
const skip = !isRoot ? 'needs root' : !fs.existsSync(ADDON) ? 'native addon not built' : false;
if (skip) process.stderr.write(`kernel-diff-sctp skipped: ${skip}\n`);
const T = { timeout: 600_000 };
const PEER = path.join(ROOT, 'test', 'helpers', 'sctp_peer.py');

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i g0 -p sctp -m sctp --dport 5000 --chunk-types any INIT,HEARTBEAT -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp -m udp --dport 9999 -j ACCEPT
COMMIT
`;

/** net.netfilter.nf_conntrack_sctp_timeout_<state>: each its own multiple of 10000 s */
const TIMEOUTS: Record<string, number> = {
  closed: 10000,
  cookie_wait: 20000,
  cookie_echoed: 30000,
  established: 40000,
  shutdown_sent: 50000,
  shutdown_recd: 60000,
  shutdown_ack_sent: 70000,
  heartbeat_sent: 80000,
};
const sysctls = Object.entries(TIMEOUTS).map(([k, v]) => `net.netfilter.nf_conntrack_sctp_timeout_${k}=${v}`);

/**
 * The steps in order: who sends (as sctp_peer.py's table says), whether the kernel passes the
 * packet, and the state the kernel's entry of that association has afterwards (checked on the
 * kernel's side, so that a step that stops provoking what it is there for fails).
 */
const STEPS: [name: string, from: 'cli' | 'srv', passes: boolean, kernelState?: string][] = [
  ['srv_init_from_outside', 'srv', false],
  ['a_data_before_init', 'cli', false],
  ['c_init_nonzero_vtag', 'cli', false],
  ['a_init', 'cli', true, 'CLOSED'],
  ['a_init_retransmit', 'cli', true, 'CLOSED'],
  ['a_init_ack', 'srv', true, 'COOKIE_WAIT'],
  ['a_cookie_echo', 'cli', true, 'COOKIE_ECHOED'],
  ['a_cookie_ack', 'srv', true, 'ESTABLISHED'],
  ['a_data', 'cli', true, 'ESTABLISHED'],
  ['a_sack', 'srv', true],
  ['a_data_and_sack_bundled', 'srv', true],
  ['a_data_wrong_vtag', 'cli', false],
  ['srv_data_wrong_vtag', 'srv', false],
  ['a_data_bad_crc', 'cli', false],
  ['a_cookie_echo_not_first', 'cli', false],
  ['a_heartbeat', 'cli', true],
  ['a_heartbeat_ack', 'srv', true, 'ESTABLISHED'],
  ['b_heartbeat', 'cli', true, 'HEARTBEAT_SENT'],
  ['b_srv_init_out_of_state', 'srv', false, 'HEARTBEAT_SENT'],
  ['b_heartbeat_ack', 'srv', true, 'ESTABLISHED'],
  ['b_data', 'cli', true],
  ['b_abort_wrong_tag', 'srv', false, 'ESTABLISHED'],
  ['b_abort_t', 'srv', true, 'CLOSED'],
  ['a_shutdown', 'cli', true, 'SHUTDOWN_SENT'],
  ['a_shutdown_ack', 'srv', true, 'SHUTDOWN_ACK_SENT'],
  ['a_shutdown_complete', 'cli', true, 'CLOSED'],
  ['a_data_after_close', 'cli', true, 'CLOSED'],
  ['c_cookie_ack_ootb', 'cli', false],
  ['c_abort_ootb', 'cli', false],
  ['d_init', 'cli', true, 'CLOSED'],
  ['d_init_ack', 'srv', true, 'COOKIE_WAIT'],
  ['d_cookie_echo', 'cli', true, 'COOKIE_ECHOED'],
  ['d_cookie_ack', 'srv', true, 'ESTABLISHED'],
  ['d_data', 'cli', true],
  ['d_data_wrong_vtag', 'srv', false, 'ESTABLISHED'],
  ['d_abort', 'srv', true, 'CLOSED'],
];

/** the client port of each association (sctp_peer.py) */
const ASSOC_PORT: Record<string, number> = { a: 40001, b: 40002, d: 40011 };

/** `[pkts:bytes] -A FORWARD …` counters in order. */
function forwardCounters(save: string): number[] {
  const out: number[] = [];
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    const m = /^\[(\d+):(\d+)\]\s+-A\s+FORWARD\s/.exec(line.trim());
    if (m && table === 'filter') out.push(Number(m[1]));
  }
  return out;
}

/** What is compared of an SCTP entry: the timeout only as the multiple of 10000 s it counts down from. */
function shape(e: CtEntry) {
  return {
    state: e.state,
    orig: tupleKey(e.orig),
    reply: tupleKey(e.reply),
    unreplied: e.unreplied,
    assured: e.assured,
    timeoutOf: Math.ceil(e.timeout / 10000) * 10000,
  };
}
const shapes = (entries: CtEntry[]) =>
  entries
    .filter((e) => e.proto === 'sctp')
    .map(shape)
    .sort((a, b) => (a.orig < b.orig ? -1 : 1));

describe('SCTP differential: nf_conntrack_proto_sctp and xt_sctp in the kernel vs nfqwall run', { skip }, () => {
  let kLab: Lab;
  let nLab: Lab;
  let nfq: ChildProcess | undefined;
  const peers = new Map<Lab, Record<'cli' | 'srv', Watched>>();
  const control = `/tmp/nfqw-sctpdiff-${process.pid}.sock`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-sctpdiff-'));
  const rulesFile = path.join(dir, 'sctp.rules');
  fs.writeFileSync(rulesFile, RULES);
  const nfqwall = (args: string[]) =>
    nLab.exec('gw', ['node', NFQWALL, ...args, '--control', control], { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } });

  before(async () => {
    [kLab, nLab] = await Promise.all([Lab.create({ prefix: 'sdk' }), Lab.create({ prefix: 'sdn' })]);
    for (const lab of [kLab, nLab]) {
      // no SCTP in these kernels: without the rule each end would answer every SCTP packet with
      // an ICMP protocol unreachable (the sniffers see the packets before the rule drops them)
      for (const end of ['cli', 'srv'])
        for (const bin of ['iptables', 'ip6tables']) await lab.exec(end, [bin, '-w', '-A', 'INPUT', '-p', 'sctp', '-j', 'DROP'], { check: true });
    }
    // the file has no addresses: the same rules for both families, as nfqwall applies it
    await kLab.exec('gw', ['iptables-restore', '-w'], { input: RULES, check: true });
    await kLab.exec('gw', ['ip6tables-restore', '-w'], { input: RULES, check: true });
    for (const s of sysctls) await kLab.exec('gw', ['sysctl', '-qw', s], { check: true });
    nfq = nLab.spawn(
      'gw',
      ['node', NFQWALL, 'run', '--rules', rulesFile, '--queue', '5', '--iptables', 'auto', '--control', control, ...sysctls.flatMap((s) => ['--set', s])],
      { cwd: ROOT, env: { ...process.env, NFQWALL_FROM_SOURCE: '1' } },
    );
    await watch(nfq).waitFor(/"portids"/, 'err');
    for (const lab of [kLab, nLab]) {
      const ends = {} as Record<'cli' | 'srv', Watched>;
      for (const end of ['cli', 'srv'] as const) {
        // one CPU: a step's packet and the datagram after it are forwarded in the order sent
        ends[end] = watch(lab.spawn(end, ['taskset', '-c', '0', '/usr/bin/python3', PEER, end]), { timeoutMs: 120_000 });
      }
      await Promise.all([ends.cli.waitFor(/^READY$/m), ends.srv.waitFor(/^READY$/m)]);
      peers.set(lab, ends);
    }
  });

  after(async () => {
    for (const [lab, ends] of peers) for (const w of Object.values(ends)) await lab.kill(w.child);
    if (nfq && nLab) await nLab.kill(nfq);
    await Promise.all([kLab?.destroy(), nLab?.destroy()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let nMark = 0;
  /** Sends the step's packet, then a mark; once the mark has arrived, whether the packet had. */
  async function step(lab: Lab, name: string, from: 'cli' | 'srv'): Promise<boolean> {
    const ends = peers.get(lab)!;
    const to = ends[from === 'cli' ? 'srv' : 'cli'];
    const mark = ++nMark;
    const before = to.out.length;
    ends[from].child.stdin!.write(`send ${name}\n${name.startsWith('d_') ? 'mark6' : 'mark'} ${mark}\n`);
    const re = new RegExp(`^MARK ${mark}$`, 'm');
    await to.waitFor(re);
    const seen = to.out.slice(before, to.out.search(re));
    return seen.split('\n').some((l) => l.startsWith('RX ') && l.slice(3).split(',').includes(name));
  }

  async function tables(): Promise<[CtEntry[], CtEntry[]]> {
    const k: CtEntry[] = [];
    const n: CtEntry[] = [];
    for (const f of ['ipv4', 'ipv6']) {
      k.push(...parseCtList((await kLab.exec('gw', ['conntrack', '-L', '-p', 'sctp', '-f', f], { check: true })).stdout));
      const r = await nfqwall(['conntrack', '-L', '-p', 'sctp', '-f', f]);
      assert.equal(r.code, 0, r.stderr);
      n.push(...parseCtList(r.stdout));
    }
    return [k, n];
  }

  test('each step: the same packets arrive and the same SCTP entries; then the same rule counters', T, async (t) => {
    for (const [name, from, passes, kernelState] of STEPS) {
      const [k, n] = await Promise.all([step(kLab, name, from), step(nLab, name, from)]);
      const [kt, nt] = await tables();
      const lines = `kernel:\n${kt.map((e) => e.line).join('\n')}\nnfqwall:\n${nt.map((e) => e.line).join('\n')}`;
      t.diagnostic(`${name}: kernel ${k ? 'passed' : 'dropped'}, nfqwall ${n ? 'passed' : 'dropped'} | ${kt.map((e) => e.line).join(' | ')}`);
      assert.equal(k, passes, `${name}: the kernel ${k ? 'passed' : 'dropped'} it\n${lines}`);
      assert.equal(n, k, `${name}: nfqwall ${n ? 'passed' : 'dropped'} it, the kernel did not\n${lines}`);
      assert.deepEqual(shapes(nt), shapes(kt), `${name}: the SCTP entries differ\n${lines}`);
      if (kernelState) {
        const port = ASSOC_PORT[name[0]];
        const e = kt.find((x) => x.orig.l4 === `sport=${port} dport=5000`);
        assert.equal(e?.state, kernelState, `${name}: the kernel's entry\n${lines}`);
      }
    }
    const ksave = (await kLab.exec('gw', ['iptables-save', '-c'], { check: true })).stdout;
    const ksave6 = (await kLab.exec('gw', ['ip6tables-save', '-c'], { check: true })).stdout;
    const nl = await nfqwall(['rules', '-L', '-v']);
    assert.equal(nl.code, 0, nl.stderr);
    // nfqwall counts each rule over both families
    const kc = forwardCounters(ksave).map((c, i) => c + forwardCounters(ksave6)[i]);
    assert.deepEqual(forwardCounters(nl.stdout), kc, `FORWARD counters differ\nkernel:\n${ksave}\n${ksave6}\nnfqwall:\n${nl.stdout}`);
    assert.equal(kc[1], 11, 'the kernel dropped the eleven invalid packets as INVALID');
  });
});
