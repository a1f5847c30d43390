/**
 * The state file as an attacker would use it (issue #18 point 2): forged entries with huge
 * timeouts, entries no tracker produces, a file or directory another user can write, a link
 * planted at the temporary name, and a 1 GB file — each refused or bounded.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkRestoredEntry } from '../../../src/conntrack/restore-check';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { TUPLE_WORDS } from '../../../src/conntrack/layout';
import { AtomicFile } from '../../../src/daemon/atomic-file';
import { forEachLine } from '../../../src/daemon/line-reader';
import { restoreState, saveState, STATE_FORMAT, STATE_VERSION } from '../../../src/daemon/state';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD } from '../../../src/queue/layout';
import { ipv4, tcp, udp } from '../../helpers/packets';
import { runBoundedChild } from '../../helpers/bounded-child';
import { makeCt } from '../conntrack/util';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-statesec-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
const ROOT = path.resolve(__dirname, '..', '..', '..');

const C = 0xc6120101; // 198.18.1.1
const S = 0xc6130201; // 198.19.2.1
function tuple(proto: number, ports: number, family = 4): number[] {
  const t = new Array(TUPLE_WORDS).fill(0);
  t[0] = (family << 8) | proto;
  t[1] = C;
  t[5] = S;
  t[9] = ports >>> 0;
  return t;
}
/** save()'s 22 values of an ESTABLISHED TCP entry (state 3), windows open, nothing unacknowledged */
const TCP_ESTABLISHED = [3, 0, 0, 2, 1000, 900_001, 2001, 509, 0, 0, 2001, 66536, 65536, 900_101, 7, 0, 900_101, 901_101, 65536, 2001, 7, 0];

function stateFile(name: string, entries: object[], savedAt = 1_700_000_000_000): string {
  const f = path.join(dir, name);
  const lines = [
    JSON.stringify({ format: STATE_FORMAT, version: STATE_VERSION, savedAt, entries: entries.length, expectations: 0 }),
    ...entries.map((e) => JSON.stringify(e)),
    JSON.stringify({ end: true, entries: entries.length, expectations: 0 }),
  ];
  fs.rmSync(f, { force: true });
  fs.writeFileSync(f, lines.join('\n') + '\n', { mode: 0o600 });
  return f;
}

/** Rules that admit nothing NEW to the forbidden ports: only an entry can let these flows through. */
function firewall(): Firewall {
  const text = `*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\nCOMMIT\n`;
  const loaded = loadRuleText(text, 'x.rules', { log: () => {} });
  assert.ok(loaded.rules, loaded.errors.join('\n'));
  const tun = defaultTunables(1 << 30);
  tun.nf_conntrack_tcp_loose = 0;
  return new Firewall({ tun, rules: loaded.rules! });
}
const send = (fw: Firewall, p: Uint8Array, now: number) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, 4, 2, 3, 0, 0, now);
const forbiddenUdp = () => ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 40000, dport: 6666, payload: 'x' }));
const forbiddenTcp = () => ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40001, dport: 6667, flags: 'A', seq: 2001, ack: 900_101, window: 502 }));
const FORGED = [
  { tuple: tuple(17, (40000 << 16) | 6666), status: 0xe, timeoutMs: 1e12, ageMs: 0, mark: 0, helper: '', proto: [] },
  { tuple: tuple(6, (40001 << 16) | 6667), status: 0xe, timeoutMs: 1e308, ageMs: 0, mark: 0, helper: '', proto: TCP_ESTABLISHED },
];

