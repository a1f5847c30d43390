import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { parseRules } from '../../../src/rules/parse';
import { formatRuleSet } from '../../../src/rules/format';
import type { RuleSet } from '../../../src/rules/types';
import { ctxFor, engineFor, helperId } from './util';
import { ipv4, tcp, udp } from '../../helpers/packets';

const ROOT = join(__dirname, '..', '..', '..');
const RULES = join(ROOT, 'rules');
const ruleFiles = readdirSync(RULES).filter((f) => f.endsWith('.rules'));

/** The rule set without source positions (what a round trip must keep). */
function canonical(set: RuleSet): unknown {
  return JSON.parse(JSON.stringify(set.tables, (k, v) => (['at', 'line', 'col', 'explicit', 'counters'].includes(k) ? undefined : v)));
}

function parseClean(text: string, file: string): RuleSet {
  const r = parseRules(text, file, { helperId });
  assert.deepEqual(r.errors, [], `${file} parses`);
  return r.set;
}

test('round trip parse → format → parse keeps every rule file in rules/', () => {
  assert.ok(ruleFiles.length >= 4);
  for (const f of ruleFiles) {
    const set = parseClean(readFileSync(join(RULES, f), 'utf8'), f);
    const text = formatRuleSet(set);
    const again = parseClean(text, `${f} (formatted)`);
    assert.deepEqual(canonical(again), canonical(set), f);
    assert.equal(formatRuleSet(again), text, `${f}: formatting is stable`);
  }
});

test('format: iptables-save spelling of every match and target', () => {
  const src = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
-A OUTPUT -j NOTRACK
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:x - [0:0]
-A INPUT -s 10.1.2.3/8 ! -d 2.2.2.2 -i eth+ -p tcp ! --sport 1:1023 --syn -j x
-A INPUT -6 -s 2001:2:0:0:0:0:0:1/64 -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT
-A INPUT -p icmp --icmp-type port-unreachable -m comment --comment "a 'b'" -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type any -m limit --limit 3/hour -j LOG --log-prefix "x: " --log-level 6 --log-tcp-options
-A INPUT -p udp -m multiport --dports 53,1000:2000 -m conntrack ! --ctstate NEW,ESTABLISHED --ctstatus NONE --ctdir ORIGINAL -j ACCEPT
-A INPUT -m state --state RELATED -m iprange --src-range 1.1.1.1-1.1.1.9 -m helper --helper ftp -g x
-A INPUT -p tcp -j REJECT --reject-with tcp-rst
-A INPUT -4 -j REJECT
-A INPUT -j REJECT --reject-with adm-prohibited
-A x -m limit --limit 7/s --limit-burst 9 -j RETURN
COMMIT
`;
  const out = formatRuleSet(parseClean(src, 'f.rules'), { comments: false });
  assert.equal(
    out,
    `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A OUTPUT -j NOTRACK
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:x - [0:0]
-A INPUT -s 10.0.0.0/8 ! -d 2.2.2.2/32 -i eth+ -p tcp -m tcp ! --sport 1:1023 --tcp-flags FIN,SYN,RST,ACK SYN -j x
-A INPUT -6 -s 2001:2::/64 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 3/3 -m comment --comment "a \\'b\\'" -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type any -m limit --limit 3/hour -j LOG --log-prefix "x: " --log-level 6 --log-tcp-options
-A INPUT -p udp -m multiport --dports 53,1000:2000 -m conntrack ! --ctstate NEW,ESTABLISHED --ctstatus NONE --ctdir ORIGINAL -j ACCEPT
-A INPUT -m state --state RELATED -m iprange --src-range 1.1.1.1-1.1.1.9 -m helper --helper ftp -g x
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -4 -j REJECT --reject-with icmp-port-unreachable
-A INPUT -j REJECT --reject-with icmp6-adm-prohibited
-A x -m limit --limit 7/sec --limit-burst 9 -j RETURN
COMMIT
`,
  );
});

test('format -v: counters as iptables-save -c writes them', () => {
  const te = engineFor(`*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -j ACCEPT
COMMIT
`);
  const t = ipv4({}, tcp());
  const u = ipv4({}, udp());
  te.engine.evalFilter(ctxFor(t), 0);
  te.engine.evalFilter(ctxFor(t), 0);
  te.engine.evalFilter(ctxFor(u), 0);
  const out = formatRuleSet(te.engine.compiled.set, { counters: te.engine.counters, comments: false });
  assert.equal(
    out,
    `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [1:${u.length}]\n:OUTPUT ACCEPT [0:0]\n[2:${2 * t.length}] -A FORWARD -p tcp -j ACCEPT\nCOMMIT\n`,
  );
  // and it parses back (iptables-restore -c format)
  const again = parseClean(out, 'v.rules');
  assert.deepEqual(again.tables[0].chains[1].rules[0].counters, [2, 2 * t.length]);
  assert.deepEqual(again.tables[0].chains[1].counters, [1, u.length]);
});

function check(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'nfqwall.js'), 'check', ...args], {
    cwd: ROOT,
    env: { ...process.env, NFQWALL_FROM_SOURCE: '1' },
    encoding: 'utf8',
    timeout: 60000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('nfqwall check: every file in rules/ is clean; a broken file prints FILE:LINE:COL lines and exits 1', () => {
  for (const f of ruleFiles) {
    const r = check(join('rules', f));
    assert.deepEqual(r, { status: 0, stdout: '', stderr: '' }, f);
  }
  const dir = mkdtempSync(join(tmpdir(), 'nfqwall-check-'));
  try {
    const bad = join(dir, 'bad.rules');
    writeFileSync(bad, '*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\n-A INPUT -m nosuch -j ACCEPT\n-A INPUT -j LOGDROP\n');
    const r = check(bad);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      [
        `${bad}:3:25: bad port "99999": out of range (0..65535)`,
        `${bad}:4:13: unknown match "nosuch" (iptables has no match of that name)`,
        `${bad}:5:13: unknown target "LOGDROP" (no target or chain of that name)`,
        `${bad}:6:1: COMMIT expected: table "filter" (line 1) is not closed`,
        '',
      ].join('\n'),
    );
    // --max-errors: the first N, then one line with how many more; 0 = all
    const many = join(dir, 'many.rules');
    writeFileSync(many, `*filter\n${'-A INPUT -j nowhere\n'.repeat(5)}COMMIT\n`);
    const two = check('--max-errors', '2', many);
    assert.equal(two.status, 1);
    assert.deepEqual(two.stderr.trimEnd().split('\n').slice(2), ['3 more errors not shown (5 in all; --max-errors 0 shows every one)']);
    assert.equal(check('--max-errors', '0', many).stderr.trimEnd().split('\n').length, 5);
    assert.equal(check('--max-errors', 'x', many).status, 2);
    const missing = check(join(dir, 'none.rules'));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /none\.rules: no such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
