import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, ipv6, udp, type Ipv6Ext } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';

/** an IPv6 UDP packet with these extension headers; the routing header's type and segments left patched in */
function pkt(exts: Ipv6Ext[], rtType = 0, segsLeft = 0): Uint8Array {
  const p = ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1', extHeaders: exts }, udp({ sport: 1000, dport: 53 }));
  let off = 40;
  let next = p[6];
  for (const e of exts) {
    if (next === 43) {
      p[off + 2] = rtType;
      p[off + 3] = segsLeft;
    }
    next = p[off];
    off += e.type === 44 ? 8 : e.type === 51 ? (p[off + 1] + 2) * 4 : (p[off + 1] + 1) * 8;
  }
  return p;
}
/** DROP when the rt match matches, ACCEPT when it does not; a hot-dropped packet is DROP too */
const v = (match: string, p: Uint8Array) => engineFor(forward(`${match} -j DROP`, '-j ACCEPT')).engine.evalFilter(ctxFor(p), 0);
/** ACCEPT only when it matches: tells a hot drop (DROP here) from a match */
const m = (match: string, p: Uint8Array) => engineFor(forward(`${match} -j ACCEPT`)).engine.evalFilter(ctxFor(p), 0);

test('-m rt: the routing header found as ipv6_find_hdr finds it; type, segments left, length', () => {
  const rh0 = pkt([{ type: 43, bytes: 24 }], 0, 1);
  assert.equal(v('-m rt --rt-type 0', rh0), D);
  assert.equal(v('-m rt --rt-type 2', rh0), A);
  assert.equal(v('-m rt ! --rt-type 2', rh0), D);
  assert.equal(v('-m rt --rt-segsleft 1', rh0), D);
  assert.equal(v('-m rt --rt-segsleft 2:5', rh0), A);
  assert.equal(v('-m rt ! --rt-segsleft 2:5', rh0), D);
  assert.equal(v('-m rt --rt-len 24', rh0), D);
  assert.equal(v('-m rt ! --rt-len 24', rh0), A);
  assert.equal(v('-m rt --rt-type 0 --rt-segsleft 0', rh0), A, 'every option must hold');
  assert.equal(m('-m rt', rh0), A, 'no option: any routing header');
  // behind hop-by-hop, destination options and AH
  assert.equal(v('-m rt --rt-type 0', pkt([{ type: 0 }, { type: 60, bytes: 16 }, { type: 51 }, { type: 43 }], 0, 0)), D);
  // no routing header, or one after a non-first fragment header (not walked): no match
  assert.equal(v('-m rt', pkt([{ type: 0 }])), A);
  assert.equal(m('-m rt', pkt([{ type: 0 }])), D);
  assert.equal(v('-m rt', pkt([{ type: 44, fragOffset: 8 }, { type: 43 }])), A);
  assert.equal(v('-m rt', pkt([{ type: 44, fragOffset: 0, more: true }, { type: 43 }])), D, 'a first fragment is walked');
  // a mobility header (135) is not one ipv6_find_hdr walks
  const mob = ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1', nextHeader: 135 }, new Uint8Array(8));
  assert.equal(v('-m rt', mob), A);
  // an IPv4 packet never reaches an IPv6-only rule
  assert.equal(v('-m rt', ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({}))), A);
});

test('-m rt: a header cut short hot-drops; one longer than the packet does not match', () => {
  const full = pkt([{ type: 0 }, { type: 43 }], 0, 0);
  // cut inside the routing header's fixed 4 bytes: hot drop (the ACCEPT rule is not reached)
  const cut = full.slice(0, 40 + 8 + 3);
  cut[4] = 0;
  cut[5] = 11;
  assert.equal(v('-m rt --rt-type 9', cut), D, 'hot-dropped: the ACCEPT rule after it is not reached');
  assert.equal(m('-m rt ! --rt-type 9', full), A, 'the whole packet: a type-0 header, not 9');
  // routing header claiming 16 bytes with 8 left: no match, no drop
  const long = pkt([{ type: 43 }], 0, 0).slice(0, 40 + 8);
  long[4] = 0;
  long[5] = 8;
  long[41] = 1;
  assert.equal(v('-m rt', long), A);
});

test('-m rt: ip6tables-save spelling (checked against ip6tables 1.8.9) and refusals', () => {
  assert.equal(savedRule('-m rt --rt-type 0'), '-A FORWARD -m rt --rt-type 0');
  assert.equal(savedRule('-m rt ! --rt-type 2 --rt-segsleft 1:5'), '-A FORWARD -m rt ! --rt-type 2 --rt-segsleft 1:5');
  assert.equal(savedRule('-m rt ! --rt-segsleft 3'), '-A FORWARD -m rt ! --rt-segsleft 3');
  assert.equal(savedRule('-m rt --rt-len 24 --rt-type 0'), '-A FORWARD -m rt --rt-type 0 --rt-len 24');
  const e = (r: string) => errorsOf(forward(r)).map((x) => x.replace(/^e\.rules:\d+:\d+: /, ''));
  assert.deepEqual(e('-m rt --rt-type 256'), ['rt: bad value for option "--rt-type", or out of range (0-255).']);
  assert.deepEqual(e('-m rt --rt-type 0 --rt-0-res'), ['option "--rt-0-res" of match rt is not supported']);
});
