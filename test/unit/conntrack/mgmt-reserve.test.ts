import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4, tcp, udp } from '../../helpers/packets';
import { IP_CT_NEW } from '../../../src/conntrack/constants';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT } from '../../../src/queue/layout';
import { makeCt, pass } from './util';

const GW = '198.18.0.1';
const flood = (i: number) => ipv4({ src: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, dst: '198.19.0.2' }, udp({ sport: 1000 + i, dport: 53, payload: 'q' }));
const floodReply = (i: number) => ipv4({ src: '198.19.0.2', dst: `198.18.${(i >> 8) & 0xff}.${i & 0xff}` }, udp({ sport: 53, dport: 1000 + i, payload: 'r' }));
/** n UDP flows forwarded, each replied and seen again after 2 s (ASSURED: early drop never evicts them, so a full table drops deterministically). */
function assuredFlood(ct: ReturnType<typeof makeCt>['ct'], n: number): void {
  for (let i = 0; i < n; i++) {
    pass(ct, flood(i), 0, { hook: NF_INET_FORWARD });
    pass(ct, floodReply(i), 10, { hook: NF_INET_FORWARD });
    pass(ct, flood(i), 2500, { hook: NF_INET_FORWARD });
  }
}
const scrape = (i: number) => ipv4({ src: '198.18.9.9', dst: GW }, tcp({ sport: 40000 + i, dport: 9100, flags: 'S' }));

test('mgmt_reserve: other flows stop at max - reserve, management flows (INPUT/OUTPUT to mgmt_port) take the rest', () => {
  const { ct } = makeCt({ nf_conntrack_max: 8, nf_conntrack_buckets: 1 << 16, mgmt_reserve: 3, mgmt_port: 9100 });
  assuredFlood(ct, 40);
  assert.equal(ct.count, 5, 'the flood stops at max - reserve');
  const drops = ct.stats.drop;
  assert.equal(drops, 35 * 3, 'each packet of the 35 flows beyond it dropped');
  // the gateway's own connection out to port 9100 is management traffic, as are scrapes to it
  const out = ipv4({ src: GW, dst: '198.19.0.3' }, tcp({ sport: 50000, dport: 9100, flags: 'S' }));
  assert.equal(pass(ct, out, 3000, { hook: NF_INET_LOCAL_OUT }).queue, NF_ACCEPT);
  for (let i = 0; i < 2; i++) {
    const x = pass(ct, scrape(i), 3000, { hook: NF_INET_LOCAL_IN });
    assert.equal(x.ctinfo, IP_CT_NEW);
    assert.equal(x.queue, NF_ACCEPT, `scrape ${i} admitted`);
  }
  assert.equal(ct.count, 8);
  assert.equal(ct.stats.drop, drops, 'no management packet dropped');
});

test('mgmt_reserve: the same port through the gateway (FORWARD) or another local port is not management traffic', () => {
  const { ct } = makeCt({ nf_conntrack_max: 4, nf_conntrack_buckets: 1 << 16, mgmt_reserve: 2, mgmt_port: 9100 });
  const fwd = (i: number) => ipv4({ src: '198.18.9.9', dst: '198.19.0.2' }, tcp({ sport: 40000 + i, dport: 9100, flags: 'S' }));
  const ssh = (i: number) => ipv4({ src: '198.18.9.9', dst: GW }, tcp({ sport: 41000 + i, dport: 22, flags: 'S' }));
  for (let i = 0; i < 10; i++) pass(ct, fwd(i), 0, { hook: NF_INET_FORWARD });
  for (let i = 0; i < 10; i++) pass(ct, ssh(i), 0, { hook: NF_INET_LOCAL_IN });
  assert.equal(ct.count, 2, 'non-management flows stop at max - reserve');
  assert.equal(pass(ct, scrape(0), 0, { hook: NF_INET_LOCAL_IN }).queue, NF_ACCEPT);
  assert.equal(pass(ct, scrape(1), 0, { hook: NF_INET_LOCAL_IN }).queue, NF_ACCEPT);
  assert.equal(ct.count, 4);
});

test('mgmt_reserve 0 (the default) keeps the kernel limit for every flow', () => {
  const { ct } = makeCt({ nf_conntrack_max: 4, nf_conntrack_buckets: 1 << 16, mgmt_port: 9100 });
  assuredFlood(ct, 10);
  assert.equal(ct.count, 4);
  assert.equal(pass(ct, scrape(0), 3000, { hook: NF_INET_LOCAL_IN }).queue, NF_DROP);
});