describe('state file: forged contents', () => {
  test('forged ASSURED entries with huge timeouts live no longer than their state allows under the current tunables', () => {
    const f = stateFile('forged.state', FORGED);
    const fw = firewall();
    const r = restoreState(fw.ct, f, { now: 0, wallNow: 1_700_000_000_000 });
    assert.equal(r.ignored, undefined);
    assert.equal(r.restored, 2);
    const tun = fw.ct.tun;
    // they pass while they may exist (a genuine file says the same) ...
    assert.equal(send(fw, forbiddenUdp(), 1000), NF_ACCEPT);
    // ... but the UDP entry's life is nf_conntrack_udp_timeout_stream from its last packet, not 10^12 ms
    assert.equal(send(fw, forbiddenUdp(), 1000 + tun.nf_conntrack_udp_timeout_stream * 1000 + 1), NF_DROP);
    // the TCP entry was restored with at most nf_conntrack_tcp_timeout_established
    const exported = [...fw.ct.entries(0)].map((e) => fw.ct.exportEntry(e, 0));
    const tcpEntry = exported.find((e) => (e.tuple[0] & 0xff) === 6)!;
    assert.ok(tcpEntry.timeoutMs <= tun.nf_conntrack_tcp_timeout_established * 1000, String(tcpEntry.timeoutMs));
    assert.equal(send(fw, forbiddenTcp(), tun.nf_conntrack_tcp_timeout_established * 1000 + 1), NF_DROP);
  });

  test('a lowered tunable lowers the restored timeout: the entry cannot outlive its state', () => {
    const { ct } = makeCt({ nf_conntrack_udp_timeout: 7, nf_conntrack_udp_timeout_stream: 9, nf_conntrack_tcp_timeout_established: 11 });
    const f = stateFile('lowered.state', [
      ...FORGED,
      { tuple: tuple(17, (40002 << 16) | 6666), status: 0, timeoutMs: 1e12, ageMs: 0, mark: 0, helper: '', proto: [] },
    ]);
    assert.equal(restoreState(ct, f, { now: 0, wallNow: 1_700_000_000_000 }).restored, 3);
    const left = [...ct.entries(0)].map((e) => ct.exportEntry(e, 0)).map((e) => [(e.tuple[9] >>> 16) & 0xffff, e.timeoutMs]);
    assert.deepEqual(
      left.sort((a, b) => a[0] - b[0]),
      [
        [40000, 9000],
        [40001, 11000],
        [40002, 7000],
      ],
    );
  });

  test('entries no tracker could have produced are refused, each with a reason', () => {
    const { ct } = makeCt();
    const base = { tuple: tuple(17, (1 << 16) | 2), status: 0, timeoutMs: 1000, ageMs: 0, mark: 0, helper: '', proto: [] };
    const cases: [string, object, RegExp][] = [
      ['ASSURED UDP never replied', { ...base, status: 0x4 }, /ASSURED without SEEN_REPLY/],
      ['unknown status bits', { ...base, status: 0x8 | (1 << 10) }, /status bits 0x400/],
      ['a dying entry', { ...base, status: 0x8 | (1 << 9) }, /status bits 0x200/],
      ['ASSURED ICMP', { ...base, tuple: tuple(1, (7 << 16) | (8 << 8)), status: 0x6 }, /icmp entry no packets/],
      ['an ICMP entry created by a reply', { ...base, tuple: tuple(1, (7 << 16) | (0 << 8)) }, /icmp entry no packets/],
      ['ICMP in IPv6', { ...base, tuple: tuple(1, (7 << 16) | (8 << 8), 6) }, /icmp entry no packets/],
      ['ICMPv6 in IPv4', { ...base, tuple: tuple(58, (7 << 16) | (128 << 8)) }, /icmpv6 entry no packets/],
      ['generic with ports', { ...base, tuple: tuple(47, 5) }, /unknown entry no packets/],
      ['TCP state NONE', { ...base, tuple: tuple(6, 5), proto: [0, ...TCP_ESTABLISHED.slice(1)] }, /tcp entry no packets/],
      ['TCP state 12', { ...base, tuple: tuple(6, 5), proto: [12, ...TCP_ESTABLISHED.slice(1)] }, /tcp entry no packets/],
      ['TCP window scale 15', { ...base, tuple: tuple(6, 5), proto: TCP_ESTABLISHED.map((v, i) => (i === 14 ? 15 : v)) }, /tcp entry no packets/],
      ['TCP short state', { ...base, tuple: tuple(6, 5), proto: [3] }, /tcp entry no packets/],
      ['UDP with protocol state', { ...base, proto: [1] }, /udp entry no packets/],
      ['IPv4 tuple with IPv6 words', { ...base, tuple: tuple(17, 5).map((v, i) => (i === 2 ? 1 : v)) }, /IPv6 address words/],
      ['family 5', { ...base, tuple: tuple(17, 5, 5) }, /neither IPv4 nor IPv6/],
      ['a timeout of 1e999', { ...base, timeoutMs: Infinity }, /not a finite number/],
      ['a negative age', { ...base, ageMs: -1 }, /age/],
      ['the FTP helper on UDP', { ...base, helper: 'ftp' }, /no helper "ftp" for protocol 17/],
      ['an unknown helper', { ...base, tuple: tuple(6, 5), proto: TCP_ESTABLISHED, helper: 'sip' }, /no helper "sip"/],
    ];
    for (const [name, d, re] of cases) {
      const r = checkRestoredEntry(ct, JSON.parse(JSON.stringify(d)), 0);
      assert.equal(typeof r, 'string', name);
      assert.match(r as string, re, name);
    }
    // and a file with them restores none, reporting the first
    const f = stateFile(
      'impossible.state',
      cases.map((c) => c[1]),
    );
    const r = restoreState(ct, f, { now: 0, wallNow: 1_700_000_000_000 });
    assert.equal(r.restored, 0);
    assert.equal(r.refused, cases.length);
    assert.match(String(r.firstRefusal), /^line 2: ASSURED without SEEN_REPLY$/);
    assert.equal(ct.count, 0);
  });

  test('what this daemon saves passes the same checks (TCP, UDP, ICMP entries of real packets)', async () => {
    const fw = firewall();
    const a = makeCt();
    const { pass } = require('../conntrack/util') as typeof import('../conntrack/util');
    pass(a.ct, ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ flags: 'S', sport: 3000, dport: 80 })), 1000);
    pass(a.ct, ipv4({ src: '198.19.2.1', dst: '198.18.1.1' }, tcp({ flags: 'SA', sport: 80, dport: 3000, ack: 1 })), 1001);
    pass(a.ct, ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 3001, dport: 53 })), 1000);
    pass(a.ct, ipv4({ src: '198.19.2.1', dst: '198.18.1.1' }, udp({ sport: 53, dport: 3001 })), 1001);
    const f = path.join(dir, 'genuine.state');
    await saveState(a.ct, f, { now: 1002, wallNow: 1_700_000_000_000 });
    const r = restoreState(fw.ct, f, { now: 0, wallNow: 1_700_000_000_000 });
    assert.deepEqual([r.restored, r.refused, r.firstRefusal], [2, 0, undefined]);
  });
});

