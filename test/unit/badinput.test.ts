/**
 * Bad input everywhere an operator or an attacker can hand nfqwall a file:
 * rule files (`nfqwall check`, and the loader in-process), `--sysctl` files
 * (`nfqwall run` refuses them before touching the queue), capture files
 * (`nfqwall replay`). Each must give a clear message and exit 1 — never a
 * stack trace, never a hang, never exit 0 for garbage.
 * Control-socket and state-file input: see SECURITY.md (added when those land).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRules } from '../../src/rules/index';
import { parseSysctlText } from '../../src/conntrack/settings';
import { readCapture } from '../../src/pcap/read';
import { PcapWriter } from '../../src/pcap/write';
import { ipv4, ipv6, tcp, udp } from '../helpers/packets';
import { Rng } from '../stress/fuzz-gen';

const ROOT = path.join(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/nfqwall.js');
let dir = '';

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-badinput-'));
});
after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function cli(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? ((err as unknown as { code?: unknown }).code as number | null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}
function file(name: string, data: string | Uint8Array): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}
/** No JS stack trace or internal error text leaked to the user. */
function noCrash(r: Run, what: string): void {
  assert.doesNotMatch(
    r.stderr,
    /\n\s+at .+:\d+:\d+\)?\n|Maximum call stack|TypeError|RangeError|ReferenceError|Cannot read propert/,
    `${what}: crash output:\n${r.stderr.slice(0, 2000)}`,
  );
}

// ------------------------------------------------------------ rule files

function deepChains(n: number): string {
  let s = '*filter\n:INPUT ACCEPT [0:0]\n';
  for (let i = 0; i < n; i++) s += `:C${i} - [0:0]\n`;
  s += '-A INPUT -j C0\n';
  for (let i = 0; i < n - 1; i++) s += `-A C${i} -j C${i + 1}\n`;
  return s + `-A C${n - 1} -j ACCEPT\nCOMMIT\n`;
}

