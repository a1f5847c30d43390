/** -j MARK and -j CONNMARK: options, iptables-save spelling, the kernel's arithmetic, the connection mark in the table. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, udp } from '../../../helpers/packets';
import { Firewall } from '../../../../src/pipeline/firewall';
import { loadRuleText } from '../../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../../src/conntrack/sysctl';
import { IP_CT_ESTABLISHED, IP_CT_NONE, IP_CT_UNTRACKED } from '../../../../src/conntrack/constants';
import { NF_ACCEPT as A, NF_INET_FORWARD, VERDICT_SET_MARK } from '../../../../src/queue/layout';

const pkt = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 53 }));

/** Runs one FORWARD rule on a packet with the given marks: [packet mark, connection mark, verdict flags]. */
function run(rule: string, mark: number, ctmark = 0, ctinfo = IP_CT_ESTABLISHED): [number, number, number, number[]] {
  const { engine } = engineFor(forward(`${rule}`, '-j ACCEPT'));
  const ctx = ctxFor(pkt, { mark, ctinfo, entry: 5 });
  ctx.ctmark = ctmark;
  const writes: number[] = [];
  ctx.conn = {
    setMark: (e, m) => writes.push(e, m >>> 0),
    assignHelper: () => assert.fail('no helper here'),
    natSetup: () => assert.fail('no NAT here'),
    setMasqIndex: () => assert.fail('no NAT here'),
  };
  assert.equal(engine.evalFilter(ctx, 0), A);
  return [ctx.mark, ctx.ctmark, ctx.verdictFlags, writes];
}

test('MARK: (mark & ~mask) ^ value for every form, VERDICT_SET_MARK only when the mark changes', () => {
  assert.deepEqual(run('-j MARK --set-mark 5', 0xff00).slice(0, 3), [5, 0, VERDICT_SET_MARK]);
  assert.deepEqual(run('-j MARK --set-mark 0x5/0xff', 0xff00).slice(0, 3), [0xff05, 0, VERDICT_SET_MARK]);
  assert.deepEqual(run('-j MARK --set-mark 0x100/0xff', 0xf0ff).slice(0, 3), [0xf100, 0, VERDICT_SET_MARK], 'mask is value|mask');
  assert.deepEqual(run('-j MARK --set-xmark 0x3/0x1', 0x3).slice(0, 3), [0x1, 0, VERDICT_SET_MARK], 'xor: bit 1 flips');
  assert.deepEqual(run('-j MARK --and-mark 0xf0', 0x1ff).slice(0, 3), [0xf0, 0, VERDICT_SET_MARK]);
  assert.deepEqual(run('-j MARK --or-mark 0x80000000', 1).slice(0, 3), [0x80000001, 0, VERDICT_SET_MARK]);
  assert.deepEqual(run('-j MARK --xor-mark 0xffffffff', 0x0f0f0f0f).slice(0, 3), [0xf0f0f0f0, 0, VERDICT_SET_MARK]);
  assert.deepEqual(run('-j MARK --set-mark 5', 5).slice(0, 3), [5, 0, 0], 'unchanged: no mark in the verdict');
  assert.deepEqual(run('-j MARK --or-mark 010', 0).slice(0, 3), [8, 0, VERDICT_SET_MARK], 'octal as strtoul base 0');
});

