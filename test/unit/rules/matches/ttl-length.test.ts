import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, ipv6, tcp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';

const v4 = (ttl: number, payload = 0) => ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ttl }, tcp({ payload: new Uint8Array(payload) }));
const v6 = (hl: number, payload = 0) => ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1', hopLimit: hl }, tcp({ payload: new Uint8Array(payload) }));
const v = (rule: string, pkt: Uint8Array) => engineFor(forward(`${rule} -j ACCEPT`)).engine.evalFilter(ctxFor(pkt), 0);

test('-m ttl / -m hl: eq, ! eq, lt, gt; each only in its family', () => {
  assert.equal(v('-m ttl --ttl-eq 63', v4(63)), A);
  assert.equal(v('-m ttl --ttl-eq 63', v4(64)), D);
  assert.equal(v('-m ttl ! --ttl-eq 63', v4(64)), A);
  assert.equal(v('-m ttl --ttl-lt 2', v4(1)), A);
  assert.equal(v('-m ttl --ttl-lt 2', v4(2)), D);
  assert.equal(v('-m ttl --ttl-gt 254', v4(255)), A);
  assert.equal(v('-m ttl --ttl-gt 254', v6(255)), D, 'an IPv4 match: the rule is IPv4 only');
  assert.equal(v('-m hl --hl-eq 7', v6(7)), A);
  assert.equal(v('-m hl ! --hl-eq 7', v6(7)), D);
  assert.equal(v('-m hl --hl-lt 8', v6(7)), A);
  assert.equal(v('-m hl --hl-lt 8', v4(7)), D);
});

test('-m length: IPv4 total length, IPv6 payload length + 40; ranges and negation', () => {
  assert.equal(v('-m length --length 40', v4(64)), A, '20 + 20');
  assert.equal(v('-m length --length 41:100', v4(64)), D);
  assert.equal(v('-m length ! --length 41:100', v4(64)), A);
  assert.equal(v('-m length --length 1000:', v4(64, 960)), A);
  assert.equal(v('-m length --length :59', v6(64)), D, '40 + 20 = 60');
  assert.equal(v('-m length --length 60', v6(64)), A);
});

test('ttl/hl/length: iptables-save spelling and errors', () => {
  assert.equal(savedRule('-m ttl ! --ttl-eq 5'), '-A FORWARD -m ttl ! --ttl-eq 5');
  assert.equal(savedRule('-m ttl --ttl-lt 5'), '-A FORWARD -m ttl --ttl-lt 5');
  assert.equal(savedRule('-m hl --hl-gt 3'), '-A FORWARD -m hl --hl-gt 3');
  assert.equal(savedRule('-m length --length 10:'), '-A FORWARD -m length --length 10:65535');
  assert.equal(savedRule('-m length ! --length 10:10'), '-A FORWARD -m length ! --length 10');
  const e = (r: string) => errorsOf(forward(r));
  assert.deepEqual(e('-m ttl --ttl-eq 256'), ['e.rules:5:28: bad value for option "--ttl-eq", or out of range (0-255)']);
  assert.deepEqual(e('-m ttl --ttl-eq 1 --ttl-lt 3'), ['e.rules:5:30: only one of --ttl-eq, --ttl-lt, --ttl-gt is allowed']);
  assert.deepEqual(e('-m ttl ! --ttl-lt 3'), ['e.rules:5:19: option "--ttl-lt" cannot be inverted']);
  assert.deepEqual(e('-m hl'), ['e.rules:5:15: hl match needs one of --hl-eq, --hl-lt, --hl-gt']);
  assert.deepEqual(e('-m length --length 5:3'), ['e.rules:5:31: bad --length "5:3" (range out of order)']);
  assert.deepEqual(e('-m length --length x'), ['e.rules:5:31: bad --length "x" (N or N:M, 0..65535)']);
  assert.deepEqual(e('-m length --length 70000'), ['e.rules:5:31: bad --length "70000" (N or N:M, 0..65535)']);
});
