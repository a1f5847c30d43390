import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, tcp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';

const pkt = (payload: string) => ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ dport: 80, payload: new Uint8Array(Buffer.from(payload, 'latin1')) }));
const v = (rule: string, p: Uint8Array) => engineFor(forward(`${rule} -j ACCEPT`)).engine.evalFilter(ctxFor(p), 0);

test('-m string: bm and kmp, --icase, hex, --from/--to from the IP header, negation', () => {
  const get = pkt('GET /admin HTTP/1.1\r\n');
  assert.equal(v('-m string --string "/admin" --algo bm', get), A);
  assert.equal(v('-m string --string "/admin" --algo kmp', get), A);
  assert.equal(v('-m string --string "/ADMIN" --algo bm', get), D);
  assert.equal(v('-m string --string "/ADMIN" --algo bm --icase', get), A);
  assert.equal(v('-m string ! --string "/secret" --algo bm', get), A);
  assert.equal(v('-m string --hex-string "|2f 61|dmin" --algo kmp', get), A);
  // the payload starts at 40 (20 IP + 20 TCP): "GET" is bytes 40-42
  assert.equal(v('-m string --string "GET" --algo bm --from 40 --to 43', get), A);
  assert.equal(v('-m string --string "GET" --algo bm --from 40 --to 42', get), D, 'the whole pattern must lie before --to');
  assert.equal(v('-m string --string "GET" --algo bm --from 41', get), D);
});

test('-m string: iptables-save spelling and errors', () => {
  assert.equal(savedRule('-m string --string "GET /x" --algo bm'), '-A FORWARD -m string --string "GET /x" --algo bm');
  assert.equal(
    savedRule('-m string ! --hex-string "|00 01|ab" --algo kmp --from 20 --to 100 --icase'),
    '-A FORWARD -m string ! --hex-string "|00016162|" --algo kmp --from 20 --to 100 --icase',
  );
  assert.equal(savedRule('-m string --hex-string "|41 42|" --algo bm --to 0'), '-A FORWARD -m string --string "AB" --algo bm --to 0');
  const e = (r: string) => errorsOf(forward(r));
  assert.deepEqual(e('-m string --string x'), ['e.rules:5:15: string match needs --algo bm or --algo kmp']);
  assert.deepEqual(e('-m string --string x --algo ac'), ['e.rules:5:40: bad --algo "ac" (bm or kmp)']);
  assert.deepEqual(e('-m string --hex-string "|4|" --algo bm'), ['e.rules:5:35: bad hex string "|4|" (invalid hex char at 1)']);
});
