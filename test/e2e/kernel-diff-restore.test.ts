/**
 * Rule file differential (issue #14): every file in test/e2e/restore-corpus/ is loaded for
 * real by iptables-restore and ip6tables-restore (iptables-nft, the Debian default) in a
 * throwaway network namespace, and read by nfqwall's rule loader (what `nfqwall check` runs).
 * The same files must be accepted and refused; for a refused file nfqwall's first error is on
 * the line iptables-restore names; for an accepted one nfqwall holds as many rules per family
 * as iptables-save lists.
 *
 * A file's name says which tools load it: `-dual-` both (lines of one family carry -4/-6),
 * `-v4-` only iptables-restore, `-v6-` only ip6tables-restore (nfqwall infers the family of
 * those rules from their addresses). `ok-` files must load, `bad-` ones be refused by both;
 * `unsup-` files use a table or match nfqwall does not implement: iptables loads them, nfqwall
 * gives exactly one error per such table or rule, on that line (nothing cascades from it).
      // refused: a table nfqwall lacks, -m pkttype, TCPMSS --clamp-mss-to-pmtu
      const unsupported = text.split('\n').flatMap((l, i) => (/^\*security\b|-m pkttype\b|--clamp-mss-to-pmtu\b/.test(l) ? [i + 1] : []));
 * Needs root; each namespace is deleted after its file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helperId } from '../../src/conntrack/helpers/registry';
import { loadRules } from '../../src/rules/index';
import { runIpset } from '../../src/rules/sets/command';
import { resetIpsets } from '../../src/rules/sets/registry';
import { ROOT } from '../helpers/kernel';

const CORPUS = path.join(ROOT, 'test', 'e2e', 'restore-corpus');
const TOOLS = { 4: 'iptables-restore', 6: 'ip6tables-restore' } as const;
const SAVE = { 4: 'iptables-save', 6: 'ip6tables-save' } as const;

const isRoot = process.getuid?.() === 0;
const hasTools = spawnSync('iptables-restore', ['--version'], { encoding: 'utf8' }).stdout?.includes('nf_tables');
const skip = !isRoot ? 'needs root' : !hasTools ? 'needs iptables-restore (nf_tables)' : false;
if (skip) process.stderr.write(`kernel-diff-restore skipped: ${skip}\n`);

interface ToolResult {
  ok: boolean;
  /** the line iptables-restore names in its error */
  line: number | null;
  output: string;
  /** rules iptables-save lists after an accepted load */
  rules: number;
}

let nsSeq = 0;
function withNetns<T>(fn: (ns: string) => T): T {
  const ns = `nfqw-rd-${process.pid}-${++nsSeq}`;
  const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  assert.equal(add.status, 0, `ip netns add ${ns}: ${add.stderr}`);
  try {
    return fn(ns);
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

/** The line an iptables-restore error names, in each of the forms it prints. */
function errorLine(out: string): number | null {
  const m =
    /Error occurred at line: (\d+)/.exec(out) ??
    /line (\d+) failed/.exec(out) ??
    /^line (\d+): /m.exec(out) ??
    /COMMIT expected at line (\d+)/.exec(out) ??
    /line (\d+) (?:table name|chain name|policy) invalid/.exec(out);
  return m ? Number(m[1]) : null;
}

function load(ns: string, fam: 4 | 6, file: string): ToolResult {
  const sets = ipsetFile(file);
  if (sets) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'ipset', 'restore'], { input: fs.readFileSync(sets), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `ipset restore ${sets}: ${r.stderr}`);
  }
  const r = spawnSync('ip', ['netns', 'exec', ns, TOOLS[fam]], { input: fs.readFileSync(file), encoding: 'utf8', timeout: 60_000 });
  const output = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) return { ok: false, line: errorLine(output), output, rules: 0 };
  const save = spawnSync('ip', ['netns', 'exec', ns, SAVE[fam]], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(save.status, 0, save.stderr);
  return { ok: true, line: null, output, rules: save.stdout.split('\n').filter((l) => l.startsWith('-A ')).length };
}

/** NAME.ipset beside NAME.rules, or null */
function ipsetFile(file: string): string | null {
  const sets = file.replace(/\.rules$/, '.ipset');
  return fs.existsSync(sets) ? sets : null;
}

/** nfqwall's ipsets for a file: a fresh registry, filled from its NAME.ipset */
function nfqwallIpsets(file: string): void {
  const reg = resetIpsets();
  const sets = ipsetFile(file);
  if (!sets) return;
  const r = runIpset(['restore'], Date.now(), fs.readFileSync(sets, 'utf8'), reg);
  assert.equal(r.status, 0, `nfqwall ipset restore ${sets}: ${r.err}`);
}

interface Refusal {
  rule: RegExp;
  because: RegExp;
  /** the annotation's own line */
  line: number;
}

/** The `# nfqwall refuses /LINE-RE/ because /MESSAGE-RE/` annotations of a real- file. */
function refusals(text: string): Refusal[] {
  return text.split('\n').flatMap((l, i) => {
    const m = /^# nfqwall refuses \/(.+)\/ because \/(.+)\/$/.exec(l);
    return m ? [{ rule: new RegExp(m[1]), because: new RegExp(m[2]), line: i + 1 }] : [];
  });
}

