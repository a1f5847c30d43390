import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4, tcp } from '../../helpers/packets';
import { createHelpers, HELPER_FTP } from '../../../src/conntrack/helpers/registry';
import { IP_CT_ESTABLISHED, IP_CT_NEW, IP_CT_RELATED } from '../../../src/conntrack/constants';
import { formatConntrack, formatExpect } from '../../../src/conntrack/format';
import { makeCt, pass } from './util';

const C = '198.18.0.2';
const S = '198.19.0.2';

test('FTP through the core: passive mode makes the data connection RELATED with the ftp master', () => {
  const { ct } = makeCt({}, { helpers: createHelpers() });
  let cseq = 1000;
  let sseq = 5000;
  const c = (flags: string, payload = '', now = 0) => {
    const p = pass(ct, ipv4({ src: C, dst: S }, tcp({ sport: 39000, dport: 21, flags, seq: cseq, ack: sseq, window: 502, payload })), now, {
      helper: HELPER_FTP,
    });
    cseq += payload.length + (flags.includes('S') ? 1 : 0);
    return p;
  };
  const s = (flags: string, payload = '', now = 0) => {
    const p = pass(ct, ipv4({ src: S, dst: C }, tcp({ sport: 21, dport: 39000, flags, seq: sseq, ack: cseq, window: 509, payload })), now);
    sseq += payload.length + (flags.includes('S') ? 1 : 0);
    return p;
  };
  const syn = c('S');
  assert.equal(syn.ctinfo, IP_CT_NEW);
  const ctl = syn.entry;
  assert.equal(ct.helperName(ctl), 'ftp');
  s('SA');
  c('A');
  s('PA', '220 hello\r\n');
  c('PA', 'PASV\r\n');
  s('PA', '227 Entering Passive Mode (198,19,0,2,156,187).\r\n', 3000);
  assert.equal(ct.expectations.count, 1);
  const lines: string[] = [];
  ct.expectations.forEach((x) => lines.push(formatExpect(ct, x, 6000)));
  assert.deepEqual(lines, [
    '297 proto=6 src=198.18.0.2 dst=198.19.0.2 sport=0 dport=40123 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=198.18.0.2 master-dst=198.19.0.2 sport=39000 dport=21 class=0 helper=ftp',
  ]);
  assert.match(formatConntrack(ct, ctl, 3000), / helper=ftp use=1$/);
  const data = pass(ct, ipv4({ src: C, dst: S }, tcp({ sport: 45000, dport: 40123, flags: 'S', seq: 1 })), 4000);
  assert.equal(data.ctinfo, IP_CT_RELATED);
  assert.equal(data.masterHelper, HELPER_FTP);
  assert.equal(ct.expectations.count, 0);
  assert.equal(c('A', '', 4001).ctinfo, IP_CT_ESTABLISHED);
});
