/** NAT statements in nft nat chains onto SNAT/DNAT/MASQUERADE/REDIRECT, through the whole pipeline (both queue crossings). */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../../src/pipeline/firewall';
import { loadRuleText } from '../../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../../src/conntrack/sysctl';
import { NF_ACCEPT, NF_INET_FORWARD, NF_INET_PRE_ROUTING, VERDICT_MASK, VERDICT_SET_MARK } from '../../../../src/queue/layout';
import { parsePacket } from '../../../../src/packet/parse';
import { PacketView } from '../../../../src/packet/view';
import { formatAddr } from '../../../../src/rules/addr';
import { parseNftRuleset } from '../../../../src/rules/nft/ruleset';
import { preroutingNeed } from '../../../../src/rules/prerouting';
import { formatRuleSet } from '../../../../src/rules/index';
import { ipv4, tcp } from '../../../helpers/packets';

const IN = 2;
const OUT = 3;
const GW_OUT = '198.19.0.1';
const m = (left: unknown, right: unknown) => ({ match: { op: '==', left, right } });
const pl = (protocol: string, field: string) => ({ payload: { protocol, field } });

function doc(chains: { name: string; hook?: string; prio?: number; type?: string; rules: unknown[][] }[], family = 'ip'): string {
  const items: unknown[] = [{ table: { family, name: 't' } }];
  for (const c of chains)
    items.push({
      chain: { family, table: 't', name: c.name, ...(c.hook ? { type: c.type ?? 'nat', hook: c.hook, prio: c.prio ?? 0, policy: 'accept' } : {}) },
    });
  for (const c of chains) for (const expr of c.rules) items.push({ rule: { family, table: 't', chain: c.name, expr } });
  return JSON.stringify({ nftables: items });
}

const GATEWAY = doc([
  { name: 'pre', hook: 'prerouting', prio: -100, rules: [[m(pl('tcp', 'dport'), 8080), { dnat: { addr: '198.19.2.1', port: 80 } }]] },
  { name: 'post', hook: 'postrouting', prio: 100, rules: [[m({ meta: { key: 'oifname' } }, 'out0'), { jump: { target: 'masq' } }]] },
  { name: 'masq', rules: [[{ masquerade: null }]] },
  { name: 'fwd', hook: 'forward', type: 'filter', rules: [[{ accept: null }]] },
]);

function firewall(text: string): Firewall {
  const r = loadRuleText(text, 'nat.json', {
    log: () => {},
    reject: () => {},
    ifname: (i) => ({ 1: 'lo', 2: 'in0', 3: 'out0' })[i],
    natAddress: (ifindex, family, _dst, out) => {
      if (family !== 4 || ifindex !== OUT) return false;
      out.set([0xc6130001, 0, 0, 0]);
      return true;
    },
  });
  assert.deepEqual(r.errors, []);
  return new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
}

function forward(fw: Firewall, pkt: Uint8Array): { verdict: number; v: PacketView } {
  const a = fw.decide(pkt, 0, pkt.length, pkt.length, NF_INET_PRE_ROUTING, 4, IN, 0, 0, 0, 1000);
  const mark = (a & VERDICT_SET_MARK) !== 0 ? fw.ctx.mark : 0;
  const verdict = fw.decide(pkt, 0, pkt.length, pkt.length, NF_INET_FORWARD, 4, IN, OUT, mark, 0, 1000);
  const v = new PacketView();
  parsePacket(pkt, 0, pkt.length, v, 4);
  return { verdict, v };
}
const at = (v: PacketView, src: boolean) => `${formatAddr(4, src ? v.src : v.dst)}:${src ? v.sport : v.dport}`;

test('dnat in a prerouting nat chain, masquerade in a postrouting one (through a regular chain)', () => {
  const fw = firewall(GATEWAY);
  const o = forward(fw, ipv4({ src: '198.18.1.1', dst: '198.19.9.9' }, tcp({ sport: 40000, dport: 8080, flags: 'S' })));
  assert.equal(o.verdict & VERDICT_MASK, NF_ACCEPT);
  assert.equal(at(o.v, false), '198.19.2.1:80');
  assert.equal(at(o.v, true), `${GW_OUT}:40000`);
  // the pre-routing crossing sees every packet: the prerouting nat chain has rules
  const set = parseNftRuleset(GATEWAY, 'g.json').set;
  assert.deepEqual(preroutingNeed(set), { 4: [[]], 6: [[]] });
  assert.equal(formatRuleSet(set), JSON.stringify(JSON.parse(GATEWAY)) + '\n', 'rules -L: the JSON back');
});

