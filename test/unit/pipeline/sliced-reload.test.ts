/**
 * A reload compiles in slices (src/rules/steps.ts, readRulesSliced): while a 100k-rule file
 * compiles, the thread keeps deciding packets with the rules in force, and the new rules take
 * effect only when swapped in, after the compile. Facts, no timing: the number of packets
 * decided while the compile was pending, each verdict before and after the swap, the same
 * compiled result as the one-go load, and an invalid file refused with the same errors.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Firewall } from '../../../src/pipeline/firewall';
import { readRules, readRulesSliced, RuleLoadError, type RuleDeps } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD } from '../../../src/queue/layout';
import { ipv4, udp } from '../../helpers/packets';

const deps: RuleDeps = { log: () => {}, reject: () => {}, ifname: () => undefined, linkGeneration: () => 0 };

/** A FORWARD blocklist of n source addresses (198.18/15, never the test's sender), then a DROP of UDP to `dport`. */
function rules(n: number, dport: number): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < n; i++) lines.push(`-A FORWARD -s 198.19.${(i >> 8) & 255}.${i & 255}/32 -p tcp -m tcp --dport ${1 + (i % 60000)} -j DROP`);
  lines.push(`-A FORWARD -p udp -m udp --dport ${dport} -j DROP`, 'COMMIT', '');
  return lines.join('\n');
}

const pkt = (dport: number) => ipv4({ src: '198.18.1.1', dst: '198.18.200.1' }, udp({ sport: 40000 + dport, dport }));
const P7 = pkt(7);
const P9 = pkt(9);

function tmpFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqwall-sliced-'));
  const f = path.join(dir, 'fw.rules');
  fs.writeFileSync(f, text);
  return f;
}

test('packets are decided by the old rules while 100k rules compile in slices; the new ones decide after the swap', async () => {
  const old = readRules('old.rules', deps, rules(0, 9)).rules;
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 };
  const fw = new Firewall({ tun, rules: old });
  let now = 1000;
  const send = (p: Uint8Array) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, 4, 0, 0, 0, 0, now++);
  assert.equal(send(P9), NF_DROP);
  assert.equal(send(P7), NF_ACCEPT);

  const file = tmpFile(rules(100_000, 7));
  let pending = true;
  let slices = 0;
  const during: number[] = [];
  // the packet path: one "batch" per event-loop turn, as a queue's reads would come
  const batch = (): void => {
    if (!pending) return;
    during.push(send(P9), send(P7));
    setImmediate(batch);
  };
  setImmediate(batch);
  const next = await readRulesSliced(file, deps, undefined, () => slices++);
  pending = false;
  assert.ok(slices > 100, `${slices} slices`);
  assert.ok(during.length > 0, 'packets were decided while the new rules compiled');
  // every packet decided during the compile got the old rules' verdict
  for (let i = 0; i < during.length; i += 2) {
    assert.equal(during[i], NF_DROP, `dport 9 during the compile (#${i / 2})`);
    assert.equal(during[i + 1], NF_ACCEPT, `dport 7 during the compile (#${i / 2})`);
  }
  assert.equal(next.rules.ruleCount, 100_001);
  fw.setRules(next.rules);
  assert.equal(send(P9), NF_ACCEPT, 'after the swap: dport 9 passes');
  assert.equal(send(P7), NF_DROP, 'after the swap: dport 7 is dropped');
  // the same rules as the one-go load
  assert.equal(next.rules.format(false), readRules(file, deps).rules.format(false));
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

test('an invalid file is refused by the sliced load with the errors of the one-go load', async () => {
  const text = rules(5000, 7).replace('-A FORWARD -p udp -m udp --dport 7 -j DROP', '-A FORWARD -p udp --frobnicate 7 -j DROP');
  const file = tmpFile(text);
  let sync: string[] = [];
  assert.throws(
    () => readRules(file, deps),
    (e) => e instanceof RuleLoadError && (sync = e.errors).length > 0,
  );
  await assert.rejects(readRulesSliced(file, deps), (e) => e instanceof RuleLoadError && JSON.stringify(e.errors) === JSON.stringify(sync));
  assert.match(sync[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5005:\\d+: `));
  await assert.rejects(readRulesSliced(file + '.missing', deps), (e) => e instanceof RuleLoadError && /cannot read the rule file: ENOENT/.test(e.errors[0]));
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});
