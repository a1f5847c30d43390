/**
 * nf_nat_ftp through the real connection table: on a NATed control connection the FTP helper
 * rewrites PORT / EPRT / 227 / 229 to the address the peer sees (the destination of the
 * other direction's tuple) and a port the expectation could take (nf_nat_exp_find_port), the
 * packet's length, IP length and checksums follow (nf_nat_mangle_tcp_packet), the sequence
 * offset is recorded and applied (nf_conntrack_seqadj), and the expectation carries exp->dir
 * and the announced port (for nf_nat_follow_master). The control connection gets a SNAT
 * binding to the gateway's address (nat.ts natSetup, what MASQUERADE does) before its confirm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Conntrack } from '../../../src/conntrack/core';
import { NAT_MANIP_SRC, NF_NAT_RANGE_MAP_IPS, NatRange } from '../../../src/conntrack/nat';
import { createHelpers, HELPER_FTP } from '../../../src/conntrack/helpers/registry';
import { IPS_SRC_NAT } from '../../../src/conntrack/constants';
import { EXP_MASK_SRC_ADDR, EXP_OK } from '../../../src/conntrack/expect';
import { IPS_SEQ_ADJUST } from '../../../src/conntrack/seqadj';
import { TUPLE_WORDS, T_DST, T_META, T_PORTS, T_SRC } from '../../../src/conntrack/layout';
import { get16, get32 } from '../../../src/packet/bytes';
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from '../../../src/packet/checksum';
import { parseAddr } from '../../../src/packet/format';
import { NF_ACCEPT, NF_DROP, VERDICT_SET_PAYLOAD } from '../../../src/queue/layout';
import { ipv4, ipv6, tcp } from '../../helpers/packets';
import { ctxOf, tunables } from './util';

const words = (a: string) => parseAddr(a)!.words;

function lab(v6 = false) {
  const cli = v6 ? '2001:2::7' : '198.18.1.7';
  const srv = v6 ? '2001:2:1::1' : '198.19.2.1';
  const gw = v6 ? '2001:2:1::fe' : '198.19.0.254';
  const ct = new Conntrack(tunables(), { helpers: createHelpers() });
  const logs: string[] = [];
  ct.log = (m: string) => void logs.push(m);
  let cseq = 1000;
  let sseq = 5000;
  const mk = (fromCli: boolean, flags: string, payload: string, ack: number) =>
    (v6 ? ipv6 : ipv4)(
      { src: fromCli ? cli : srv, dst: fromCli ? srv : gw },
      tcp({ sport: fromCli ? 40000 : 21, dport: fromCli ? 21 : 40000, flags, seq: fromCli ? cseq : sseq, ack, window: 64000, payload }),
    );
  /** one packet (acking what the peer sent, or `ack`) in a buffer of `room` bytes (the queue's slot) through in + confirm */
  const send = (fromCli: boolean, flags: string, payload = '', room = 512, helper = 0, ack = fromCli ? sseq : cseq, bind = false) => {
    const p = mk(fromCli, flags, payload, ack);
    const buf = new Uint8Array(Math.max(room, p.length));
    buf.set(p);
    const ctx = ctxOf(p, { helper });
    ctx.view.buf = buf;
    ctx.room = room;
    assert.equal(ct.in(ctx, 1000), NF_ACCEPT);
    if (bind) {
      const r = new NatRange();
      r.flags = NF_NAT_RANGE_MAP_IPS;
      r.minAddr.set(words(gw));
      r.maxAddr.set(words(gw));
      assert.ok(ct.natSetup(ctx.entry, r, NAT_MANIP_SRC, 1000));
    }
    const verdict = ct.confirm(ctx, 1000) | ctx.verdictFlags;
    const len = ctx.view.len;
    const sent = payload.length + (flags.includes('S') ? 1 : 0);
    if (fromCli) cseq += sent;
    else sseq += sent;
    return {
      verdict,
      ctx,
      bytes: buf.subarray(0, len),
      text: Buffer.from(buf.subarray(ctx.view.payloadOff, ctx.view.payloadOff + ctx.view.payloadLen)).toString(),
    };
  };
  send(true, 'S', '', 512, HELPER_FTP, 0, true);
  const e = findEntry(ct);
  assert.ok(ct.table.status(e) & IPS_SRC_NAT);
  send(false, 'SA');
  send(true, 'A');
  send(false, 'PA', '220 hi\r\n');
  // the helper reads a segment that starts a line: the client's first command ends one
  send(true, 'PA', 'USER a\r\n');
  return { ct, e, send, logs };
}

function findEntry(ct: Conntrack): number {
  for (let e = 0; e < 1024; e++) if (ct.table.isAlloc(e)) return e;
  return -1;
}

/** the expectations as [src, dst, dport, natDir, savedPort] */
function expectations(ct: Conntrack): [string, string, number, number, number][] {
  const x = ct.expectations;
  const out: [string, string, number, number, number][] = [];
  x.forEach((i) => {
    const b = i * TUPLE_WORDS;
    const fam = x.tuples[b + T_META] >>> 8 === 6 ? 6 : 4;
    const s = x.tuples.subarray(b + T_SRC, b + T_SRC + 4);
    const d = x.tuples.subarray(b + T_DST, b + T_DST + 4);
    const fmt = (w: Uint32Array) =>
      fam === 4 ? [w[0] >>> 24, (w[0] >>> 16) & 255, (w[0] >>> 8) & 255, w[0] & 255].join('.') : Array.from(w, (n) => n.toString(16)).join(':');
    out.push([fmt(s), fmt(d), x.tuples[b + T_PORTS] & 0xffff, x.natDir[i], x.savedPort[i]]);
  });
  return out;
}

