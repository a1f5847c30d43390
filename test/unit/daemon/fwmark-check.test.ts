/** The policy routing rules named in the crossing-bits warning (src/daemon/fwmark-check.ts), from `ip -j rule show` as iproute2 prints it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rulesSeeingCrossBits } from '../../../src/daemon/fwmark-check';

test('a bare fwmark (full mask) or a mask with bit 28 or 29 is named; masks without them and rules without fwmark are not', () => {
  const json = JSON.stringify([
    { priority: 0, src: 'all', table: 'local' },
    { priority: 32761, src: 'all', fwmark: '0x7', fwmask: '0xfffffff', table: '101' },
    { priority: 32762, src: 'all', fwmark: '0x1', fwmask: '0x10000001', table: '102' },
    { priority: 32763, src: 'all', fwmark: '0x0', fwmask: '0x20000000', table: '103' },
    { priority: 32765, src: 'all', fwmark: '0x7', table: '100' },
    { priority: 32766, src: 'all', table: 'main' },
  ]);
  assert.deepEqual(rulesSeeingCrossBits(json, 4), [
    'ip -4 rule 32762: fwmark 0x1/0x10000001 lookup 102',
    'ip -4 rule 32763: fwmark 0x0/0x20000000 lookup 103',
    'ip -4 rule 32765: fwmark 0x7 lookup 100',
  ]);
  assert.deepEqual(rulesSeeingCrossBits('not json', 6), []);
  assert.deepEqual(rulesSeeingCrossBits('[]', 6), []);
});