/**
 * iptables-nft looks a jump's chain up when it commits the table and names the COMMIT line
 * ("Chain 'X' does not exist"): the rule at fault is the first in that section jumping to X.
 */
function faultLine(text: string, r: ToolResult): number | null {
  const m = /Chain '([^']+)' does not exist/.exec(r.output);
  if (!m || r.line === null) return r.line;
  const lines = text.split('\n');
  if (lines[r.line - 1] !== 'COMMIT') return r.line;
  let start = r.line - 1;
  while (start > 0 && !lines[start - 1].startsWith('*')) start--;
  const jump = new RegExp(`(^|\\s)(-j|--jump|-g|--goto)\\s+${m[1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|$)`);
  for (let i = start; i < r.line - 1; i++) if (jump.test(lines[i])) return i + 1;
  return r.line;
}

const files = fs
  .readdirSync(CORPUS)
  .filter((f) => f.endsWith('.rules'))
  .sort();

test('the corpus has accepted and refused files of every kind', () => {
  for (const kind of ['ok-dual-', 'ok-v4-', 'ok-v6-', 'bad-dual-', 'bad-v4-', 'bad-v6-', 'unsup-dual-', 'real-v4-', 'real-v6-'])
    assert.ok(
      files.some((f) => f.startsWith(kind)),
      kind,
    );
});

for (const name of files) {
  test(`iptables-restore and nfqwall agree on ${name}`, { skip }, () => {
    const file = path.join(CORPUS, name);
    const text = fs.readFileSync(file, 'utf8');
    const fams: (4 | 6)[] = name.includes('-v4-') ? [4] : name.includes('-v6-') ? [6] : [4, 6];
    const kernel = new Map<4 | 6, ToolResult>();
    withNetns((ns) => {
      for (const f of fams) kernel.set(f, load(ns, f, file));
    });
    nfqwallIpsets(file);
    const nfq = loadRules(text, name, { helperId });
    const accepted = [...kernel.values()].every((r) => r.ok);
    const report = [...kernel].map(([f, r]) => `${TOOLS[f]}: ${r.ok ? 'ok' : r.output.trim()}`).join('\n');
    const nfqErrors = nfq.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n');
    assert.equal(!name.startsWith('bad-'), accepted, `corpus file named for the wrong outcome:\n${report}`);
    if (name.startsWith('real-')) {
      const expect = refusals(text);
      const lines = text.split('\n');
      const want = lines.flatMap((l, i) => (/^-[AI] /.test(l) && expect.some((x) => x.rule.test(l)) ? [i + 1] : []));
      for (const x of expect)
        assert.ok(
          want.some((n) => x.rule.test(lines[n - 1])),
          `the annotation on line ${x.line} names no rule of ${name}`,
        );
      const got = [...new Set(nfq.errors.map((e) => e.line))];
      for (const n of want)
        if (!got.includes(n))
          assert.fail(`nfqwall now loads line ${n} of ${name} (${lines[n - 1]}): remove its "# nfqwall refuses" annotation\nnfqwall:\n${nfqErrors}`);
      assert.deepEqual(got, want, `nfqwall refuses lines of ${name} that no annotation names:\n${nfqErrors}`);
      for (const e of nfq.errors) {
        const x = expect.filter((r) => r.rule.test(lines[e.line - 1]));
        assert.ok(
          x.some((r) => r.because.test(e.message)),
          `${name}:${e.line}:${e.col}: ${e.message}\nis not the reason its annotation gives (${x.map((r) => r.because.source).join(' | ')})`,
        );
      }
      if (want.length > 0) return;
    }
    if (name.startsWith('unsup-')) {
      // refused: a table nfqwall lacks, -m pkttype, TCPMSS --clamp-mss-to-pmtu
      const unsupported = text.split('\n').flatMap((l, i) => (/^\*security\b|-m pkttype\b|--clamp-mss-to-pmtu\b/.test(l) ? [i + 1] : []));
      assert.deepEqual(
        nfq.errors.map((e) => e.line),
        unsupported,
        `nfqwall:\n${nfqErrors}`,
      );
      for (const e of nfq.errors) assert.match(e.message, /not supported/);
      return;
    }
    if (accepted) {
      assert.deepEqual(nfqErrors, '', `iptables accepts ${name}, nfqwall refuses it`);
      for (const [f, r] of kernel) {
        const mine = nfq.set.tables.reduce((n, t) => n + t.chains.reduce((k, c) => k + c.rules.filter((x) => x.family === 0 || x.family === f).length, 0), 0);
        assert.equal(mine, r.rules, `IPv${f} rules: nfqwall ${mine}, ${SAVE[f]} ${r.rules}`);
      }
      return;
    }
    assert.ok(nfq.errors.length > 0, `iptables refuses ${name}, nfqwall accepts it:\n${report}`);
    const want = Math.min(...[...kernel.values()].filter((r) => !r.ok).map((r) => faultLine(text, r) ?? Infinity));
    assert.ok(Number.isFinite(want), `no line in the iptables error:\n${report}`);
    assert.equal(nfq.errors[0].line, want, `first nfqwall error on another line than iptables':\n${report}\nnfqwall:\n${nfqErrors}`);
  });
}
