/** The *mangle table: its five chains, where the engine walks them, and mangle PREROUTING refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf } from '../util';
import { ipv4, udp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D, NF_INET_FORWARD, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, VERDICT_SET_MARK } from '../../../../src/queue/layout';
import { loadRules, formatRuleSet } from '../../../../src/rules/index';

const pkt = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 53 }));

function table(name: string, chains: string[], rules: string[]): string[] {
  return [`*${name}`, ...chains.map((c) => `:${c} ACCEPT [0:0]`), ...rules, 'COMMIT'];
}
const MANGLE = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];
const FILTER = ['INPUT', 'FORWARD', 'OUTPUT'];

/** Each chain marks the packet with one more bit and tests the bits of the chains before it. */
test('mangle chains run after conntrack in the kernel order around filter, a mark carried from one to the next', () => {
  const text = [
    ...table(
      'mangle',
      MANGLE.filter((c) => c !== 'PREROUTING'),
      [
        '-A INPUT -j MARK --or-mark 0x1',
        '-A FORWARD -j MARK --or-mark 0x1',
        '-A OUTPUT -j MARK --or-mark 0x1',
        // POSTROUTING after filter: sees the filter bit 0x2, adds 0x4
        '-A POSTROUTING -m mark --mark 0x3/0x3 -j MARK --or-mark 0x4',
      ],
    ),
    ...table('filter', FILTER, [
      '-A INPUT -m mark --mark 0x1/0x1 -j MARK --or-mark 0x2',
      '-A FORWARD -m mark --mark 0x1/0x1 -j MARK --or-mark 0x2',
      '-A OUTPUT -m mark --mark 0x1/0x1 -j MARK --or-mark 0x2',
    ]),
    '',
  ].join('\n');
  const { engine } = engineFor(text);
  for (const [hook, want] of [
    [NF_INET_FORWARD, 7],
    [NF_INET_LOCAL_OUT, 7],
    [NF_INET_LOCAL_IN, 3],
  ] as const) {
    const ctx = ctxFor(pkt, { hook, mark: 0x100 });
    assert.equal(engine.evalFilter(ctx, 0), A);
    assert.equal(ctx.mark, 0x100 | want, `hook ${hook}`);
    assert.equal(ctx.verdictFlags & VERDICT_SET_MARK, VERDICT_SET_MARK);
  }
});

test('a DROP in mangle FORWARD ends the walk before filter; a DROP in filter FORWARD skips mangle POSTROUTING', () => {
  const text = [
    ...table('mangle', MANGLE, ['-A FORWARD -p udp --dport 53 -j DROP', '-A POSTROUTING -j MARK --set-mark 9']),
    ...table('filter', FILTER, ['-A FORWARD -p udp --dport 54 -j DROP', '-A FORWARD -j MARK --or-mark 0x10']),
    '',
  ].join('\n');
  const { engine } = engineFor(text);
  const c53 = ctxFor(pkt);
  assert.equal(engine.evalFilter(c53, 0), D);
  assert.equal(c53.mark, 0, 'filter never ran');
  const c54 = ctxFor(ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 54 })));
  assert.equal(engine.evalFilter(c54, 0), D);
  assert.equal(c54.mark, 0, 'mangle POSTROUTING never ran');
  const c55 = ctxFor(ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 55 })));
  assert.equal(engine.evalFilter(c55, 0), A);
  assert.equal(c55.mark, 9, 'POSTROUTING after filter: its --set-mark wins');
  const counts = engine.counters.rulePkts;
  assert.deepEqual([...counts], [1, 1, 1, 1], 'mangle FORWARD drop, mangle POSTROUTING mark, filter drop, filter mark');
});

test('*mangle is printed back with its five chains, between raw and filter as read', () => {
  const text = ['*mangle', '-A FORWARD -j MARK --set-mark 1', 'COMMIT', '*filter', '-A FORWARD -j ACCEPT', 'COMMIT', ''].join('\n');
  const r = loadRules(text, 'x.rules', { helperId: () => 0 });
  assert.deepEqual(r.errors, []);
  const out = formatRuleSet(r.set, { comments: false });
  assert.match(
    out,
    /\*mangle\n:PREROUTING ACCEPT \[0:0\]\n:INPUT ACCEPT \[0:0\]\n:FORWARD ACCEPT \[0:0\]\n:OUTPUT ACCEPT \[0:0\]\n:POSTROUTING ACCEPT \[0:0\]\n-A FORWARD -j MARK --set-xmark 0x1\/0xffffffff\nCOMMIT/,
  );
});

test('targets refused outside their tables, with LINE:COL', () => {
  const f = (rule: string) => errorsOf(['*filter', `-A FORWARD ${rule}`, 'COMMIT', ''].join('\n'));
  assert.deepEqual(f('-j TTL --ttl-set 3'), ['e.rules:2:15: target TTL is not allowed in table filter (only in mangle)']);
  assert.deepEqual(f('-j DSCP --set-dscp 3'), ['e.rules:2:15: target DSCP is not allowed in table filter (only in mangle)']);
  assert.deepEqual(f('-p udp -j CHECKSUM --checksum-fill'), ['e.rules:2:22: target CHECKSUM is not allowed in table filter (only in mangle)']);
  assert.deepEqual(f('-j MARK --set-mark 3'), []);
  assert.deepEqual(f('-j CONNMARK --save-mark'), []);
  assert.deepEqual(f('-p tcp -j TCPMSS --set-mss 1000'), []);
  const raw = (rule: string) => errorsOf(['*raw', `-A PREROUTING ${rule}`, 'COMMIT', ''].join('\n'));
  assert.deepEqual(raw('-j HL --hl-set 3'), ['e.rules:2:18: target HL is not allowed in table raw (only in mangle)']);
  assert.deepEqual(raw('-j LOG'), []);
});
