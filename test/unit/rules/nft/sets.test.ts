/** Named sets at run time: `nft add/delete element` syntax, and the compiled rules following the set. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor } from '../util';
import { ipv4, ipv6, tcp } from '../../../helpers/packets';
import { NF_ACCEPT, NF_DROP } from '../../../../src/queue/layout';
import { formatRuleSet } from '../../../../src/rules/index';
import { elementChange, parseElementCommand } from '../../../../src/rules/nft/element-command';
import { DaemonControl, singleTableHost } from '../../../../src/daemon/control-ops';
import { TableOps } from '../../../../src/daemon/table-ops';
import type { Logger } from '../../../../src/daemon/log';

const A = NF_ACCEPT;
const D = NF_DROP;
const words = (s: string) => s.split(' ');

test('element syntax: family, table, set, values, prefixes, ranges; refusals', () => {
  assert.deepEqual(parseElementCommand(words('add element inet filter blocked { 198.18.0.7, 198.19.0.0/16 }')), {
    op: 'add',
    family: 'inet',
    table: 'filter',
    set: 'blocked',
    elems: ['198.18.0.7', { prefix: { addr: '198.19.0.0', len: 16 } }],
  });
  // family ip when not given; braces and commas need no spaces; ports as numbers, ranges
  assert.deepEqual(parseElementCommand(['delete', 'element', 'filter', 'ports', '{22,8000-8080,}']), {
    op: 'delete',
    family: 'ip',
    table: 'filter',
    set: 'ports',
    elems: [22, { range: [8000, 8080] }],
  });
  assert.deepEqual(parseElementCommand(words('add element ip6 t s6 { 2001:2::1-2001:2::9, echo-request }')).elems, [
    { range: ['2001:2::1', '2001:2::9'] },
    'echo-request',
  ]);
  assert.throws(() => parseElementCommand(words('flush set ip t s')), /only "add element" and "delete element"/);
  assert.throws(() => parseElementCommand(words('add element t s 1.2.3.4')), /syntax error/);
  assert.throws(() => parseElementCommand(words('add element t s { }')), /syntax error/);
  assert.throws(() => parseElementCommand(words('add element t s { 1.2.3.4 5.6.7.8 }')), /syntax error, unexpected "5.6.7.8"/);
  assert.throws(() => parseElementCommand(words('add element t s { 1.2.3.4 timeout 10s }')), /element options \(timeout\) are not supported/);
  assert.throws(() => parseElementCommand(words('add element foo t s { 1 }')), /unexpected "foo"/);
});

/** inet t: forward (policy drop) accepts tcp from @allow to a port of @ports, and logs and accepts ip6 from @allow6 (two engine rules sharing the set). */
function ruleset(): string {
  const m = (left: unknown, right: unknown) => ({ match: { op: '==', left, right } });
  const pl = (protocol: string, field: string) => ({ payload: { protocol, field } });
  return JSON.stringify({
    nftables: [
      { table: { family: 'inet', name: 't' } },
      { set: { family: 'inet', table: 't', name: 'allow', type: 'ipv4_addr', flags: ['interval'], elem: [{ prefix: { addr: '198.18.1.0', len: 24 } }] } },
      { set: { family: 'inet', table: 't', name: 'ports', type: 'inet_service', elem: [80] } },
      { set: { family: 'inet', table: 't', name: 'allow6', type: 'ipv6_addr', flags: ['interval'], elem: [] } },
      { chain: { family: 'inet', table: 't', name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
      { rule: { family: 'inet', table: 't', chain: 'fwd', expr: [m(pl('ip', 'saddr'), '@allow'), m(pl('tcp', 'dport'), '@ports'), { accept: null }] } },
      { rule: { family: 'inet', table: 't', chain: 'fwd', expr: [m(pl('ip6', 'saddr'), '@allow6'), { log: { prefix: 'six ' } }, { accept: null }] } },
    ],
  });
}

const t4 = (src: string, dport = 80) => ctxFor(ipv4({ src, dst: '198.19.2.1' }, tcp({ sport: 40000, dport })));
const t6 = (src: string) => ctxFor(ipv6({ src, dst: '2001:2:0:2::1' }, tcp({ sport: 40000, dport: 80 })));

function loaded() {
  const { engine } = engineFor(ruleset());
  const sets = engine.compiled.set.nft!.sets;
  const run = (cmd: string) => {
    const ch = elementChange(sets, parseElementCommand(words(cmd)));
    sets.get(ch.key)!.replace(ch.elems);
  };
  return { engine, sets, run };
}

test('add / delete element: the compiled rules match the new elements at once', () => {
  const { engine, run } = loaded();
  const f = (ctx: ReturnType<typeof ctxFor>) => engine.evalFilter(ctx, 0);
  assert.equal(f(t4('198.18.1.9')), A);
  assert.equal(f(t4('198.18.2.9')), D);
  assert.equal(f(t4('198.18.1.9', 443)), D);
  run('add element inet t allow { 198.18.2.0-198.18.2.10, 198.18.7.7 }');
  run('add element inet t ports { 443, 8080 }');
  assert.equal(f(t4('198.18.2.9')), A);
  assert.equal(f(t4('198.18.2.11')), D);
  assert.equal(f(t4('198.18.7.7', 443)), A);
  assert.equal(f(t4('198.18.7.7', 8080)), A);
  assert.equal(f(t4('198.18.7.7', 8081)), D);
  run('delete element inet t ports { 443 }');
  assert.equal(f(t4('198.18.7.7', 443)), D);
  // the file's one prefix was not fixed into the rule at load: deleting it stops the match
  run('delete element inet t allow { 198.18.1.0/24 }');
  assert.equal(f(t4('198.18.1.9')), D);
  assert.equal(f(t6('2001:2:0:1::1')), D);
  run('add element inet t allow6 { 2001:2:0:1::/64 }');
  assert.equal(f(t6('2001:2:0:1::1')), A);
  assert.equal(f(t6('2001:2:0:3::1')), D);
  run('delete element inet t allow6 { 2001:2:0:1::/64 }');
  assert.equal(f(t6('2001:2:0:1::1')), D);
});

test('refusals in nft words; a refused command changes nothing', () => {
  const { engine, sets, run } = loaded();
  assert.throws(() => run('add element ip t allow { 198.18.9.9 }'), /^Error: No such file or directory$/);
  assert.throws(() => run('add element inet t nope { 198.18.9.9 }'), /No such file or directory/);
  assert.throws(() => run('add element inet t allow { 198.18.1.128/25 }'), /interval overlaps with an existing one/);
  assert.throws(() => run('delete element inet t allow { 198.18.9.0/24 }'), /element does not exist/);
  assert.throws(() => run('add element inet t ports { 1-5 }'), /You must add 'flags interval' to your set declaration/);
  assert.throws(() => run('delete element inet t ports { 7 }'), /Could not process rule: No such file or directory/);
  assert.throws(() => run('add element inet t allow { 198.18.5.5, nonsense }'), /not an IPv4 address/);
  assert.throws(() => run('add element inet t allow { 198.18.5/24 }'), /^Error: not an IPv4 address: "198.18.5"$/);
  assert.equal(engine.evalFilter(t4('198.18.5.5'), 0), D, 'all or nothing');
  // an element already there is no error (nft add element), a duplicate is not listed twice
  run('add element inet t ports { 80, 80 }');
  assert.deepEqual(sets.get('inet t ports')!.elems, [80]);
  assert.throws(() => elementChange(undefined, parseElementCommand(words('add element t s { 1 }'))), /not an nftables rule set/);
});

test('rules -L lists the current elements; a reload restores the file', () => {
  const { engine, run } = loaded();
  run('add element inet t allow { 198.18.3.0/24 }');
  run('delete element inet t ports { 80 }');
  const out = JSON.parse(formatRuleSet(engine.compiled.set)) as { nftables: { set?: { name: string; elem?: unknown[] } }[] };
  const elems = Object.fromEntries(out.nftables.filter((i) => i.set).map((i) => [i.set!.name, i.set!.elem]));
  assert.deepEqual(elems.allow, [{ prefix: { addr: '198.18.1.0', len: 24 } }, { prefix: { addr: '198.18.3.0', len: 24 } }]);
  assert.deepEqual(elems.ports, []);
  assert.equal(engine.evalFilter(t4('198.18.3.1'), 0), D, 'no port left');
  // the same file loaded again: its own elements
  const again = engineFor(ruleset()).engine;
  assert.equal(again.evalFilter(t4('198.18.1.1'), 0), A);
  assert.equal(again.evalFilter(t4('198.18.3.1'), 0), D);
});

test('the control request: checked once, the new list to every table', async () => {
  const { engine, sets } = loaded();
  const rules = { format: () => formatRuleSet(engine.compiled.set), nftSets: sets };
  const fw = { ct: { count: 0 } } as unknown as ConstructorParameters<typeof TableOps>[0]['fw'];
  const host = singleTableHost({ tun: {} as never, fw, rules, reload: () => ({ ok: true, errors: [] }) });
  const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Logger;
  const ctl = new DaemonControl(host, quiet);
  const out = { alive: true, sendLines: async () => {} };
  assert.deepEqual(await ctl.handle({ op: 'nft.element', words: words('add element inet t allow { 198.18.4.4 }') }, out), { ok: true });
  assert.equal(engine.evalFilter(t4('198.18.4.4'), 0), A);
  await assert.rejects(ctl.handle({ op: 'nft.element', words: words('delete element inet t allow { 198.18.4.5 }') }, out), /element does not exist/);
  // a worker's table takes the list the daemon checked (TableOps 'nft.set')
  const worker = loaded();
  const ops = new TableOps({ tun: {} as never, fw, rules: { nftSets: worker.sets } });
  assert.deepEqual(await ops.handle({ op: 'nft.set', key: 'inet t allow', elems: sets.get('inet t allow')!.elems }, out), { ok: true });
  assert.equal(worker.engine.evalFilter(t4('198.18.4.4'), 0), A);
  assert.equal((await ops.handle({ op: 'nft.set', key: 'inet t gone', elems: [] }, out))!.ok, false);
});
