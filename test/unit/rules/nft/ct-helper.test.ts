/**
 * ct helper objects and `ct helper set` (nft_ct_helper_obj_eval) through the whole pipeline: the
 * helper is assigned to the unconfirmed connection of the packet that created it, after
 * conntrack; not to a confirmed one, not twice (IPS_HELPER), not for another protocol or a family
 * the object has no helper for; `ct helper "ftp"` tests the connection's own helper.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Firewall } from '../../../../src/pipeline/firewall';
import { loadRuleText } from '../../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../../src/conntrack/sysctl';
import { IPS_HELPER } from '../../../../src/conntrack/constants';
import { HELPER_FTP } from '../../../../src/conntrack/helpers/registry';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD } from '../../../../src/queue/layout';
import { ipv4, ipv6, tcp } from '../../../helpers/packets';
import { errorsOf } from '../util';

const pl = (protocol: string, field: string) => ({ payload: { protocol, field } });
const m = (left: unknown, right: unknown) => ({ match: { op: '==', left, right } });

function doc(helper: Record<string, unknown>, rules: unknown[][], family = 'inet'): string {
  const items: unknown[] = [
    { metainfo: { json_schema_version: 1 } },
    { table: { family, name: 't' } },
    { 'ct helper': { family, table: 't', name: 'ftp-std', type: 'ftp', protocol: 'tcp', ...helper } },
    { chain: { family, table: 't', name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
  ];
  for (const expr of rules) items.push({ rule: { family, table: 't', chain: 'fwd', expr } });
  return JSON.stringify({ nftables: items });
}

/** helper set on tcp dport 21, then: connections with the ftp helper accepted by one rule, others by the next */
const RULES = [
  [m(pl('tcp', 'dport'), 21), { 'ct helper': 'ftp-std' }],
  [m({ ct: { key: 'helper' } }, 'ftp'), { counter: { packets: 0, bytes: 0 } }, { accept: null }],
  [{ accept: null }],
];

function firewall(text: string) {
  const r = loadRuleText(text, 'h.json', { log: () => {}, ifname: () => undefined, reject: () => {} });
  assert.deepEqual(r.errors, []);
  const fw = new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
  const send = (p: Uint8Array, now: number) => {
    const v = fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, p[0] >> 4 === 6 ? 6 : 4, 2, 3, 0, 0, now);
    return { v, entry: fw.ctx.entry };
  };
  return { fw, send, counts: () => Array.from(r.rules!.counters.rulePkts) };
}

const syn = (dport: number, fam: 4 | 6 = 4) =>
  fam === 4
    ? ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport, flags: 'S' }))
    : ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, tcp({ sport: 40000, dport, flags: 'S' }));

test('ct helper set: the first packet of a connection gets the helper; the match sees it from then on', () => {
  const { fw, send, counts } = firewall(doc({ l3proto: 'inet' }, RULES));
  const a = send(syn(21), 1000);
  assert.equal(a.v, NF_ACCEPT);
  assert.equal(fw.ct.helperOf(a.entry), HELPER_FTP);
  assert.notEqual(fw.ct.table.status(a.entry) & IPS_HELPER, 0);
  // the SYN itself: the helper came in rule 1, so rule 2 matched it already (as in the kernel: the same packet goes on)
  assert.deepEqual(counts(), [1, 1, 0]);
  const b = send(syn(21), 1001); // a retransmission: the entry is confirmed now, nothing changes
  assert.equal(b.entry, a.entry);
  assert.deepEqual(counts(), [2, 2, 0]);
  const other = send(syn(22), 1002);
  assert.equal(fw.ct.helperOf(other.entry), 0);
  assert.deepEqual(counts(), [2, 2, 1]);
  const six = send(syn(21, 6), 1003);
  assert.equal(fw.ct.helperOf(six.entry), HELPER_FTP, 'l3proto inet: both families');
});

test('ct helper set: l3proto ip has no helper for IPv6; the table family is the default', () => {
  const { fw, send } = firewall(doc({ l3proto: 'ip' }, RULES));
  assert.equal(fw.ct.helperOf(send(syn(21, 6), 1000).entry), 0);
  assert.equal(fw.ct.helperOf(send(syn(21, 4), 1000).entry), HELPER_FTP);
  const ip6 = firewall(doc({}, RULES, 'ip6'));
  assert.equal(ip6.fw.ct.helperOf(ip6.send(syn(21, 6), 1000).entry), HELPER_FTP);
});

test('ct helper "ftp" without a helper, and before conntrack: no match (the load fails)', () => {
  const { send, counts } = firewall(doc({}, [RULES[1], [{ drop: null }]]));
  assert.equal(send(syn(21), 1000).v, NF_DROP);
  assert.deepEqual(counts(), [0, 1]);
});

test('ct helper objects nfqwall cannot honour are refused where a rule uses them', () => {
  const err = (h: Record<string, unknown>) => errorsOf(doc(h, RULES), 'gw.json')[0];
  assert.match(err({ type: 'sip', protocol: 'udp' }), /nftables\[2\]\["ct helper"\]\.type: nfqwall has no conntrack helper "sip"/);
  assert.match(err({ protocol: 'udp' }), /nftables\[2\]\["ct helper"\]\.protocol: no conntrack helper ftp for protocol "udp"/);
  assert.match(errorsOf(doc({}, [[{ 'ct helper': 'nope' }]]), 'gw.json')[0], /expr\[0\]\["ct helper"\]: no ct helper object "nope"/);
  // an object no rule uses is loaded, as the kernel loads it
  assert.deepEqual(errorsOf(doc({ type: 'sip', protocol: 'udp' }, [[{ accept: null }]]), 'gw.json'), []);
});