test('the statements as the iptables targets, with ranges, prefixes and flags', () => {
  const target = (st: unknown, hook = 'postrouting') => {
    const { set, errors } = parseNftRuleset(doc([{ name: 'n', hook, rules: [[m(pl('tcp', 'dport'), 1), st]] }]), 'g.json');
    assert.deepEqual(errors, []);
    const r = set.tables.find((t) => t.name === 'nat')!.chains[0].rules[0];
    return `${r.target.name} ${JSON.stringify(r.target.state)}`;
  };
  assert.match(
    target({ snat: { addr: { range: ['198.19.0.1', '198.19.0.9'] }, port: { range: [1000, 2000] }, flags: ['random', 'persistent'] } }),
    /^SNAT .*"random":true.*"persistent":true/,
  );
  assert.match(target({ snat: { addr: { prefix: { addr: '198.19.0.0', len: 30 } } } }), /^SNAT /);
  assert.match(target({ dnat: { addr: '198.19.2.1', port: 80 } }, 'prerouting'), /^DNAT /);
  assert.match(target({ redirect: { port: 3128 } }, 'prerouting'), /^REDIRECT /);
  assert.match(target({ masquerade: { port: { range: [1024, 2048] }, flags: 'fully-random' } }), /^MASQUERADE .*"fully":true/);
  const err = (text: string) => parseNftRuleset(text, 'g.json').errors.map((e) => e.message)[0];
  assert.match(err(doc([{ name: 'n', hook: 'postrouting', rules: [[{ snat: { addr: { map: { key: {}, data: {} } } } }]] }])), /snat to an address from a map/);
  assert.match(
    err(
      doc([
        { name: 'a', hook: 'postrouting', prio: 100, rules: [[{ masquerade: null }]] },
        { name: 'b', hook: 'postrouting', prio: 110, rules: [[{ masquerade: null }]] },
      ]),
    ),
    /nftables\[2\]\.chain\.type: a second nat chain on the postrouting hook/,
  );
  assert.match(
    err(
      doc([
        { name: 'a', hook: 'postrouting', rules: [[{ jump: { target: 'c' } }]] },
        { name: 'f', hook: 'forward', type: 'filter', rules: [[{ jump: { target: 'c' } }]] },
        { name: 'c', rules: [[{ masquerade: null }]] },
      ]),
    ),
    /chain c is reached from a nat chain and from another base chain/,
  );
});

test('a prerouting filter chain after conntrack runs on the pre-routing crossing: ct helper set, meta mark set before routing', async () => {
  const { HELPER_FTP } = await import('../../../../src/conntrack/helpers/registry');
  const text = JSON.stringify({
    nftables: [
      { table: { family: 'inet', name: 'fw4' } },
      { 'ct helper': { family: 'inet', table: 'fw4', name: 'ftp', type: 'ftp', protocol: 'tcp', l3proto: 'inet' } },
      { chain: { family: 'inet', table: 'fw4', name: 'prerouting', type: 'filter', hook: 'prerouting', prio: 0, policy: 'accept' } },
      { chain: { family: 'inet', table: 'fw4', name: 'mangle_prerouting', type: 'filter', hook: 'prerouting', prio: -150, policy: 'accept' } },
      { chain: { family: 'inet', table: 'fw4', name: 'forward', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
      { rule: { family: 'inet', table: 'fw4', chain: 'prerouting', expr: [m(pl('tcp', 'dport'), 21), { 'ct helper': 'ftp' }] } },
      {
        rule: {
          family: 'inet',
          table: 'fw4',
          chain: 'mangle_prerouting',
          expr: [m(pl('tcp', 'dport'), 21), { mangle: { key: { meta: { key: 'mark' } }, value: 7 } }],
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw4',
          chain: 'forward',
          expr: [m({ ct: { key: 'helper' } }, 'ftp'), m({ meta: { key: 'mark' } }, 7), { accept: null }],
        },
      },
    ],
  });
  assert.deepEqual(preroutingNeed(parseNftRuleset(text, 'fw4.json').set), { 4: [[]], 6: [[]] });
  const fw = firewall(text);
  const syn = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 21, flags: 'S' }));
  const first = fw.decide(syn, 0, syn.length, syn.length, NF_INET_PRE_ROUTING, 4, IN, 0, 0, 0, 1000);
  assert.ok(first & VERDICT_SET_MARK, 'the mark goes back with the pre-routing verdict (policy routing sees it)');
  const o = forward(fw, ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40001, dport: 21, flags: 'S' })));
  assert.equal(o.verdict & VERDICT_MASK, NF_ACCEPT, 'forward saw the helper and the mark');
  assert.equal(fw.ct.helperOf(fw.ctx.entry), HELPER_FTP);
});