test('PORT on a MASQUERADEd connection: rewritten to the gateway address (2 bytes longer), expectation from the server to gw:port, sequence adjusted both ways', () => {
  const { ct, e, send } = lab();
  const r = send(true, 'PA', 'PORT 198,18,1,7,156,64\r\n');
  assert.equal(r.verdict, NF_ACCEPT | VERDICT_SET_PAYLOAD);
  assert.equal(r.text, 'PORT 198,19,0,254,156,64\r\n');
  assert.equal(get16(r.bytes, 2), r.bytes.length, 'IPv4 total length');
  assert.ok(verifyIpv4HeaderChecksum(r.bytes, 0));
  assert.ok(verifyL4Checksum(r.ctx.view));
  assert.deepEqual(expectations(ct), [['198.19.2.1', '198.19.0.254', 40000, 1, 40000]]);
  assert.ok(ct.table.status(e) & IPS_SEQ_ADJUST);
  // the next client segment follows the 2 grown bytes; the server's ack of them is taken back
  const n = send(true, 'PA', 'LIST\r\n');
  assert.equal(n.verdict, NF_ACCEPT | VERDICT_SET_PAYLOAD);
  assert.equal(get32(n.bytes, 24), 1009 + 24 + 2);
  // the server acks the 24 + 2 + 6 bytes it received; the client sees its own 1039
  const a = send(false, 'A', '', 512, 0, 1009 + 24 + 2 + 6);
  assert.equal(a.verdict, NF_ACCEPT | VERDICT_SET_PAYLOAD);
  assert.equal(get32(a.bytes, 28), 1009 + 24 + 6);
  assert.ok(verifyL4Checksum(a.ctx.view));
});

test('EPRT (IPv4 and IPv6 in %pI6 form), 227 and 229: the kernel text for each', () => {
  {
    const { ct, send } = lab();
    assert.equal(send(true, 'PA', 'EPRT |1|198.18.1.7|40001|\r\n').text, 'EPRT |1|198.19.0.254|40001|\r\n');
    assert.deepEqual(expectations(ct), [['198.19.2.1', '198.19.0.254', 40001, 1, 40001]]);
  }
  {
    const { ct, send } = lab(true);
    assert.equal(send(true, 'PA', 'EPRT |2|2001:2::7|40002|\r\n').text, 'EPRT |2|2001:0002:0001:0000:0000:0000:0000:00fe|40002|\r\n');
    assert.equal(expectations(ct)[0][2], 40002);
  }
  {
    // passive: the server's answer names itself (the ORIG destination: unchanged); the expected
    // connection comes from the client's own address (the ORIG source)
    const { ct, send } = lab();
    const r = send(false, 'PA', '227 Entering Passive Mode (198,19,2,1,117,48).\r\n');
    assert.equal(r.text, '227 Entering Passive Mode (198,19,2,1,117,48).\r\n');
    assert.deepEqual(expectations(ct), [['198.18.1.7', '198.19.2.1', 30000, 0, 30000]]);
    const r2 = send(false, 'PA', '229 Entering Extended Passive Mode (|||30001|)\r\n');
    assert.equal(r2.text, '229 Entering Extended Passive Mode (|||30001|)\r\n');
    // ftp's max_expected is 1: the new expectation replaces the older
    assert.deepEqual(expectations(ct), [['198.18.1.7', '198.19.2.1', 30001, 0, 30001]]);
  }
});

test('nf_nat_exp_find_port: a port an overlapping expectation holds (-EBUSY) makes it take a random one above, the text names it; an identical one of another master (-EALREADY) drops', () => {
  const other = (mask: number) => {
    const t = new Uint32Array(TUPLE_WORDS);
    t[T_META] = (4 << 8) | 6;
    t.set(words('198.19.2.1'), T_SRC);
    t.set(words('198.19.0.254'), T_DST);
    t[T_PORTS] = 40000;
    return t;
  };
  {
    const { ct, send } = lab();
    // another master (entry 77) expects anybody → 198.19.0.254:40000: overlaps ours, not identical
    assert.equal(ct.expectations.add(77, other(0), 0, 0, 0, 0, 0, 1, 300_000, 4096, 1000), EXP_OK);
    const r = send(true, 'PA', 'PORT 198,18,1,7,156,64\r\n');
    const m = /^PORT 198,19,0,254,(\d+),(\d+)\r\n$/.exec(r.text);
    assert.ok(m, r.text);
    const port = Number(m[1]) * 256 + Number(m[2]);
    assert.ok(port > 40000 && port < 65535, String(port));
    assert.deepEqual(
      expectations(ct).find((x) => x[2] === port),
      ['198.19.2.1', '198.19.0.254', port, 1, 40000],
    );
  }
  {
    const { ct, send, logs } = lab();
    assert.equal(ct.expectations.add(77, other(0), 0, EXP_MASK_SRC_ADDR, 0, 0, 0, 1, 300_000, 4096, 1000), EXP_OK);
    assert.equal(send(true, 'PA', 'PORT 198,18,1,7,156,64\r\n').verdict, NF_DROP);
    assert.ok(logs.includes('all ports in use'), logs.join('|'));
  }
});

test('no room to grow: the packet is dropped, "cannot mangle packet", the expectation taken back', () => {
  const { ct, send, logs } = lab();
  const p = 'PORT 198,18,1,7,156,64\r\n';
  const r = send(true, 'PA', p, 40 + p.length + 1);
  assert.equal(r.verdict, NF_DROP);
  assert.ok(logs.includes('cannot mangle packet'), logs.join('|'));
  assert.equal(ct.expectations.count, 0);
});
