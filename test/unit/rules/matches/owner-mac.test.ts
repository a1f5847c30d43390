import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, savedRule } from '../util';
import { ipv4, tcp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D, NF_INET_LOCAL_OUT, NF_INET_FORWARD, PKTF_HWADDR, PKTF_UID_GID } from '../../../../src/queue/layout';

const pkt = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 80 }));
const chain = (c: string, rule: string) =>
  ['*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT DROP [0:0]', `-A ${c} ${rule}`, 'COMMIT', ''].join('\n');

function out(rule: string, owner: { uid: number; gid: number } | null): number {
  const { engine } = engineFor(chain('OUTPUT', `${rule} -j ACCEPT`));
  const ctx = ctxFor(pkt, { hook: NF_INET_LOCAL_OUT, pktFlags: owner ? PKTF_UID_GID : 0 });
  ctx.uid = owner?.uid ?? 0;
  ctx.gid = owner?.gid ?? 0;
  return engine.evalFilter(ctx, 0);
}

test('-m owner: uid/gid ranges and negation on the queue owner; no socket matches only fully negated tests', () => {
  const u1000 = { uid: 1000, gid: 100 };
  assert.equal(out('-m owner --uid-owner 1000', u1000), A);
  assert.equal(out('-m owner --uid-owner 1001', u1000), D);
  assert.equal(out('-m owner --uid-owner 999-1000', u1000), A);
  assert.equal(out('-m owner ! --uid-owner 0', u1000), A);
  assert.equal(out('-m owner --gid-owner 100', u1000), A);
  assert.equal(out('-m owner --uid-owner 1000 ! --gid-owner 100', u1000), D);
  assert.equal(out('-m owner --socket-exists', u1000), A);
  assert.equal(out('-m owner ! --socket-exists', u1000), D);
  assert.equal(out('-m owner --uid-owner 0', { uid: 0, gid: 0 }), A);
  assert.equal(out('-m owner --uid-owner 4294967294', { uid: 0xfffffffe, gid: 0 }), A, 'above 2^31');
  // no UID/GID from the queue: as xt_owner without a socket, (match ^ invert) == 0
  assert.equal(out('-m owner --uid-owner 1000', null), D);
  assert.equal(out('-m owner ! --uid-owner 1000', null), A);
  assert.equal(out('-m owner ! --socket-exists', null), A);
  assert.equal(out('-m owner --socket-exists', null), D);
  assert.equal(out('-m owner ! --uid-owner 1000 --gid-owner 5', null), D);
});

test('-m owner: names from /etc/passwd and /etc/group, save, errors', () => {
  assert.equal(savedRule('-m owner --uid-owner root -j ACCEPT', 'OUTPUT'), '-A OUTPUT -m owner --uid-owner 0 -j ACCEPT');
  assert.equal(
    savedRule('-m owner ! --gid-owner 10:20 --uid-owner 0 --socket-exists', 'OUTPUT'),
    '-A OUTPUT -m owner --socket-exists --uid-owner 0 ! --gid-owner 10-20',
  );
  assert.equal(savedRule('-m owner ! --uid-owner 0-0', 'OUTPUT'), '-A OUTPUT -m owner ! --uid-owner 0');
  const errs = (r: string) => errorsOf(chain('OUTPUT', r));
  assert.deepEqual(errs('-m owner --uid-owner nosuchuser-xyz'), [
    'e.rules:5:32: Bad value for "--uid-owner" option: "nosuchuser-xyz" (a user name in /etc/passwd, or N[-M] up to 4294967294)',
  ]);
  assert.deepEqual(errs('-m owner --uid-owner 4294967295'), [
    'e.rules:5:32: Bad value for "--uid-owner" option: "4294967295" (a user name in /etc/passwd, or N[-M] up to 4294967294)',
  ]);
  assert.deepEqual(errs('-m owner --uid-owner 5-3'), ['e.rules:5:32: Bad value for "--uid-owner" option: "5-3" (range out of order)']);
  assert.deepEqual(errs('-m owner --gid-owner 5 --suppl-groups'), ['e.rules:5:34: option "--suppl-groups" of match owner is not supported']);
  assert.deepEqual(errs('-m owner'), ['e.rules:5:14: owner match needs --uid-owner, --gid-owner or --socket-exists']);
  assert.deepEqual(errorsOf(chain('INPUT', '-m owner --uid-owner 0')), [
    'e.rules:5:13: owner match is only valid in OUTPUT and POSTROUTING (the kernel refuses it in INPUT)',
  ]);
});

test('mac: iptables-save spelling', () => {
  assert.equal(savedRule('-m mac --mac-source AA:bb:cc:0:11:22 -j ACCEPT'), '-A FORWARD -m mac --mac-source aa:bb:cc:00:11:22 -j ACCEPT');
  assert.equal(savedRule('-m mac ! --mac-source aa:bb:cc:00:11:22'), '-A FORWARD -m mac ! --mac-source aa:bb:cc:00:11:22');
});

function fwd(rule: string, hw: [number, number] | null): number {
  const { engine } = engineFor(chain('FORWARD', `${rule} -j ACCEPT`));
  const ctx = ctxFor(pkt, { hook: NF_INET_FORWARD, pktFlags: hw ? PKTF_HWADDR : 0 });
  if (hw) [ctx.hwaddrHi, ctx.hwaddrLo] = hw;
  return engine.evalFilter(ctx, 0);
}

test('-m mac: the queue source address; none never matches, even negated; not in OUTPUT', () => {
  const hw: [number, number] = [0xaabbcc00, 0x1122];
  assert.equal(fwd('-m mac --mac-source aa:bb:cc:00:11:22', hw), A);
  assert.equal(fwd('-m mac --mac-source aa:bb:cc:00:11:23', hw), D);
  assert.equal(fwd('-m mac ! --mac-source aa:bb:cc:00:11:23', hw), A);
  assert.equal(fwd('-m mac ! --mac-source aa:bb:cc:00:11:22', hw), D);
  assert.equal(fwd('-m mac ! --mac-source aa:bb:cc:00:11:23', null), D);
  assert.deepEqual(errorsOf(chain('OUTPUT', '-m mac --mac-source aa:bb:cc:00:11:22')), [
    'e.rules:5:14: mac match is only valid in PREROUTING, INPUT and FORWARD (the kernel refuses it in OUTPUT)',
  ]);
  assert.deepEqual(errorsOf(chain('INPUT', '-m mac --mac-source aa:bb:cc:00:11')), ['e.rules:5:30: Bad mac address "aa:bb:cc:00:11"']);
});
