import { describe, it, beforeEach } from 'node:test';
import * as assert from 'node:assert/strict';

import { FtpHelper, NUM_SEQ_TO_REMEMBER } from '../../../src/conntrack/helpers/ftp';
import { createHelpers, helperId, helperName, HELPER_FTP } from '../../../src/conntrack/helpers/registry';
import type { HelperHost } from '../../../src/conntrack/helpers/helper';
import { IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY, IP_CT_NEW, IP_CT_RELATED, PKT_ACCEPT, PKT_DROP } from '../../../src/conntrack/constants';
import { defaultTunables, type TunableValues } from '../../../src/conntrack/sysctl';
import { PacketView } from '../../../src/packet/view';
import { EXP_EMFILE, EXP_OK } from '../../../src/conntrack/expect';
import { parseAddr } from '../../../src/packet/format';

// ---------------------------------------------------------------------------
// Fake host

function v4(text: string): number[] {
  const a = parseAddr(text);
  assert.equal(a?.family, 4, text);
  return Array.from(a!.words);
}

function v6(text: string): number[] {
  const a = parseAddr(text);
  assert.equal(a?.family, 6, text);
  return Array.from(a!.words);
}

interface ExpectCall {
  e: number;
  proto: number;
  src: number[] | null;
  sport: number;
  dst: number[];
  dport: number;
  policy: { maxExpected: number; timeoutSec: number };
  now: number;
}

interface Conn {
  family: 4 | 6;
  src: number[]; // ORIG source (client)
  dst: number[]; // ORIG destination (server)
  sport: number;
  dport: number;
}

class FakeHost implements HelperHost {
  tun: TunableValues = defaultTunables(8 * 1024 ** 3);
  conns = new Map<number, Conn>();
  calls: ExpectCall[] = [];
  logs: string[] = [];
  expectResult = true;

  family(e: number): number {
    return this.conn(e).family;
  }
  private conn(e: number): Conn {
    const c = this.conns.get(e);
    if (!c) throw new Error('no entry ' + e);
    return c;
  }
  tupleAddr(e: number, dir: number, which: number, out: Uint32Array): void {
    const c = this.conn(e);
    // ORIG: src → dst; REPLY: dst → src
    const a = (dir === 0) === (which === 0) ? c.src : c.dst;
    out.set(a);
  }
  tuplePort(e: number, dir: number, which: number): number {
    const c = this.conn(e);
    return (dir === 0) === (which === 0) ? c.sport : c.dport;
  }
  expect(
    e: number,
    proto: number,
    src: Uint32Array | null,
    sport: number,
    dst: Uint32Array,
    dport: number,
    policy: { maxExpected: number; timeoutSec: number },
    now: number,
  ): number {
    this.calls.push({
      e,
      proto,
      src: src ? Array.from(src) : null,
      sport,
      dst: Array.from(dst),
      dport,
      policy: { ...policy },
      now,
    });
    return this.expectResult ? EXP_OK : EXP_EMFILE;
  }
  log(msg: string): void {
    this.logs.push(msg);
  }
  // the NAT part of the helper is tested through the real table (ftp-nat.test.ts): never NATed here
  natted(): boolean {
    return false;
  }
  unexpectLast(): void {
    throw new Error('not NATed: unexpectLast is not called');
  }
  mangleTcp(): boolean {
    throw new Error('not NATed: mangleTcp is not called');
  }
}

const CLIENT4 = '198.18.0.2';
const SERVER4 = '198.19.0.2';
const CLIENT6 = '2001:2::2';
const SERVER6 = '2001:2:0:1::2';

// ---------------------------------------------------------------------------
// Packet views: payload placed after 40 junk bytes (a pretend IP+TCP header) to
// check that the helper honours payloadOff.

const HDR = 40;

function view(payload: string | Uint8Array, seq: number): PacketView {
  const p = typeof payload === 'string' ? new Uint8Array(Buffer.from(payload, 'latin1')) : payload;
  const v = new PacketView();
  const buf = new Uint8Array(HDR + p.length + 7);
  buf.fill(0x41); // 'A' all around, to catch reads outside the payload
  buf.set(p, HDR);
  v.buf = buf;
  v.off = 0;
  v.len = HDR + p.length;
  v.proto = 6;
  v.payloadOff = HDR;
  v.payloadLen = p.length;
  v.seq = seq >>> 0;
  return v;
}

/**
 * One control connection with a helper, with a helper-level "stream" per
 * direction: send() feeds the next segment at the running sequence number.
 */
