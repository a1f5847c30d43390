import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, ipv6, sctp, sctpInitValue, type SctpChunkSpec } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';

const DATA = (flags = 3): SctpChunkSpec => ({ type: 0, flags, data: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x61] });
const INIT: SctpChunkSpec = { type: 1, data: sctpInitValue(7) };
const SACK: SctpChunkSpec = { type: 3, data: [0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0] };
const ABORT = (flags = 0): SctpChunkSpec => ({ type: 6, flags });
const pkt = (chunks: SctpChunkSpec[], sport = 40000, dport = 5000) => ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, sctp({ sport, dport, vtag: 1, chunks }));
const v = (rule: string, p: Uint8Array) => engineFor(forward(`${rule} -j ACCEPT`)).engine.evalFilter(ctxFor(p), 0);

test('-p sctp --sport/--dport (implicit sctp match) and -m sctp: ports, ranges, negation; IPv6', () => {
  assert.equal(v('-p sctp --dport 5000', pkt([DATA()])), A);
  assert.equal(v('-p sctp --dport 5001', pkt([DATA()])), D);
  assert.equal(v('-p sctp ! --dport 5001', pkt([DATA()])), A);
  assert.equal(v('-p sctp --sport 39000:41000', pkt([DATA()])), A);
  assert.equal(v('-p sctp -m sctp --source-port :39999', pkt([DATA()])), D);
  assert.equal(v('-p sctp -m sctp --destination-port 5000:', pkt([DATA()])), A);
  assert.equal(v('-p sctp --dport 5000', ipv6({}, sctp({ dport: 5000, chunks: [DATA()] }))), A);
  // a UDP packet to the same port is not SCTP
  assert.equal(v('-p sctp --dport 53', ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, new Uint8Array(0))), D);
});

test('--chunk-types any / all / only, with types and flags', () => {
  const data = pkt([DATA()]);
  const dataSack = pkt([SACK, DATA()]);
  assert.equal(v('-p sctp -m sctp --chunk-types any INIT,DATA', data), A);
  assert.equal(v('-p sctp -m sctp --chunk-types any INIT,ABORT', data), D);
  assert.equal(v('-p sctp -m sctp ! --chunk-types any INIT,ABORT', data), A);
  assert.equal(v('-p sctp -m sctp --chunk-types all DATA,SACK', dataSack), A);
  assert.equal(v('-p sctp -m sctp --chunk-types all DATA,SACK,INIT', dataSack), D);
  assert.equal(v('-p sctp -m sctp --chunk-types only DATA,SACK,INIT', dataSack), A);
  assert.equal(v('-p sctp -m sctp --chunk-types only DATA', dataSack), D);
  assert.equal(v('-p sctp -m sctp --chunk-types only init', pkt([INIT])), A, 'names in any case');
  // flags: upper case = set, lower case = clear (DATA "----IUBE": B = 0x02, E = 0x01)
  assert.equal(v('-p sctp -m sctp --chunk-types any DATA:BE', data), A);
  assert.equal(v('-p sctp -m sctp --chunk-types any DATA:Be', data), D);
  assert.equal(v('-p sctp -m sctp --chunk-types any DATA:Be', pkt([DATA(2)])), A);
  assert.equal(v('-p sctp -m sctp --chunk-types any ABORT:T', pkt([ABORT(1)])), A);
  assert.equal(v('-p sctp -m sctp --chunk-types any ABORT:t', pkt([ABORT(1)])), D);
  // ONLY with flags: a listed type with other flags fails
  assert.equal(v('-p sctp -m sctp --chunk-types only DATA:E,SACK', dataSack), A);
  assert.equal(v('-p sctp -m sctp --chunk-types only DATA:e,SACK', dataSack), D);
  // ALL: every listed type must be present with matching flags
  assert.equal(v('-p sctp -m sctp --chunk-types all DATA:I,SACK', dataSack), D);
  // ALL / NONE as the whole list
  assert.equal(v('-p sctp -m sctp --chunk-types any ALL', data), A);
  assert.equal(v('-p sctp -m sctp --chunk-types all NONE', data), A);
  assert.equal(v('-p sctp -m sctp --chunk-types any NONE', data), D);
  assert.equal(v('-p sctp -m sctp --chunk-types only NONE', data), D);
  // I_DATA's flags are filed under its table index (libxt_sctp): they never apply
  const iData = pkt([{ type: 64, flags: 0, data: [0, 0, 0, 1] }]);
  assert.equal(v('-p sctp -m sctp --chunk-types any I_DATA:B', iData), A);
});

