import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4, udp } from '../../helpers/packets';
import {
  CTSTATE_ESTABLISHED,
  CTSTATE_NEW,
  CTSTATE_UNTRACKED,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NEW,
  IP_CT_UNTRACKED,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
} from '../../../src/conntrack/constants';
import { NF_ACCEPT } from '../../../src/queue/layout';
import { makeCt, pass, ctxOf } from './util';

const C = '198.18.0.2';
const S = '198.19.0.2';
const q = () => ipv4({ src: C, dst: S }, udp({ sport: 5353, dport: 53, payload: 'q' }));
const r = () => ipv4({ src: S, dst: C }, udp({ sport: 53, dport: 5353, payload: 'r' }));

test('first packet creates an unconfirmed entry; confirm inserts it', () => {
  const { ct } = makeCt();
  const ctx = ctxOf(q());
  assert.equal(ct.in(ctx, 1000), NF_ACCEPT);
  assert.equal(ctx.ctinfo, IP_CT_NEW);
  assert.equal(ctx.ctstate, CTSTATE_NEW);
  assert.equal(ctx.unconfirmed, 1);
  assert.ok(ctx.entry >= 0);
  assert.equal(ct.count, 1);
  assert.equal(ctx.ctstatus & IPS_CONFIRMED, 0);
  assert.equal([...ct.entries()].length, 0, 'unconfirmed entries are not listed');
  assert.equal(ct.confirm(ctx, 1000), NF_ACCEPT);
  assert.equal(ctx.unconfirmed, 0);
  assert.ok(ct.isConfirmed(ctx.entry));
  assert.deepEqual([...ct.entries()], [ctx.entry]);
  assert.equal(ct.tun.nf_conntrack_count, 1);
  // timeout became absolute at confirmation: 30 s from now
  assert.equal(ct.timeoutLeft(ctx.entry, 1000), 30);
});

test('abort frees the unconfirmed entry; the next packet is NEW again', () => {
  const { ct } = makeCt();
  const a = pass(ct, q(), 0, { drop: true });
  assert.equal(a.ctinfo, IP_CT_NEW);
  assert.equal(ct.count, 0);
  assert.equal(ct.tun.nf_conntrack_count, 0);
  assert.equal([...ct.entries()].length, 0);
  const b = pass(ct, q(), 10);
  assert.equal(b.ctinfo, IP_CT_NEW);
  assert.equal(ct.count, 1);
  // abort of a packet of a confirmed entry removes nothing
  const c = ctxOf(q());
  ct.in(c, 20);
  ct.abort(c);
  assert.equal(ct.count, 1);
});

test('ctinfo: NEW until a reply, reply is ESTABLISHED_REPLY, SEEN_REPLY after the tracker', () => {
  const { ct } = makeCt();
  const a = pass(ct, q(), 0);
  const a2 = pass(ct, q(), 10);
  assert.equal(a2.ctinfo, IP_CT_NEW, 'still NEW before any reply');
  assert.equal(a2.entry, a.entry);
  const b = pass(ct, r(), 20);
  assert.equal(b.ctinfo, IP_CT_ESTABLISHED_REPLY);
  assert.equal(b.ctstate, CTSTATE_ESTABLISHED);
  assert.equal(b.entry, a.entry);
  assert.ok(ct.status(a.entry) & IPS_SEEN_REPLY);
  const c = pass(ct, q(), 30);
  assert.equal(c.ctinfo, IP_CT_ESTABLISHED);
  assert.equal(ct.count, 1);
});

test('notrack packets are UNTRACKED and create nothing', () => {
  const { ct } = makeCt();
  const ctx = pass(ct, q(), 0, { notrack: 1 });
  assert.equal(ctx.ctinfo, IP_CT_UNTRACKED);
  assert.equal(ctx.ctstate, CTSTATE_UNTRACKED);
  assert.equal(ctx.entry, -1);
  assert.equal(ct.count, 0);
  assert.equal(ct.stats.invalid, 0);
});