class Session {
  readonly e: number;
  readonly seq = [1000, 5000];
  constructor(
    readonly host: FakeHost,
    readonly ftp: FtpHelper,
    e: number,
    family: 4 | 6 = 4,
  ) {
    this.e = e;
    const [c, s] = family === 4 ? [v4(CLIENT4), v4(SERVER4)] : [v6(CLIENT6), v6(SERVER6)];
    host.conns.set(e, { family, src: c, dst: s, sport: 40000, dport: 21 });
    ftp.resize(e + 1);
    ftp.init(e);
  }
  /** Send payload in direction dir at the current stream position (advancing it). */
  send(dir: number, payload: string, now = 0): number {
    const v = view(payload, this.seq[dir]);
    this.seq[dir] = (this.seq[dir] + v.payloadLen) >>> 0;
    return this.ftp.help(this.host, this.e, dir, dir === 0 ? IP_CT_ESTABLISHED : IP_CT_ESTABLISHED_REPLY, v, now);
  }
  /** Send at an explicit sequence number without moving the stream. */
  sendAt(dir: number, seq: number, payload: string): number {
    return this.ftp.help(this.host, this.e, dir, dir === 0 ? IP_CT_ESTABLISHED : IP_CT_ESTABLISHED_REPLY, view(payload, seq), 0);
  }
  /** Get both directions to a recorded line start (the greeting and USER lines). */
  warmUp(): void {
    assert.equal(this.send(1, '220 Welcome\r\n'), PKT_ACCEPT);
    assert.equal(this.send(0, 'USER anonymous\r\n'), PKT_ACCEPT);
  }
}

let host: FakeHost;
let ftp: FtpHelper;
let s: Session;

function fresh(family: 4 | 6 = 4): void {
  host = new FakeHost();
  ftp = new FtpHelper();
  s = new Session(host, ftp, 3, family);
  s.warmUp();
  assert.equal(host.calls.length, 0);
}

function lastCall(): ExpectCall {
  assert.equal(host.calls.length, 1, 'exactly one expectation');
  return host.calls[0];
}

// ---------------------------------------------------------------------------

describe('ftp helper: registry', () => {
  it('maps names and ids', () => {
    assert.equal(helperId('ftp'), 1);
    assert.equal(HELPER_FTP, 1);
    assert.equal(helperId('FTP'), 0);
    assert.equal(helperId('ftp-2121'), 0);
    assert.equal(helperId(''), 0);
    assert.equal(helperName(1), 'ftp');
    assert.equal(helperName(0), '');
    assert.equal(helperName(99), '');
  });
  it('creates fresh instances indexed by id', () => {
    const a = createHelpers();
    const b = createHelpers();
    assert.equal(a.length, 2);
    assert.ok(a[1] instanceof FtpHelper);
    assert.equal(a[1].name, 'ftp');
    assert.equal(a[1].protonum, 6);
    assert.notEqual(a[1], b[1]);
    assert.equal(a[0].name, '');
    for (const h of a) h.resize(16); // index 0 is iterable and inert
    assert.equal(a[0].help(new FakeHost(), 0, 0, IP_CT_ESTABLISHED, view('PORT', 0), 0), PKT_ACCEPT);
  });
});

