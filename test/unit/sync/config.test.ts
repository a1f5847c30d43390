import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSyncConfig, SyncConfigError } from '../../../src/sync/config';

test('sync file: udp and multicast, defaults', () => {
  assert.deepEqual(parseSyncConfig('# gateway A\naddress 198.18.250.1\npeer 198.18.250.2  # the backup\n', 'f'), {
    mode: 'notrack',
    transport: 'udp',
    address: '198.18.250.1',
    peer: '198.18.250.2',
    group: '',
    port: 3780,
    windowTracking: false,
    peerTimeoutSec: 3,
  });
  const m = parseSyncConfig('mode notrack\ntransport multicast\naddress 198.18.250.1\ngroup 225.0.0.50\nport 3781\nwindow-tracking on\npeer-timeout 5\n', 'f');
  assert.deepEqual([m.transport, m.group, m.port, m.windowTracking, m.peerTimeoutSec], ['multicast', '225.0.0.50', 3781, true, 5]);
});

test('sync file: errors with FILE:LINE:COL', () => {
  const errs = (text: string) => {
    try {
      parseSyncConfig(text, 'sync.conf');
    } catch (e) {
      assert.ok(e instanceof SyncConfigError);
      return e.errors;
    }
    assert.fail('no error');
  };
  assert.deepEqual(errs('mode ftfw\naddress 198.18.250.1\npeer 198.18.250.2\n'), ['sync.conf:1:6: mode ftfw is not implemented yet (notrack only)']);
  assert.deepEqual(errs('  interface eth2\naddress 198.18.250.1\npeer 225.0.0.1\nport 70000\n'), [
    "sync.conf:1:3: unknown key 'interface' (mode, transport, address, peer, group, port, window-tracking, peer-timeout)",
    "sync.conf:3:6: '225.0.0.1' is a multicast address",
    "sync.conf:4:6: '70000' is not a number from 1 to 65535",
  ]);
  assert.deepEqual(errs('transport multicast\naddress 198.18.250.1\ngroup 198.18.0.1 x\n'), [
    'sync.conf:3:18: one value per key',
    "sync.conf: 'group' is needed with transport multicast",
  ]);
});