const r = new Rng(0xbad1);
const RULE_CASES: { name: string; text: string | Uint8Array; line?: number }[] = [
  { name: 'binary-garbage', text: r.bytes(65536) },
  { name: 'huge-line', text: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT ' + '-s 198.18.0.1 '.repeat(100_000) + '-j ACCEPT\nCOMMIT\n', line: 3 },
  { name: 'huge-token', text: '*filter\n:INPUT ACCEPT [0:0]\n#' + 'x'.repeat(4_000_000) + '\n-A INPUT -j FOO' + 'A'.repeat(200_000) + '\nCOMMIT\n', line: 4 },
  { name: 'deep-recursion', text: deepChains(8000) },
  { name: 'jump-loop', text: '*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -p tcp -g A\nCOMMIT\n', line: 7 },
  { name: 'self-jump', text: '*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n-A INPUT -j A\n-A A -j A\nCOMMIT\n', line: 5 },
  // a loop is refused on the line that makes a built-in chain reach it (iptables-restore: "line 7: … Too many links")
  {
    name: 'loop-reached-from-builtin-later',
    text: '*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\n-A INPUT -j A\nCOMMIT\n',
    line: 7,
  },
  { name: 'nul-bytes', text: Buffer.from('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tc\0p -j ACCEPT\nCOMMIT\n'), line: 3 },
  { name: 'nul-in-chain-name', text: Buffer.from('*filter\n:INPUT ACCEPT [0:0]\n-A INP\0UT -j DROP\nCOMMIT\n'), line: 3 },
  { name: 'no-commit', text: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n' },
  // an unterminated quote runs to the end of the line, as in iptables-restore
  { name: 'unterminated-quote', text: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 99999 -m comment --comment "open -j ACCEPT\nCOMMIT\n', line: 3 },
  // iptables-restore reads "*filter\r" as the table "filter\r": refused at line 1
  { name: 'crlf-bad-port', text: '*filter\r\n:INPUT ACCEPT [0:0]\r\n-A INPUT -p tcp --dport 99999 -j ACCEPT\r\nCOMMIT\r\n', line: 1 },
  { name: 'rule-before-table', text: '-A INPUT -j ACCEPT\n*filter\nCOMMIT\n', line: 1 },
  { name: 'unknown-table', text: '*security\n:INPUT ACCEPT [0:0]\nCOMMIT\n', line: 1 },
  { name: 'bad-cidr', text: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 198.18.0.0/99 -j ACCEPT\n-A INPUT -s 2001:2::/200 -j ACCEPT\nCOMMIT\n', line: 3 },
];

for (const c of RULE_CASES) {
  test(`nfqwall check: ${c.name} → exit 1 with FILE:LINE:COL lines, no crash`, async () => {
    const f = file(`${c.name}.rules`, c.text);
    const res = await cli(['check', f]);
    noCrash(res, c.name);
    assert.equal(res.code, 1, `exit ${res.code}, stderr ${res.stderr.slice(0, 500)}`);
    assert.equal(res.stdout, '');
    const lines = res.stderr.trimEnd().split('\n');
    assert.ok(lines.length > 0);
    const esc = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // after the first 100 errors, one line says how many more there are
    if (lines.length > 100) assert.match(lines.pop()!, /^\d+ more errors? not shown \(\d+ in all; --max-errors 0 shows every one\)$/);
    for (const l of lines.slice(0, 1000)) assert.match(l, new RegExp(`^${esc}:\\d+:\\d+: \\S`), `bad error line: ${l.slice(0, 200)}`);
    if (c.line !== undefined)
      assert.ok(
        lines.some((l) => l.startsWith(`${f}:${c.line}:`)),
        `no error on line ${c.line}: ${lines.slice(0, 5).join(' | ').slice(0, 500)}`,
      );
  });
}

test('rule loader: mutated valid rule files never throw (in-process, 3000 mutants of rules/gateway.rules)', () => {
  const base = fs.readFileSync(path.join(ROOT, 'rules/gateway.rules'), 'utf8');
  const rr = new Rng(77);
  const words = [
    '-j',
    '-g',
    '-A',
    '!',
    '-m',
    '--dport',
    ':',
    '"',
    '#',
    '\0',
    'COMMIT',
    '*filter',
    '*raw',
    '-p',
    'tcp',
    '0/0',
    '::/0',
    '65536',
    '-1',
    '\n',
    '--ctstate',
    'LOG_DROP',
    '--limit',
    '1/d',
    '\\',
  ];
  let errors = 0;
  for (let i = 0; i < 3000; i++) {
    let t = base;
    for (let k = 1 + rr.below(4); k > 0; k--) {
      const at = rr.below(t.length);
      const op = rr.below(3);
      if (op === 0) t = t.slice(0, at) + words[rr.below(words.length)] + t.slice(at);
      else if (op === 1) t = t.slice(0, at) + t.slice(at + rr.below(30));
      else t = t.slice(0, at) + String.fromCharCode(rr.below(256)) + t.slice(at + 1);
    }
    let res;
    try {
      res = loadRules(t, 'mut.rules', { helperId: (n) => (n === 'ftp' ? 1 : 0) });
    } catch (err) {
      fs.writeFileSync(path.join(dir, `crash-${i}.rules`), t);
      assert.fail(`mutant ${i} threw: ${(err as Error).stack}`);
    }
    for (const e of res.errors) {
      assert.ok(e.line >= 1 && e.col >= 1 && typeof e.message === 'string' && e.message.length > 0, JSON.stringify(e));
    }
    if (res.errors.length > 0) errors++;
  }
  assert.ok(errors > 1000, `only ${errors} of 3000 mutants were refused`);
});

// ------------------------------------------------------------ --sysctl files

test('sysctl parser: garbage lines are errors with their line numbers, never exceptions', () => {
  const text = [
    'net.netfilter.nf_conntrack_max = banana',
    '\0\xff\xfe garbage',
    'net.ipv4.ip_forward = 1',
    'net.netfilter.nf_conntrack_max = -5',
    'net.netfilter.nf_conntrack_max = 99999999999999999999',
    'net.netfilter.nf_conntrack_max = 0x10',
    '= 5',
    'net.netfilter.nf_conntrack_max = 1e3',
    '-net.netfilter.nonexistent = 1',
    'net.netfilter.nf_conntrack_max = 65536',
    'x'.repeat(1_000_000) + ' = 1',
  ].join('\n');
  const res = parseSysctlText(text);
  const lines = res.errors.map((e) => e.line);
  for (const l of [1, 2, 3, 4, 5, 7, 11]) assert.ok(lines.includes(l), `no error for line ${l}: ${JSON.stringify(res.errors).slice(0, 400)}`);
  assert.ok(!lines.includes(9), "a leading '-' ignores that line's error, as sysctl does");
  assert.ok(res.settings.some((s) => s.key === 'nf_conntrack_max' && s.value === 65536 && s.line === 10));
  const rr = new Rng(5);
  for (let i = 0; i < 200; i++) parseSysctlText(Buffer.from(rr.bytes(rr.below(4000))).toString('latin1'));
});

test('nfqwall run --sysctl GARBAGE: FILE:LINE errors and exit 1 before anything is opened', async () => {
  const f = file(
    'bad.sysctl',
    Buffer.concat([
      Buffer.from('net.netfilter.nf_conntrack_max = banana\n'),
      Buffer.from(new Rng(9).bytes(300)),
      Buffer.from('\nnet.netfilter.nf_conntrack_buckets=0\n'),
    ]),
  );
  const res = await cli(['run', '--rules', path.join(ROOT, 'rules/lab.rules'), '--sysctl', f, '--iptables', 'off', '--queue', '65000']);
  noCrash(res, 'run --sysctl');
  assert.equal(res.code, 1);
  assert.match(res.stderr, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1: `, 'm'));
  assert.doesNotMatch(res.stderr, /queue 65000|bound|NFQUEUE/i, 'nothing about the queue: it never got that far');
  const missing = await cli(['run', '--rules', path.join(ROOT, 'rules/lab.rules'), '--sysctl', path.join(dir, 'nope.sysctl'), '--iptables', 'off']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.sysctl: cannot read: ENOENT/);
  const set = await cli(['run', '--rules', path.join(ROOT, 'rules/lab.rules'), '--set', 'net.netfilter.nf_conntrack_max=\x01\xff', '--iptables', 'off']);
  assert.equal(set.code, 1);
  noCrash(set, 'run --set');
});

// ------------------------------------------------------------ captures for replay

function validPcap(): Uint8Array {
  const w = new PcapWriter();
  w.add(ipv4({}, tcp({ flags: 'S' })), 1000);
  w.add(ipv4({ src: '198.18.0.2', dst: '198.18.0.1' }, tcp({ sport: 80, dport: 40000, flags: 'SA', ack: 1001 })), 1001);
  w.add(ipv6({}, udp({ payload: 'x' })), 1002);
  const p = path.join(dir, 'valid-tmp.pcap');
  w.writeFile(p);
  return fs.readFileSync(p);
}

test('nfqwall replay: garbage, empty, truncated and lying captures → clear error, exit 1', async () => {
  const valid = validPcap();
  const le = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return b;
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['garbage', new Rng(3).bytes(3000), /not a pcap or pcapng file/],
    ['empty', new Uint8Array(0), /empty file/],
    ['short-header', valid.subarray(0, 10), /truncated/],
    ['cut-in-record', valid.subarray(0, valid.length - 7), /truncated/],
    // a record claiming 4 GB
    [
      'huge-caplen',
      Buffer.concat([Buffer.from(valid.subarray(0, 24)), le(0), le(0), le(0xffffff00), le(0xffffff00), Buffer.alloc(16)]),
      /bad packet record|caplen|captured length/,
    ],
    // pcapng section header with a block length that lies
    ['pcapng-lie', Buffer.concat([le(0x0a0d0d0a), le(0xfffffff0), le(0x1a2b3c4d), Buffer.alloc(20)]), /pcapng|block|truncated|length/i],
  ];
  await Promise.all(
    cases.map(async ([name, data, re]) => {
      const f = file(`${name}.pcap`, data);
      const res = await cli(['replay', f]);
      noCrash(res, name);
      assert.equal(res.code, 1, `${name}: exit ${res.code} ${res.stderr}`);
      assert.match(res.stderr, /^nfqwall replay: /m, name);
      assert.match(res.stderr, re, `${name}: ${res.stderr}`);
    }),
  );
  // the valid file replays fine (the cases above fail for their damage, not for the tool)
  const ok = await cli(['replay', file('valid.pcap', valid)]);
  assert.equal(ok.code, 0, ok.stderr);
  const missing = await cli(['replay', path.join(dir, 'missing.pcap')]);
  assert.equal(missing.code, 1);
  noCrash(missing, 'missing');
});

test('capture reader: 5000 mutated captures never throw; damage is reported with what came before', () => {
  const valid = validPcap();
  const rr = new Rng(11);
  let damaged = 0;
  for (let i = 0; i < 5000; i++) {
    const b = Uint8Array.from(valid);
    let buf: Uint8Array = b;
    const k = rr.below(3);
    if (k === 0) for (let j = 1 + rr.below(6); j > 0; j--) b[rr.below(b.length)] ^= 1 << rr.below(8);
    else if (k === 1) buf = b.subarray(0, rr.below(b.length));
    else for (let j = 0; j < 4; j++) b[24 + 8 + rr.below(8)] = rr.below(256); // record lengths
    const res = readCapture(buf, 'mut.pcap'); // documented never to throw
    if (res.error) {
      damaged++;
      assert.ok(res.error.message.length > 0);
    }
    for (const p of res.packets) assert.ok(p.data.length <= 262144);
  }
  assert.ok(damaged > 1000, `${damaged} damaged`);
});

// ------------------------------------------------------------ state files (--state FILE)

test('state files: corrupt, truncated, future-version and hostile records never throw nor corrupt the table', async () => {
  const { saveState, restoreState } = require('../../src/daemon/state') as typeof import('../../src/daemon/state');
  const { checkConntrack } = require('../../src/conntrack/check') as typeof import('../../src/conntrack/check');
  const { makeCt, pass } = require('./conntrack/util') as typeof import('./conntrack/util');
  const src = makeCt({ nf_conntrack_max: 64 }).ct;
  for (let i = 0; i < 20; i++) {
    pass(src, ipv4({ src: `198.18.0.${i + 1}` }, tcp({ flags: 'S', sport: 3000 + i })), 1000);
    pass(src, ipv4({ src: `198.18.0.${i + 1}` }, udp({ sport: 3000 + i })), 1000);
  }
  const good = path.join(dir, 'good.state');
  await saveState(src, good, { now: 1000, wallNow: 1_700_000_000_000 });
  const text = fs.readFileSync(good, 'utf8');
  const lines = text.trimEnd().split('\n');
  const fresh = () => makeCt({ nf_conntrack_max: 16, per_source_max: 3 }).ct;
  // the good file restores (bounded by the smaller max and the per-source limit of the new table)
  {
    const ct = fresh();
    const r = restoreState(ct, good, { now: 5000, wallNow: 1_700_000_000_500 });
    assert.equal(r.ignored, undefined);
    assert.ok(r.restored > 0 && ct.count <= 16);
    assert.deepEqual(checkConntrack(ct), []);
  }
  const variants: [string, string, RegExp | null][] = [
    ['truncated', text.slice(0, Math.floor(text.length / 2)), /truncated|not valid JSON/],
    ['no-end', lines.slice(0, -1).join('\n') + '\n', /truncated/],
    ['future', text.replace('"version":1', '"version":99'), /unsupported state file version 99/],
    ['not-ours', '{"format":"something-else","version":1}\n', /not an nfqwall state file/],
    ['garbage', Buffer.from(new Rng(12).bytes(5000)).toString('latin1'), /not valid JSON|not an nfqwall/],
    ['empty', '', /not an nfqwall/],
  ];
  // hostile but well-formed records: wrong tuple lengths, families, huge numbers, prototype keys
  const hostile = [
    lines[0],
    JSON.stringify({ tuple: [1, 2, 3], status: 8, timeoutMs: 1e9, ageMs: 0, mark: 0, helper: '', proto: [] }),
    JSON.stringify({
      tuple: [0x0911, 1, 0, 0, 0, 2, 0, 0, 0, 0x10000050],
      status: -1,
      timeoutMs: 1e300,
      ageMs: -5,
      mark: 'x',
      helper: 'nope',
      proto: [1e308, -1, 'a'],
    }),
    JSON.stringify({ tuple: new Array(10).fill(0xffffffff), status: 8, timeoutMs: 5000, ageMs: 0, mark: 0, helper: 'ftp', proto: null }),
    JSON.stringify({
      __proto__: { polluted: true },
      tuple: [0x0406, 1, 0, 0, 0, 2, 0, 0, 0, 0x10000050],
      status: 8,
      timeoutMs: 5000,
      helper: 'ftp',
      proto: new Array(100000).fill(7),
    }),
    JSON.stringify({ end: true, entries: 4, expectations: 0 }),
  ].join('\n');
  variants.push(['hostile', hostile + '\n', null]);
  for (const [name, body, re] of variants) {
    const f = file(`${name}.state`, body);
    const ct = fresh();
    let r;
    try {
      r = restoreState(ct, f, { now: 5000, wallNow: 1_700_000_000_500 });
    } catch (err) {
      assert.fail(`${name}: restoreState threw ${(err as Error).stack}`);
    }
    if (re) {
      assert.match(String(r.ignored), re, name);
      assert.equal(ct.count, 0, `${name}: nothing restored from a bad file`);
    }
    assert.deepEqual(checkConntrack(ct), [], name);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  }
  // random damage to a good file
  const rr = new Rng(99);
  for (let i = 0; i < 300; i++) {
    const b = Buffer.from(text);
    for (let j = 1 + rr.below(4); j > 0; j--) b[rr.below(b.length)] = rr.below(128);
    const f = file('mut.state', b);
    const ct = fresh();
    restoreState(ct, f, { now: 5000, wallNow: 1_700_000_000_500 });
    assert.deepEqual(checkConntrack(ct), [], `mutant ${i}`);
  }
});