describe('ftp helper: PORT', () => {
  beforeEach(() => fresh());

  it('PORT with the client address creates server:any → client:port', () => {
    assert.equal(s.send(0, 'PORT 198,18,0,2,156,64\r\n', 1234), PKT_ACCEPT);
    const c = lastCall();
    assert.equal(c.e, 3);
    assert.equal(c.proto, 6);
    assert.deepEqual(c.src, v4(SERVER4));
    assert.equal(c.sport, -1);
    assert.deepEqual(c.dst, v4(CLIENT4));
    assert.equal(c.dport, 156 * 256 + 64);
    assert.deepEqual(c.policy, { maxExpected: 1, timeoutSec: 300 });
    assert.equal(c.now, 1234);
    assert.deepEqual(host.logs, []);
  });

  it('uses the tunables for the expectation policy', () => {
    host.tun.ftp_max_expected = 4;
    host.tun.ftp_expect_timeout = 17;
    assert.equal(s.send(0, 'PORT 198,18,0,2,0,21\r\n'), PKT_ACCEPT);
    assert.deepEqual(lastCall().policy, { maxExpected: 4, timeoutSec: 17 });
    assert.equal(lastCall().dport, 21);
  });

  it('is case-insensitive and accepts anything up to the first space after the pattern', () => {
    assert.equal(s.send(0, 'port 198,18,0,2,1,2\r\n'), PKT_ACCEPT);
    assert.equal(s.send(0, 'PoRtAbLe 198,18,0,2,1,3\r\n'), PKT_ACCEPT);
    assert.deepEqual(
      host.calls.map((c) => c.dport),
      [258, 259],
    );
  });

  it('missing \\r after the sixth number is a partial match: DROP, logged', () => {
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\n'), PKT_DROP);
    assert.equal(host.calls.length, 0);
    assert.deepEqual(host.logs, ["partial matching of `PORT'"]);
  });

  it('a partial match does not record the line start after it', () => {
    const seq = s.seq[0];
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\n'), PKT_DROP);
    // the next segment is at seq+len: not a recorded line start → not parsed
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,2\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    // the sender retransmits the dropped command correctly at the old position → parsed
    assert.equal(s.sendAt(0, seq, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 4 * 256 + 1);
  });

  it('malformed numbers → partial → DROP', () => {
    for (const bad of [
      'PORT 198,18,0,x,1,2\r\n', // letter
      'PORT 198,18,0,2,1\r\n', // five numbers
      'PORT 198,18,0,2,1,2,3\r\n', // seven numbers: loop runs out of slots
      'PORT 198.18.0.2,1,2\r\n', // dots
      'PORT  198,18,0,2,1,2\r\n', // two spaces: the second is unexpected
      'PORT 198,18,0,2,1,2 \r\n', // space before \r
      'PORT\r\n', // no space at all
      'PORT 198,18,0,2,1,2', // data ends right after the sixth number
    ]) {
      fresh();
      assert.equal(s.send(0, bad), PKT_DROP, JSON.stringify(bad));
      assert.equal(host.calls.length, 0, bad);
      assert.deepEqual(host.logs, ["partial matching of `PORT'"], bad);
    }
  });

  it('empty numbers count as zero (no range or presence checks)', () => {
    assert.equal(s.send(0, 'PORT ,,,,,\r\n'), PKT_ACCEPT);
    // address 0.0.0.0 differs from the sender: no expectation (loose 0)
    assert.equal(host.calls.length, 0);
    host.tun.ftp_loose = 1;
    assert.equal(s.send(0, 'PORT ,,,,1,\r\n'), PKT_ACCEPT);
    assert.deepEqual(lastCall().dst, [0, 0, 0, 0]);
    assert.equal(lastCall().dport, 256);
  });

  it('overflow-ish numbers are not range-checked: shifted and OR-ed like the kernel', () => {
    host.tun.ftp_loose = 1;
    // 454 = 0x1C6: (198<<24)|(454<<16)|... → the high bits of 454 spill into the first octet
    assert.equal(s.send(0, 'PORT 198,454,0,2,300,70000\r\n'), PKT_ACCEPT);
    const c = lastCall();
    const ip = ((198 << 24) | (454 << 16) | (0 << 8) | 2) >>> 0;
    assert.deepEqual(c.dst, [ip, 0, 0, 0]);
    assert.equal(c.dport, ((300 << 8) | 70000) & 0xffff);
  });

  it('u32 wrap-around in number accumulation reproduces the sender address', () => {
    // 4294967494 = 2^32 + 198 → wraps to 198
    assert.equal(s.send(0, 'PORT 4294967494,18,0,2,0,80\r\n'), PKT_ACCEPT);
    assert.deepEqual(lastCall().dst, v4(CLIENT4));
    assert.equal(lastCall().dport, 80);
  });

  it('port 0 is not rejected by PORT', () => {
    assert.equal(s.send(0, 'PORT 198,18,0,2,0,0\r\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 0);
  });

  it('bounce attempt (third host) → no expectation with loose 0, expectation there with loose 1', () => {
    assert.equal(s.send(0, 'PORT 198,18,0,99,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    assert.deepEqual(host.logs, []);
    host.tun.ftp_loose = 1;
    assert.equal(s.send(0, 'PORT 198,18,0,99,4,1\r\n'), PKT_ACCEPT);
    const c = lastCall();
    assert.deepEqual(c.dst, v4('198.18.0.99'));
    assert.deepEqual(c.src, v4(SERVER4));
  });

  it('PORT in the REPLY direction and 227 in the ORIG direction are not recognised', () => {
    assert.equal(s.send(1, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(s.send(0, '227 Entering Passive Mode (198,19,0,2,4,1)\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
  });

  it('a command not at the start of the segment is not parsed', () => {
    assert.equal(s.send(0, 'NOOP\r\nPORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    // but the segment ended in \n: the next one is parsed
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 1025);
  });

  it('a command split across segments is not parsed (first part partial-matches if short)', () => {
    // "PORT 198,18,0," + "2,4,1\r\n": the first segment is a full pattern but the numbers run out
    assert.equal(s.send(0, 'PORT 198,18,0,'), PKT_DROP);
    fresh();
    // split after more than the pattern but continuing cleanly: first part fails → drop
    assert.equal(s.send(0, 'PO'), PKT_DROP);
    assert.deepEqual(host.logs, ["partial matching of `PORT'"]);
    fresh();
    // a segment that does not end in \n breaks line tracking: the following command is ignored
    assert.equal(s.send(0, 'NOOP'), PKT_ACCEPT);
    assert.equal(s.send(0, '\r\n'), PKT_ACCEPT); // not at a line start: not parsed, but ends in \n
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    // '\r\n' ended in \n → the PORT after it starts at a recorded line start
    assert.equal(lastCall().dport, 1025);
  });

  it('partial patterns: any prefix of PORT/EPRT (incl. the whole word) as the segment → DROP', () => {
    for (const [p, pat] of [
      ['P', 'PORT'],
      ['POR', 'PORT'],
      ['por', 'PORT'],
      ['PORT', 'PORT'],
      ['E', 'EPRT'],
      ['EPR', 'EPRT'],
      ['eprt', 'EPRT'],
    ]) {
      fresh();
      assert.equal(s.send(0, p), PKT_DROP, p);
      assert.deepEqual(host.logs, [`partial matching of \`${pat}'`], p);
    }
    for (const p of ['X', 'PX', 'POX', 'PORX', 'EPX', '\r\n', 'QUIT']) {
      fresh();
      assert.equal(s.send(0, p), PKT_ACCEPT, p);
      assert.deepEqual(host.logs, [], p);
    }
  });

  it('PORT with a NUL in the pattern area does not match', () => {
    assert.equal(s.send(0, 'PO\0T 198,18,0,2,1,1\r\n'), PKT_ACCEPT);
    assert.equal(s.send(0, 'P\0'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
  });

  it('expect() failure → DROP with "cannot add expectation", line start still recorded', () => {
    host.expectResult = false;
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_DROP);
    assert.equal(host.calls.length, 1);
    assert.deepEqual(host.logs, ['cannot add expectation']);
    host.expectResult = true;
    host.calls = [];
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,2\r\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 1026);
  });
});

describe('ftp helper: EPRT', () => {
  it('EPRT |1| on IPv4', () => {
    fresh();
    assert.equal(s.send(0, 'EPRT |1|198.18.0.2|6275|\r\n'), PKT_ACCEPT);
    const c = lastCall();
    assert.deepEqual(c.src, v4(SERVER4));
    assert.deepEqual(c.dst, v4(CLIENT4));
    assert.equal(c.dport, 6275);
  });

  it('any printable non-digit delimiter, case-insensitive command', () => {
    fresh();
    assert.equal(s.send(0, 'eprt !1!198.18.0.2!7000!\r\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 7000);
  });

  it('EPRT terminator \\r is not required (the port ends at the delimiter)', () => {
    fresh();
    assert.equal(s.send(0, 'EPRT |1|198.18.0.2|7001|'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 7001);
  });

  it('failures: family mismatch, bad delimiters, zero/missing port, bad address → DROP', () => {
    for (const bad of [
      'EPRT |2|198.18.0.2|6275|\r\n', // |2| on IPv4
      'EPRT 1|1|198.18.0.2|6275|\r\n', // digit delimiter
      'EPRT  |1|198.18.0.2|6275|\r\n', // space delimiter (the second space)
      'EPRT |1!198.18.0.2|6275|\r\n', // data[2] != delim
      'EPRT |1|198.18.0.2|0|\r\n', // port 0
      'EPRT |1|198.18.0.2|65536|\r\n', // u16 wraps to 0
      'EPRT |1|198.18.0.2||\r\n', // empty port
      'EPRT |1|198.18.0.2|62x|\r\n', // junk in port
      'EPRT |1|198.18.0.2|6275\r\n', // no closing delimiter
      'EPRT |1|198.18.0|6275|\r\n', // three octets
      'EPRT |1|198.18.0.2.7|6275|\r\n', // five octets
      'EPRT |1|\r\n',
      'EPRT |1|', // dlen - 3 == 0 … dlen == 3 → too short
      'EPRT .1.198.18.0.2.6275.\r\n', // '.' delimiter is eaten as the separator
    ]) {
      fresh();
      assert.equal(s.send(0, bad), PKT_DROP, bad);
      assert.equal(host.calls.length, 0, bad);
      assert.deepEqual(host.logs, ["partial matching of `EPRT'"], bad);
    }
  });

  it('port wraps modulo 2^16 (65537 → 1)', () => {
    fresh();
    assert.equal(s.send(0, 'EPRT |1|198.18.0.2|65537|\r\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 1);
  });

  it('EPRT to a third host: no expectation unless loose', () => {
    fresh();
    assert.equal(s.send(0, 'EPRT |1|198.18.7.7|6275|\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    host.tun.ftp_loose = 1;
    assert.equal(s.send(0, 'EPRT |1|198.18.7.7|6275|\r\n'), PKT_ACCEPT);
    assert.deepEqual(lastCall().dst, v4('198.18.7.7'));
  });

  it('EPRT |2| on IPv6 in its various spellings', () => {
    for (const [addr, ok] of [
      ['2001:2::2', true],
      ['2001:0002:0000:0000:0000:0000:0000:0002', true],
      ['2001:2:0:0:0:0:0:2', true],
      ['2001:2::0:2', true],
      ['2001:2::', false], // different address (2001:2::) → no expectation, accepted
      ['::ffff:198.18.0.2', false],
    ] as const) {
      fresh(6);
      assert.equal(s.send(0, `EPRT |2|${addr}|6275|\r\n`), PKT_ACCEPT, addr);
      if (ok) {
        const c = lastCall();
        assert.deepEqual(c.dst, v6(CLIENT6), addr);
        assert.deepEqual(c.src, v6(SERVER6), addr);
        assert.equal(c.dport, 6275);
      } else {
        assert.equal(host.calls.length, 0, addr);
      }
    }
  });

  it('IPv6 with an embedded IPv4 tail and loose', () => {
    fresh(6);
    host.tun.ftp_loose = 1;
    assert.equal(s.send(0, 'EPRT |2|::ffff:198.18.0.2|6275|\r\n'), PKT_ACCEPT);
    assert.deepEqual(lastCall().dst, [0, 0, 0xffff, v4('198.18.0.2')[0]]);
    host.calls = [];
    assert.equal(s.send(0, 'EPRT |2|1:2:3:4:5:6:1.2.3.4|6275|\r\n'), PKT_ACCEPT);
    assert.deepEqual(lastCall().dst, [0x10002, 0x30004, 0x50006, 0x01020304]);
  });

  it('bad IPv6 literals → DROP', () => {
    for (const bad of [
      'EPRT |1|198.18.0.2|6275|\r\n', // |1| on IPv6
      'EPRT |2|2001:2:::2|6275|\r\n',
      'EPRT |2|2001:2::2::3|6275|\r\n',
      'EPRT |2|12345::1|6275|\r\n',
      'EPRT |2|1:2:3:4:5:6:7:8:9|6275|\r\n',
      'EPRT |2|2001:2::g|6275|\r\n',
      'EPRT |2||6275|\r\n',
      'EPRT |2|:1|6275|\r\n',
      'EPRT |2|2001:2::2', // address then end of data: no port
    ]) {
      fresh(6);
      assert.equal(s.send(0, bad), PKT_DROP, bad);
      assert.equal(host.calls.length, 0, bad);
    }
  });
});

describe('ftp helper: 227 (PASV reply)', () => {
  beforeEach(() => fresh());

  it('227 with parentheses creates client:any → server:port', () => {
    assert.equal(s.send(1, '227 Entering Passive Mode (198,19,0,2,156,65).\r\n'), PKT_ACCEPT);
    const c = lastCall();
    assert.deepEqual(c.src, v4(CLIENT4));
    assert.equal(c.sport, -1);
    assert.deepEqual(c.dst, v4(SERVER4));
    assert.equal(c.dport, 156 * 256 + 65);
  });

  it('227 without parentheses (RFC 1123: scan to the first digit)', () => {
    assert.equal(s.send(1, '227 Entering Passive Mode 198,19,0,2,1,1\r\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 257);
  });

  it('227 =198,19,0,2,1,2 followed by any non-digit non-comma', () => {
    assert.equal(s.send(1, '227 =198,19,0,2,1,2 ok\n'), PKT_ACCEPT);
    assert.equal(lastCall().dport, 258);
  });

  it('227 data ending right after the sixth number is a failure → DROP', () => {
    assert.equal(s.send(1, '227 Entering Passive Mode (198,19,0,2,1,2'), PKT_DROP);
    assert.deepEqual(host.logs, ["partial matching of `227 '"]);
  });

  it('227 without any digit → DROP', () => {
    assert.equal(s.send(1, '227 Entering Passive Mode\r\n'), PKT_DROP);
  });

  it('227 with too few numbers → DROP', () => {
    assert.equal(s.send(1, '227 (198,19,0,2,1)\r\n'), PKT_DROP);
  });

  it('digits in the text before the address are taken as the address', () => {
    // the first digit starts the numbers: "2 (198,…" → '2' then ' ' unexpected with i=0
    assert.equal(s.send(1, '227 Mode 2 (198,19,0,2,1,2)\r\n'), PKT_DROP);
  });

  it('227 prefixes and the pattern itself as the whole segment → DROP', () => {
    for (const p of ['2', '22', '227', '227 ']) {
      fresh();
      assert.equal(s.send(1, p), PKT_DROP, p);
      assert.deepEqual(host.logs, ["partial matching of `227 '"]);
    }
    // '229 ' is partial for the second pattern
    fresh();
    assert.equal(s.send(1, '229'), PKT_DROP);
    assert.deepEqual(host.logs, ["partial matching of `229 '"]); // "229" is no prefix of "227 "
    // "22" is a prefix of "227 ": the first pattern reports it
    fresh();
    assert.equal(s.send(1, '22'), PKT_DROP);
    assert.deepEqual(host.logs, ["partial matching of `227 '"]);
  });

  it('227 announcing another address: no expectation (loose 0), or there (loose 1)', () => {
    assert.equal(s.send(1, '227 Entering Passive Mode (10,0,0,1,4,1)\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    host.tun.ftp_loose = 1;
    assert.equal(s.send(1, '227 Entering Passive Mode (10,0,0,1,4,1)\r\n'), PKT_ACCEPT);
    assert.deepEqual(lastCall().dst, v4('10.0.0.1'));
    assert.deepEqual(lastCall().src, v4(CLIENT4));
  });

  it('227 on an IPv6 control connection only replaces the first address word', () => {
    fresh(6);
    assert.equal(s.send(1, '227 Entering Passive Mode (32,1,0,2,4,1)\r\n'), PKT_ACCEPT);
    // 32.1.0.2 = 0x20010002 = first word of 2001:2:0:1::2 → the address equals the sender's
    const c = lastCall();
    assert.deepEqual(c.dst, v6(SERVER6));
    assert.equal(c.dport, 1025);
    host.calls = [];
    assert.equal(s.send(1, '227 Entering Passive Mode (1,2,3,4,4,1)\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
  });
});

describe('ftp helper: 229 (EPSV reply)', () => {
  it('229 (|||port|) expects client:any → the server itself', () => {
    fresh();
    assert.equal(s.send(1, '229 Entering Extended Passive Mode (|||6446|)\r\n'), PKT_ACCEPT);
    const c = lastCall();
    assert.deepEqual(c.src, v4(CLIENT4));
    assert.deepEqual(c.dst, v4(SERVER4));
    assert.equal(c.dport, 6446);
  });

  it('229 on IPv6', () => {
    fresh(6);
    assert.equal(s.send(1, '229 Entering Extended Passive Mode (!!!40000!)\r\n'), PKT_ACCEPT);
    const c = lastCall();
    assert.deepEqual(c.src, v6(CLIENT6));
    assert.deepEqual(c.dst, v6(SERVER6));
    assert.equal(c.dport, 40000);
  });

  it('229 failures → DROP', () => {
    for (const bad of [
      '229 Entering Extended Passive Mode |||6446|\r\n', // no '('
      '229 Entering Extended Passive Mode (||6446|)\r\n',
      '229 Entering Extended Passive Mode (|||0|)\r\n',
      '229 Entering Extended Passive Mode (|||6446)\r\n',
      '229 Entering Extended Passive Mode (11164461)\r\n',
      '229 (|||',
      '229 (',
    ]) {
      fresh();
      assert.equal(s.send(1, bad), PKT_DROP, bad);
      assert.deepEqual(host.logs, ["partial matching of `229 '"], bad);
    }
  });
});

describe('ftp helper: when packets are inspected', () => {
  it('only ESTABLISHED / ESTABLISHED_REPLY', () => {
    host = new FakeHost();
    ftp = new FtpHelper();
    s = new Session(host, ftp, 0);
    s.warmUp();
    const cmd = 'PORT 198,18,0,2,4,1\r\n';
    for (const ct of [IP_CT_NEW, IP_CT_RELATED]) {
      assert.equal(ftp.help(host, 0, 0, ct, view(cmd, s.seq[0]), 0), PKT_ACCEPT);
      assert.equal(ftp.help(host, 0, 0, ct, view('POR', s.seq[0]), 0), PKT_ACCEPT);
    }
    assert.equal(host.calls.length, 0);
    assert.equal(ftp.help(host, 0, 0, IP_CT_ESTABLISHED, view(cmd, s.seq[0]), 0), PKT_ACCEPT);
    assert.equal(host.calls.length, 1);
  });

  it('an empty payload is ignored', () => {
    fresh();
    assert.equal(s.sendAt(0, s.seq[0], ''), PKT_ACCEPT);
    assert.equal(ftp.nlSeqCount(3, 0), 1);
  });

  it('the first segment of each direction is never parsed', () => {
    host = new FakeHost();
    ftp = new FtpHelper();
    s = new Session(host, ftp, 1);
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(s.send(1, '227 (198,19,0,2,4,1)\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    assert.deepEqual(host.logs, []);
    // but they recorded the line starts after them: the next segments are parsed
    assert.equal(ftp.nlSeqCount(1, 0), 1);
    assert.equal(ftp.nlSeqCount(1, 1), 1);
    assert.equal(s.send(0, 'POR'), PKT_DROP);
    assert.equal(s.send(1, '227 (198,19,0,2,4,1)\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 1);
  });

  it('line starts are tracked per direction', () => {
    fresh();
    // ORIG stream advanced without \n: ORIG commands are not parsed; REPLY still is
    assert.equal(s.send(0, 'NOOP'), PKT_ACCEPT);
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    assert.equal(s.send(1, '227 (198,19,0,2,4,1)\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 1);
  });

  it('retransmission of a segment starting at a recorded position is parsed again', () => {
    fresh();
    const seq = s.seq[0];
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(s.sendAt(0, seq, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 2);
    // a retransmission that starts one byte later is not
    assert.equal(s.sendAt(0, seq + 1, 'ORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 2);
  });

  it('remembers NUM_SEQ_TO_REMEMBER = 2 line starts per direction, replacing the older by a later one', () => {
    assert.equal(NUM_SEQ_TO_REMEMBER, 2);
    fresh();
    const e = 3;
    // after warm-up: one ORIG position (after USER)
    assert.equal(ftp.nlSeqCount(e, 0), 1);
    const p1 = s.seq[0];
    assert.equal(ftp.nlSeq(e, 0, 0), p1);
    assert.equal(s.send(0, 'NOOP\r\n'), PKT_ACCEPT);
    const p2 = s.seq[0];
    assert.equal(ftp.nlSeqCount(e, 0), 2);
    assert.equal(s.send(0, 'NOOP\r\n'), PKT_ACCEPT);
    const p3 = s.seq[0];
    assert.equal(ftp.nlSeqCount(e, 0), 2);
    // p1 (the oldest) was replaced by p3
    assert.deepEqual([ftp.nlSeq(e, 0, 0), ftp.nlSeq(e, 0, 1)], [p3, p2]);
    // a retransmission at p2 is parsed; its end (later than p2, the older one) replaces p2
    const cmd = 'PORT 198,18,0,2,4,1\r\n';
    assert.equal(s.sendAt(0, p2, cmd), PKT_ACCEPT);
    assert.equal(host.calls.length, 1);
    const p4 = p2 + cmd.length;
    assert.deepEqual([ftp.nlSeq(e, 0, 0), ftp.nlSeq(e, 0, 1)], [p3, p4]);
    // p1 is no longer remembered: not parsed (parsed, 'POR' would be dropped)
    assert.equal(s.sendAt(0, p1, 'POR'), PKT_ACCEPT);
    assert.equal(s.sendAt(0, p3, 'POR'), PKT_DROP);
    assert.equal(host.calls.length, 1);
    // an older position ending in \n does not replace anything
    assert.equal(s.sendAt(0, p1 - 10, 'xxxxxxxxx\n'), PKT_ACCEPT);
    assert.deepEqual([ftp.nlSeq(e, 0, 0), ftp.nlSeq(e, 0, 1)], [p3, p4]);
    // a known position is not stored twice
    assert.equal(s.sendAt(0, p3 - 6, 'NOOP\r\n'), PKT_ACCEPT);
    assert.deepEqual([ftp.nlSeq(e, 0, 0), ftp.nlSeq(e, 0, 1)], [p3, p4]);
    // a later one replaces the older of the two (p3)
    assert.equal(s.sendAt(0, p4, 'NOOP\r\n'), PKT_ACCEPT);
    assert.deepEqual([ftp.nlSeq(e, 0, 0), ftp.nlSeq(e, 0, 1)], [p4 + 6, p4]);
  });

  it('sequence numbers wrap around 2^32', () => {
    host = new FakeHost();
    ftp = new FtpHelper();
    s = new Session(host, ftp, 2);
    s.seq[0] = 0xfffffff0;
    assert.equal(s.send(1, '220 hi\r\n'), PKT_ACCEPT);
    assert.equal(s.send(0, 'USER anonymous\r\n'), PKT_ACCEPT); // 16 bytes → ends at 0
    assert.equal(s.seq[0], 0);
    assert.equal(ftp.nlSeq(2, 0, 0), 0);
    assert.equal(s.send(0, 'NOOP\r\n'), PKT_ACCEPT); // recorded: 6
    assert.equal(s.send(0, 'NOOP\r\n'), PKT_ACCEPT); // 12 replaces 0 (0 is before 6)
    assert.deepEqual([ftp.nlSeq(2, 0, 0), ftp.nlSeq(2, 0, 1)], [12, 6]);
    // 0xfffffffa is "before" 6 in modular order: not recorded
    assert.equal(s.sendAt(0, 0xfffffff0, 'xxxxxxxxx\n'), PKT_ACCEPT);
    assert.deepEqual([ftp.nlSeq(2, 0, 0), ftp.nlSeq(2, 0, 1)], [12, 6]);
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 1);
  });

  it('init() resets an entry; resize() keeps existing state', () => {
    fresh();
    assert.equal(ftp.nlSeqCount(3, 0), 1);
    ftp.resize(1000);
    assert.equal(ftp.nlSeqCount(3, 0), 1);
    assert.equal(ftp.nlSeqCount(3, 1), 1);
    ftp.init(3);
    assert.equal(ftp.nlSeqCount(3, 0), 0);
    assert.equal(ftp.nlSeqCount(3, 1), 0);
    assert.equal(s.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
  });

  it('entries are independent', () => {
    host = new FakeHost();
    ftp = new FtpHelper();
    const a = new Session(host, ftp, 5);
    const b = new Session(host, ftp, 6);
    a.warmUp();
    assert.equal(b.send(0, 'USER x\r\n'), PKT_ACCEPT);
    b.seq[0] = a.seq[0]; // same number, other entry: not a line start there
    assert.equal(b.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 0);
    assert.equal(a.send(0, 'PORT 198,18,0,2,4,1\r\n'), PKT_ACCEPT);
    assert.equal(host.calls.length, 1);
    assert.equal(host.calls[0].e, 5);
  });
});

describe('ftp helper: on parsed packets', () => {
  it('reads the payload of a real IPv4/TCP packet (with options) and of an IPv6 one', async () => {
    const { ipv4, ipv6, tcp } = await import('../../helpers/packets');
    const { parsePacket } = await import('../../../src/packet/parse');
    host = new FakeHost();
    ftp = new FtpHelper();
    s = new Session(host, ftp, 0);
    s.warmUp();
    const v = new PacketView();
    const pkt = ipv4(
      { src: CLIENT4, dst: SERVER4 },
      tcp({ sport: 40000, dport: 21, seq: s.seq[0], flags: 'PA', options: { timestamp: [1, 2] }, payload: 'PORT 198,18,0,2,7,8\r\n' }),
    );
    // trailing link-layer padding after the IP packet must not be seen as payload
    const framed = new Uint8Array(pkt.length + 6);
    framed.set(pkt);
    framed.fill(0x50, pkt.length);
    assert.ok(parsePacket(framed, 0, framed.length, v));
    assert.equal(ftp.help(host, 0, 0, IP_CT_ESTABLISHED, v, 0), PKT_ACCEPT);
    assert.equal(lastCall().dport, 7 * 256 + 8);

    host = new FakeHost();
    ftp = new FtpHelper();
    s = new Session(host, ftp, 0, 6);
    s.warmUp();
    const p6 = ipv6(
      { src: SERVER6, dst: CLIENT6 },
      tcp({ sport: 21, dport: 40000, seq: s.seq[1], flags: 'PA', payload: '229 Entering Extended Passive Mode (|||50000|)\r\n' }),
    );
    assert.ok(parsePacket(p6, 0, p6.length, v));
    assert.equal(ftp.help(host, 0, 1, IP_CT_ESTABLISHED_REPLY, v, 0), PKT_ACCEPT);
    assert.deepEqual(lastCall().dst, v6(SERVER6));
    assert.equal(lastCall().dport, 50000);
  });
});