test('MARK/CONNMARK: saved as iptables-save prints them', () => {
  assert.equal(savedRule('-j MARK --set-mark 5'), '-A FORWARD -j MARK --set-xmark 0x5/0xffffffff');
  assert.equal(savedRule('-j MARK --set-mark 0x100/0xff'), '-A FORWARD -j MARK --set-xmark 0x100/0x1ff');
  assert.equal(savedRule('-j MARK --set-xmark 5'), '-A FORWARD -j MARK --set-xmark 0x5/0xffffffff');
  assert.equal(savedRule('-j MARK --and-mark 0xf0'), '-A FORWARD -j MARK --set-xmark 0x0/0xffffff0f');
  assert.equal(savedRule('-j MARK --or-mark 3'), '-A FORWARD -j MARK --set-xmark 0x3/0x3');
  assert.equal(savedRule('-j MARK --xor-mark 3'), '-A FORWARD -j MARK --set-xmark 0x3/0x0');
  assert.equal(savedRule('-j CONNMARK --set-mark 5/0xff'), '-A FORWARD -j CONNMARK --set-xmark 0x5/0xff');
  assert.equal(savedRule('-j CONNMARK --and-mark 0xf'), '-A FORWARD -j CONNMARK --set-xmark 0x0/0xfffffff0');
  assert.equal(savedRule('-j CONNMARK --save-mark'), '-A FORWARD -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff');
  assert.equal(savedRule('-j CONNMARK --save-mark --mask 0xff'), '-A FORWARD -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff');
  assert.equal(savedRule('-j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xf'), '-A FORWARD -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xf');
  assert.equal(savedRule('-j CONNMARK --save-mark --nfmask 4'), '-A FORWARD -j CONNMARK --save-mark --nfmask 0x4 --ctmask 0xffffffff');
  assert.equal(savedRule('-j CONNMARK --set-mark 1 --nfmask 3'), '-A FORWARD -j CONNMARK --set-xmark 0x1/0xffffffff');
  assert.equal(savedRule('-j CONNMARK --set-mark 1 --ctmask 3'), '-A FORWARD -j CONNMARK --set-xmark 0x1/0x3', 'libxt order: the later option writes ctmask');
});

test('MARK/CONNMARK: iptables refusals with LINE:COL', () => {
  assert.deepEqual(errorsOf(forward('-j MARK')), ['e.rules:5:15: MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required']);
  assert.deepEqual(errorsOf(forward('-j MARK --set-mark 1 --or-mark 2')), ['e.rules:5:33: MARK: option "--set-mark" cannot be used together with "--or-mark"']);
  assert.deepEqual(errorsOf(forward('-j MARK --or-mark 2 --set-mark 1')), ['e.rules:5:32: MARK: option "--set-mark" cannot be used together with "--or-mark"']);
  assert.deepEqual(errorsOf(forward('-j MARK --and-mark 1/2')), ['e.rules:5:31: MARK: bad value for option "--and-mark", or out of range (0-4294967295)']);
  assert.deepEqual(errorsOf(forward('-j MARK --set-mark 0x1ffffffff')), ['e.rules:5:31: bad mark "0x1ffffffff" (VALUE[/MASK], each 0..0xffffffff)']);
  assert.deepEqual(errorsOf(forward('-j CONNMARK')), ['e.rules:5:15: CONNMARK target: No operation specified']);
  assert.deepEqual(errorsOf(forward('-j CONNMARK --save-mark --restore-mark')), [
    'e.rules:5:36: CONNMARK: option "--save-mark" cannot be used together with "--restore-mark"',
  ]);
  assert.deepEqual(errorsOf(forward('-j CONNMARK --save-mark --save-mark')), ['e.rules:5:36: CONNMARK: option "--save-mark" can only be used once']);
  assert.deepEqual(errorsOf(forward('-j CONNMARK --save-mark --mask 3 --nfmask 4')), [
    'e.rules:5:45: CONNMARK: option "--nfmask" cannot be used together with "--mask"',
  ]);
  assert.deepEqual(errorsOf(forward('-j CONNMARK --restore-mark --ctmask 1 --mask 2')), [
    'e.rules:5:50: CONNMARK: option "--ctmask" cannot be used together with "--mask"',
  ]);
  assert.match(errorsOf(forward('-j CONNMARK --set-mark 1 --left-shift-mark 2'))[0], /^e\.rules:5:37: .*left-shift-mark.*not supported/);
  assert.match(
    errorsOf(['*raw', '-A PREROUTING -j CONNMARK --restore-mark', 'COMMIT', ''].join('\n'))[0],
    /^e\.rules:2:18: CONNMARK --restore-mark in the raw table is not supported/,
  );
  assert.deepEqual(errorsOf(['*raw', '-A PREROUTING -j CONNMARK --save-mark', 'COMMIT', ''].join('\n')), []);
});