describe('state file: who may write it', { skip: !isRoot && 'needs root (chown)' }, () => {
  const good = () => stateFile('who.state', [FORGED[0]]);

  test('a file or directory writable by group or others, or owned by another user, is not read, with the reason', () => {
    const cases: [string, () => string, RegExp][] = [
      [
        'file mode 0666',
        () => {
          const f = good();
          fs.chmodSync(f, 0o666);
          return f;
        },
        /not trusted: .*who\.state is writable by its group \(mode 666\)/,
      ],
      [
        'file owned by nobody',
        () => {
          const f = good();
          fs.chownSync(f, 65534, 65534);
          return f;
        },
        /not trusted: .*who\.state is owned by uid 65534, not root/,
      ],
      [
        'directory mode 0777',
        () => {
          const d = fs.mkdtempSync(path.join(dir, 'open-'));
          fs.chmodSync(d, 0o777);
          fs.copyFileSync(good(), path.join(d, 'x.state'));
          return path.join(d, 'x.state');
        },
        /not trusted: directory .*open-\w+ is writable by its group \(mode 777\)/,
      ],
      [
        'directory owned by nobody',
        () => {
          const d = fs.mkdtempSync(path.join(dir, 'theirs-'));
          fs.copyFileSync(good(), path.join(d, 'x.state'));
          fs.chownSync(d, 65534, 65534);
          return path.join(d, 'x.state');
        },
        /not trusted: directory .*theirs-\w+ is owned by uid 65534/,
      ],
      [
        'a symbolic link',
        () => {
          const l = path.join(dir, 'link.state');
          fs.rmSync(l, { force: true });
          fs.symlinkSync(good(), l);
          return l;
        },
        /not trusted: .*link\.state is a symbolic link/,
      ],
    ];
    for (const [name, make, re] of cases) {
      const { ct } = makeCt();
      const r = restoreState(ct, make(), { now: 0, wallNow: 1_700_000_000_000 });
      assert.match(String(r.ignored), re, name);
      assert.equal(ct.count, 0, name);
    }
    // the file itself, root-owned 0600 in this 0700 directory under the sticky /tmp: read
    const { ct } = makeCt();
    assert.equal(restoreState(ct, good(), { now: 0, wallNow: 1_700_000_000_000 }).restored, 1);
  });

  test('a save into a directory others can write is refused and writes nothing', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'opensave-'));
    fs.chmodSync(d, 0o775);
    const { ct } = makeCt();
    await assert.rejects(
      saveState(ct, path.join(d, 'x.state'), { now: 0 }),
      /refusing to write the state file .*x\.state: directory .* is writable by its group/,
    );
    assert.deepEqual(fs.readdirSync(d), []);
  });

  test('a link planted at a temporary name is never followed: the victim stays, the save lands', async () => {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    const f = path.join(dir, 'planted.state');
    // the name the writer used to take (FILE.tmp-PID), and more guesses
    for (const tag of [String(process.pid), '0', '1']) fs.symlinkSync(victim, `${f}.tmp-${tag}`);
    const { ct } = makeCt();
    ct.importEntry(FORGED[0] as never, 0);
    assert.deepEqual(await saveState(ct, f, { now: 0 }), { entries: 1, expectations: 0 });
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
    assert.equal(fs.lstatSync(f).isFile(), true);
    assert.equal(fs.statSync(f).mode & 0o777, 0o600);
  });

  test('AtomicFile: unpredictable temporary names, O_EXCL (an existing name is an error, not a truncation)', () => {
    const f = path.join(dir, 'atomic');
    const a = new AtomicFile(f);
    const b = new AtomicFile(f);
    const tmps = fs.readdirSync(dir).filter((n) => n.startsWith('atomic.tmp-'));
    assert.equal(tmps.length, 2);
    for (const t of tmps) {
      assert.match(t, /^atomic\.tmp-[0-9a-f]{24}$/);
      assert.equal(fs.lstatSync(path.join(dir, t)).mode & 0o777, 0o600);
    }
    a.write('a\n');
    a.commit();
    b.abort();
    assert.equal(fs.readFileSync(f, 'utf8'), 'a\n');
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.startsWith('atomic.tmp-')),
      [],
    );
  });
});

