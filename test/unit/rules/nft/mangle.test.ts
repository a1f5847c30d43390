/** meta mark set / ct mark set as MARK and CONNMARK: each value form, the JSON → target, and the marks after evaluation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf } from '../util';
import { ipv4, tcp } from '../../../helpers/packets';
import { VERDICT_SET_MARK } from '../../../../src/queue/layout';
import { IP_CT_NONE } from '../../../../src/conntrack/constants';
import { formatRuleSet } from '../../../../src/rules/index';

const meta = { meta: { key: 'mark' } };
const ct = { ct: { key: 'mark' } };
const set = (key: unknown, value: unknown) => ({ mangle: { key, value } });

function doc(rules: unknown[][]): string {
  const items: unknown[] = [
    { table: { family: 'inet', name: 't' } },
    { chain: { family: 'inet', table: 't', name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
  ];
  for (const expr of rules) items.push({ rule: { family: 'inet', table: 't', chain: 'fwd', expr } });
  return JSON.stringify({ nftables: items });
}

/** The packet mark and connection mark after the rules, from mark and ctmark before. */
function marks(rules: unknown[][], mark: number, ctmark: number, o: { noConn?: boolean } = {}) {
  const { engine } = engineFor(doc(rules));
  const ctx = ctxFor(ipv4({}, tcp({ dport: 80 })), { mark, ...(o.noConn ? { entry: -1, ctinfo: IP_CT_NONE } : {}) });
  ctx.ctmark = ctmark;
  engine.evalFilter(ctx, 0);
  return { mark: ctx.mark, ctmark: ctx.ctmark, flagged: (ctx.verdictFlags & VERDICT_SET_MARK) !== 0 };
}

test('meta mark set: a number, and meta mark with & | ^ (nft_bitwise: (x & mask) ^ xor)', () => {
  assert.deepEqual(marks([[set(meta, 16)]], 0x7, 0), { mark: 16, ctmark: 0, flagged: true });
  assert.deepEqual(marks([[set(meta, { '|': [{ '&': [meta, 0xff01] }, 1] })]], 0x12345, 0), { mark: 0x2301, ctmark: 0, flagged: true });
  assert.equal(marks([[set(meta, { '&': [meta, 0xff] })]], 0x1234, 0).mark, 0x34);
  assert.equal(marks([[set(meta, { '|': [meta, 0x100] })]], 0x1234, 0).mark, 0x1334);
  assert.equal(marks([[set(meta, { '^': [meta, 0xff] })]], 0x1234, 0).mark, 0x12cb);
  assert.deepEqual(marks([[set(meta, 5)]], 5, 0), { mark: 5, ctmark: 0, flagged: false }, 'unchanged: no new mark with the verdict');
});

test('ct mark set: a number, from meta mark (save), meta mark set ct mark (restore); nothing without a connection', () => {
  assert.deepEqual(marks([[set(ct, 5)]], 0, 9), { mark: 0, ctmark: 5, flagged: false });
  assert.equal(marks([[set(ct, meta)]], 0x42, 9).ctmark, 0x42);
  assert.equal(marks([[set(ct, { '&': [meta, 0xf] })]], 0x42, 9).ctmark, 0x2);
  assert.equal(marks([[set(ct, { '|': [{ '&': [ct, 0xff00] }, 3] })]], 0, 0x1234).ctmark, 0x1203);
  assert.deepEqual(marks([[set(meta, ct)]], 0x1, 0x77), { mark: 0x77, ctmark: 0x77, flagged: true });
  assert.equal(marks([[set(meta, { '&': [ct, 0xf0] })]], 0x1, 0x77).mark, 0x70);
  assert.deepEqual(marks([[set(ct, 5)]], 0, 0, { noConn: true }), { mark: 0, ctmark: 0, flagged: false });
  assert.deepEqual(marks([[set(meta, ct)]], 3, 0, { noConn: true }), { mark: 3, ctmark: 0, flagged: false });
});

test('as the iptables path writes it (rules -L of the compiled rules in iptables form), and refusals', () => {
  const { engine } = engineFor(doc([[set(meta, { '|': [{ '&': [meta, 0xff01] }, 1] })], [set(ct, meta)]]));
  const rules = engine.compiled.set.tables.flatMap((t) => t.chains.flatMap((c) => c.rules));
  assert.deepEqual(
    rules.map((r) => r.target.name),
    ['MARK', 'CONNMARK'],
  );
  // (x & 0xff01) | 1 = (x & 0xff00) ^ 1: MARK --set-xmark 0x1/0xffff00ff
  assert.deepEqual({ ...(rules[0].target.state as object) }, { op: 'set-xmark', value: 1, mask: 0xffff00ff });
  assert.equal((rules[1].target.state as { op: string }).op, 'save-mark');
  assert.ok(formatRuleSet(engine.compiled.set).startsWith('{"nftables"'));
  const err = (rules: unknown[][]) => errorsOf(doc(rules), 'gw.json')[0];
  assert.match(err([[set({ meta: { key: 'priority' } }, 1)]]), /expr\[0\]\.mangle\.key: setting anything but meta mark and ct mark/);
  assert.match(err([[set(meta, { payload: { protocol: 'tcp', field: 'dport' } })]]), /mangle\.value: a mark is set to a number/);
  assert.match(err([[set(meta, ct), { accept: null }]]), /expr\[1\]: a statement after setting a mark from ct mark is not supported/);
});