test('CONNMARK: set/save/restore with masks as xt_connmark computes them', () => {
  // set: ct = (ct & ~ctmask) ^ ctmark
  assert.deepEqual(run('-j CONNMARK --set-mark 0x5/0xff', 0, 0xab00), [0, 0xab05, 0, [5, 0xab05]]);
  assert.deepEqual(run('-j CONNMARK --or-mark 0x80000000', 0, 1), [0, 0x80000001, 0, [5, 0x80000001]]);
  assert.deepEqual(run('-j CONNMARK --set-mark 7', 0, 7), [0, 7, 0, []], 'unchanged: no write');
  // save: ct = (ct & ~ctmask) ^ (mark & nfmask)
  assert.deepEqual(run('-j CONNMARK --save-mark', 0x1234, 0xffff), [0x1234, 0x1234, 0, [5, 0x1234]]);
  assert.deepEqual(run('-j CONNMARK --save-mark --nfmask 0xff --ctmask 0xf00', 0x1234, 0xf0f0), [0x1234, 0xf0f0 ^ 0x34, 0, [5, 0xf0f0 ^ 0x34]]);
  // restore: mark = (mark & ~nfmask) ^ (ct & ctmask)
  assert.deepEqual(run('-j CONNMARK --restore-mark', 0x1, 0x42), [0x42, 0x42, VERDICT_SET_MARK, []]);
  assert.deepEqual(run('-j CONNMARK --restore-mark --mask 0xff', 0xab01, 0x1242), [0xab42, 0x1242, VERDICT_SET_MARK, []]);
  assert.deepEqual(run('-j CONNMARK --restore-mark', 0x42, 0x42), [0x42, 0x42, 0, []], 'same mark: nothing to send');
  // no connection (INVALID, UNTRACKED): nothing happens
  for (const ci of [IP_CT_NONE, IP_CT_UNTRACKED]) {
    assert.deepEqual(run('-j CONNMARK --set-mark 3', 1, 0, ci), [1, 0, 0, []]);
    assert.deepEqual(run('-j CONNMARK --restore-mark', 1, 0, ci), [1, 0, 0, []]);
  }
});

test('CONNMARK through the pipeline: the entry keeps the saved mark, replies get it restored', () => {
  const r = loadRuleText(
    [
      '*mangle',
      '-A FORWARD -m conntrack --ctstate NEW -j MARK --set-mark 0x21',
      '-A FORWARD -m conntrack --ctstate NEW -j CONNMARK --save-mark',
      '-A FORWARD -m conntrack --ctstate ESTABLISHED -j CONNMARK --restore-mark',
      'COMMIT',
      '',
    ].join('\n'),
    't.rules',
    { log: () => {}, reject: () => {} } as never,
  );
  assert.deepEqual(r.errors, []);
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 };
  const fw = new Firewall({ tun, rules: r.rules! });
  const q = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 53 }));
  const a = ipv4({ src: '198.19.2.1', dst: '198.18.1.1' }, udp({ sport: 53, dport: 5000 }));
  const send = (p: Uint8Array, mark: number) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, 4, 0, 0, mark, 0, 1000);
  assert.equal(send(q, 0), A | VERDICT_SET_MARK);
  assert.equal(fw.ctx.mark, 0x21);
  const e = fw.ctx.entry;
  assert.equal(fw.ct.mark(e), 0x21, 'saved into the entry');
  assert.equal(send(a, 0), A | VERDICT_SET_MARK, 'reply: restored');
  assert.equal(fw.ctx.mark, 0x21);
  assert.equal(send(a, 0x21), A, 'already carrying it: no mark in the verdict');
});