describe('state file: size', () => {
  test('forEachLine: lines across chunk borders, a last line without a newline, a line too long', () => {
    const f = path.join(dir, 'lines');
    const long = 'y'.repeat(70_000);
    fs.writeFileSync(f, `a\n${'x'.repeat(65_530)}\n\nb\nlast`);
    const fd = fs.openSync(f, 'r');
    const got: string[] = [];
    assert.equal(
      forEachLine(fd, 1 << 16, (l) => (got.push(l.length > 10 ? `${l[0]}*${l.length}` : l), true)),
      undefined,
    );
    assert.deepEqual(got, ['a', 'x*65530', '', 'b', 'last']);
    fs.closeSync(fd);
    fs.writeFileSync(f, `a\n${long}\nb\n`);
    const fd2 = fs.openSync(f, 'r');
    assert.equal(
      forEachLine(fd2, 1 << 16, () => true),
      'line 2 is longer than 65536 bytes',
    );
    fs.closeSync(fd2);
  });

  /** Peak RSS (kB) of a child that restores FILE into a table of nf_conntrack_max MAX, and its result. */
  function restoreInChild(file: string, max: number): { maxRss: number; res: { restored: number; refused: number; ignored?: string } } {
    const code = `const { restoreState } = require(${JSON.stringify(path.join(ROOT, 'src/daemon/state'))});
      const { makeCt } = require(${JSON.stringify(path.join(ROOT, 'test/unit/conntrack/util'))});
      const { ct } = makeCt({ nf_conntrack_max: ${max} });
      const res = restoreState(ct, ${JSON.stringify(file)}, { now: 0, wallNow: 1_700_000_000_000 });
      console.log(JSON.stringify({ maxRss: process.resourceUsage().maxRSS, res }));`;
    const r = runBoundedChild(code, ROOT);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  }

  test('a 1 GB file and a file of 300k entries cost memory bounded by the table, not by their size', () => {
    const small = stateFile('small.state', [FORGED[0]]);
    const base = restoreInChild(small, 1000);
    assert.equal(base.res.restored, 1);
    // 1 GB: a header then zeros (sparse: no disk space, nothing kept)
    const huge = path.join(dir, 'huge.state');
    fs.writeFileSync(huge, JSON.stringify({ format: STATE_FORMAT, version: STATE_VERSION, savedAt: 1, entries: 1, expectations: 0 }) + '\n', { mode: 0o600 });
    fs.truncateSync(huge, 1 << 30);
    const h = restoreInChild(huge, 1000);
    fs.rmSync(huge);
    assert.match(String(h.res.ignored), /line 2 is longer than 65536 bytes/);
    // 300k valid entries (~70 MB) into a table of 1000, streamed to disk
    const many = path.join(dir, 'many.state');
    const fd = fs.openSync(many, 'w', 0o600);
    const N = 300_000;
    fs.writeSync(fd, JSON.stringify({ format: STATE_FORMAT, version: STATE_VERSION, savedAt: 1_700_000_000_000, entries: N, expectations: 0 }) + '\n');
    for (let i = 0; i < N; i += 1000) {
      const lines: string[] = [];
      for (let j = i; j < i + 1000; j++) {
        const t = tuple(6, ((1024 + (j % 60000)) << 16) | (1 + Math.floor(j / 60000)));
        lines.push(JSON.stringify({ tuple: t, status: 0xe, timeoutMs: 100_000, ageMs: 0, mark: 0, helper: '', proto: TCP_ESTABLISHED }));
      }
      fs.writeSync(fd, lines.join('\n') + '\n');
    }
    fs.writeSync(fd, JSON.stringify({ end: true, entries: N, expectations: 0 }) + '\n');
    fs.closeSync(fd);
    const size = fs.statSync(many).size;
    const m = restoreInChild(many, 1000);
    fs.rmSync(many);
    assert.equal(m.res.restored, 1000);
    assert.equal(m.res.refused, N - 1000);
    // a generous bound from the measured baseline, far below what holding the file would take
    const bound = base.maxRss + 48 * 1024;
    assert.ok(h.maxRss < bound, `1 GB file: peak RSS ${h.maxRss} kB, baseline ${base.maxRss} kB`);
    assert.ok(m.maxRss < bound && size / 1024 > 48 * 1024, `${size} B file: peak RSS ${m.maxRss} kB, baseline ${base.maxRss} kB`);
  });
});