test('-m sctp hotdrops a packet whose chunks cannot be walked (no chunk, zero length) when chunk types are asked', () => {
  const noChunk = pkt([]);
  const dropThenAccept = (rule: string, p: Uint8Array) => engineFor(forward(`${rule} -j DROP`, '-j ACCEPT')).engine.evalFilter(ctxFor(p), 0);
  // the hotdrop ends the walk: the ACCEPT after the non-matching rule is never reached
  assert.equal(dropThenAccept('-p sctp -m sctp --chunk-types any INIT', noChunk), D);
  assert.equal(dropThenAccept('-p sctp -m sctp --chunk-types any INIT', pkt([DATA()])), A);
  assert.equal(v('-p sctp -m sctp --dport 5000', noChunk), A, 'without --chunk-types the chunks are not read');
  const zero = pkt([{ type: 0, length: 0, data: [0, 0, 0, 0] }]);
  assert.equal(dropThenAccept('-p sctp -m sctp --chunk-types only DATA', zero), D);
  // an ANY that matched before the bad chunk does not look further
  assert.equal(v('-p sctp -m sctp --chunk-types any DATA', pkt([DATA(), { type: 3, length: 0 }])), A);
  assert.equal(dropThenAccept('-p sctp -m sctp --chunk-types all DATA', pkt([DATA(), { type: 3, length: 0 }])), D);
  // a packet shorter than the common header
  assert.equal(dropThenAccept('-p sctp -m sctp --dport 5000', ipv4({ src: '198.18.1.1', dst: '198.19.2.1', proto: 132 }, new Uint8Array(8))), D);
});

test('-m sctp: iptables-save spelling (as iptables 1.8.9 prints it)', () => {
  assert.equal(
    savedRule('-p sctp --sport 1:100 ! --dport 5000 -m sctp --chunk-types any INIT,DATA:BeI,ABORT:t,SHUTDOWN_COMPLETE:T,I_DATA:B -j ACCEPT'),
    '-A FORWARD -p sctp -m sctp --sport 1:100 ! --dport 5000 -m sctp --chunk-types any DATA:IBe,INIT,ABORT:t,SHUTDOWN_COMPLETE:T,I_DATA -j ACCEPT',
  );
  assert.equal(savedRule('-p sctp -m sctp ! --chunk-types only NONE'), '-A FORWARD -p sctp -m sctp ! --chunk-types only NONE');
  assert.equal(savedRule('-p sctp -m sctp --chunk-types all ALL'), '-A FORWARD -p sctp -m sctp --chunk-types all ALL');
  assert.equal(savedRule('-p sctp -m sctp --chunk-types all DATA:-,data:ie'), '-A FORWARD -p sctp -m sctp --chunk-types all DATA:-ie');
  assert.equal(savedRule('-p sctp --sport :80 -m sctp --dport 90:'), '-A FORWARD -p sctp -m sctp --sport 0:80 -m sctp --dport 90:65535');
  assert.equal(savedRule('-p sctp --dport 80:80'), '-A FORWARD -p sctp -m sctp --dport 80');
  assert.equal(savedRule('-p sctp --dport amqp'), '-A FORWARD -p sctp -m sctp --dport 5672');
});

test('-m sctp errors with line and column', () => {
  const e = (r: string) => errorsOf(forward(r));
  assert.match(e('-p sctp -m sctp --chunk-types any FOO')[0], /^e\.rules:5:\d+: unknown SCTP chunk type "FOO"$/);
  assert.match(e('-p sctp -m sctp --chunk-types any INIT:x')[0], /^e\.rules:5:\d+: invalid flag "x" for SCTP chunk type INIT/);
  assert.match(e('-p sctp -m sctp --chunk-types some INIT')[0], /^e\.rules:5:\d+: match type has to be one of "all", "any" or "only"$/);
  assert.match(e('-p sctp -m sctp --chunk-types any INIT --chunk-types any DATA')[0], /--chunk-types given twice/);
  assert.match(e('-p sctp -m sctp --chunk-types any DATA:I,ABORT:T,SHUTDOWN_COMPLETE:T,INIT:-,SACK:-')[0], /more than 4 chunk types with flags/);
  assert.match(e('-p sctp --dport 90:80')[0], /out of order/);
  assert.match(e('-p sctp --dport nosuchservice')[0], /^e\.rules:5:\d+: bad port "nosuchservice"/);
  assert.equal(e('-m sctp --dport 80').length, 1, 'needs -p sctp');
});
