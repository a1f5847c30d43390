/**
 * Test harness for the TCP tracker: a fake TrackerHost (status bits, timeouts
 * on a fake clock, kills and log lines recorded) and a tiny "core" that runs
 * validate → newConnection → packet like nf_conntrack_in does, setting
 * SEEN_REPLY after an accepted reply packet (§2.2 step 6).
 */
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_FIXED_TIMEOUT,
  IPS_SEEN_REPLY,
  PKT_ACCEPT,
  PKT_IGNORE,
  PKT_INVALID,
  PKT_REPEAT,
} from '../../../src/conntrack/constants';
import type { TrackerHost } from '../../../src/conntrack/proto/tracker';
import {
  IP_CT_TCP_FLAG_BE_LIBERAL,
  IP_CT_TCP_FLAG_CLOSE_INIT,
  IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED,
  IP_CT_TCP_FLAG_SACK_PERM,
  IP_CT_TCP_FLAG_WINDOW_SCALE,
  IP_CT_TCP_SIMULTANEOUS_OPEN,
  TCP_CONNTRACKS,
  TCP_NONE_SET,
  TCP_SAVE_LEN,
  TcpTracker,
} from '../../../src/conntrack/proto/tcp';
import { defaultTunables, type TunableValues } from '../../../src/conntrack/sysctl';
import { parsePacket } from '../../../src/packet/parse';
import { PacketView } from '../../../src/packet/view';
import { ipv4, tcp, type TcpOptions } from '../../helpers/packets';
import { IPS_SEQ_ADJUST, SeqAdjust } from '../../../src/conntrack/seqadj';

export class FakeHost implements TrackerHost {
  tun: TunableValues = defaultTunables(8 * 1024 ** 3);
  now = 1_000_000;
  st = new Map<number, number>();
  expiry = new Map<number, number>();
  lastTimeout = new Map<number, number>();
  created = new Map<number, number>();
  setTimeoutCalls = 0;
  killed: number[] = [];
  logs: string[] = [];
  constructor() {
    this.tun.nf_conntrack_log_invalid = 255;
  }
  status(e: number): number {
    return this.st.get(e) ?? 0;
  }
  setStatusBits(e: number, bits: number): void {
    this.st.set(e, this.status(e) | bits);
  }
  setTimeout(e: number, seconds: number, now: number): void {
    this.setTimeoutCalls++;
    this.lastTimeout.set(e, seconds);
    this.expiry.set(e, now + seconds * 1000);
  }
  timeoutLeft(e: number, now: number): number {
    const x = this.expiry.get(e);
    if (x === undefined) return 0;
    return Math.max(0, Math.floor((x - now) / 1000));
  }
  createdAt(e: number): number {
    return this.created.get(e) ?? 0;
  }
  kill(e: number): void {
    this.killed.push(e);
  }
  logInvalid(_pkt: PacketView, reason: string): void {
    this.logs.push(reason);
  }
  /** sequence offsets of entries with IPS_SEQ_ADJUST, as the table keeps them */
  seqadj = new SeqAdjust();
  seqOffset(e: number, dir: number, seq: number): number {
    return this.status(e) & IPS_SEQ_ADJUST ? this.seqadj.offset(e, dir, seq) : 0;
  }
}

export const C = 0; // original direction (client → server)
export const S = 1; // reply direction

export interface Seg {
  flags: string | number;
  seq: number;
  ack?: number;
  win?: number;
  len?: number;
  opts?: TcpOptions;
  doff?: number;
}

/** Builds the IPv4/TCP packet of direction `dir` and parses it into a fresh view. */
export function pkt(dir: number, s: Seg): PacketView {
  const ip = dir === C ? { src: '198.18.0.1', dst: '198.18.1.1' } : { src: '198.18.1.1', dst: '198.18.0.1' };
  const t = tcp({
    sport: dir === C ? 40000 : 80,
    dport: dir === C ? 80 : 40000,
    seq: s.seq >>> 0,
    ack: (s.ack ?? 0) >>> 0,
    flags: s.flags,
    window: s.win ?? 0,
    options: s.opts,
    payload: new Uint8Array(s.len ?? 0),
    doff: s.doff,
  });
  const b = ipv4(ip, t);
  const v = new PacketView();
  parsePacket(b, 0, b.length, v, 4);
  return v;
}

/** What the core would do with one packet: 'validate' = refused by validate(), 'new' = refused by newConnection(). */
export type Outcome = number | 'validate' | 'new';

export class Conn {
  e = -1;
  private static next = 1;
  constructor(
    readonly t: TcpTracker,
    readonly h: FakeHost,
  ) {}

  /** Starts over with a fresh (unconfirmed) entry id, as after PKT_REPEAT. */
  fresh(): void {
    this.e = -1;
  }

  send(dir: number, s: Seg): Outcome {
    return this.sendView(dir, pkt(dir, s));
  }

  sendView(dir: number, v: PacketView): Outcome {
    const { t, h } = this;
    if (!t.validate(h, v)) return 'validate';
    if (this.e < 0) {
      if (dir !== C) throw new Error('first packet must be original direction');
      const e = Conn.next++;
      t.resize(e + 1);
      h.st.set(e, 0);
      h.created.set(e, h.now);
      if (!t.newConnection(h, e, v, h.now)) return 'new';
      this.e = e;
      const r = t.packet(h, e, dir, 2, v, h.now);
      if (r === PKT_ACCEPT || r === PKT_IGNORE) {
        if (!h.killed.includes(e)) h.setStatusBits(e, IPS_CONFIRMED);
      } else this.e = -1;
      return r;
    }
    const e = this.e;
    const seen = h.status(e) & IPS_SEEN_REPLY;
    const ctinfo = dir === S ? 3 : seen ? 0 : 2;
    const r = t.packet(h, e, dir, ctinfo, v, h.now);
    if (dir === S && (r === PKT_ACCEPT || r === PKT_IGNORE) && !h.killed.includes(e)) h.setStatusBits(e, IPS_SEEN_REPLY);
    return r;
  }

  get state(): string {
    return this.t.stateName(this.e);
  }
  get timeout(): number | undefined {
    return this.h.lastTimeout.get(this.e);
  }
  get status(): number {
    return this.h.status(this.e);
  }
  get left(): number {
    return this.h.timeoutLeft(this.e, this.h.now);
  }
}

/** seen[dir] (struct ip_ct_tcp_state) of entry e, read through save(). */
function seen(t: TcpTracker, e: number, dir: number): { end: number; maxend: number; maxwin: number; maxack: number; scale: number; flags: number } {
  const d = t.save(e);
  const o = 10 + 6 * dir;
  return { end: d[o], maxend: d[o + 1], maxwin: d[o + 2], maxack: d[o + 3], scale: d[o + 4], flags: d[o + 5] };
}
function stateOf(t: TcpTracker, e: number): number {
  return t.save(e)[0];
}
/** Changes entry e's state through its save() numbers (TCP_SAVE_LEN layout). */
function patch(t: TcpTracker, e: number, f: (d: number[]) => void): void {
  const d = t.save(e);
  f(d);
  t.restore(e, d);
}

export function setup(tweak?: (t: TunableValues) => void): { t: TcpTracker; h: FakeHost; c: Conn } {
  const t = new TcpTracker(4);
  const h = new FakeHost();
  if (tweak) tweak(h.tun);
  return { t, h, c: new Conn(t, h) };
}

/** Client ISN 1000 (wscale 7, SACK), server ISN 5000 (wscale 7, SACK): the three-way handshake. */
export const CISN = 1000;
export const SISN = 5000;
export function handshake(c: Conn, o: { cOpts?: TcpOptions; sOpts?: TcpOptions } = {}): void {
  const cOpts = o.cOpts ?? { mss: 1460, sackPerm: true, wscale: 7 };
  const sOpts = o.sOpts ?? { mss: 1460, sackPerm: true, wscale: 7 };
  expectOk(c.send(C, { flags: 'S', seq: CISN, win: 64240, opts: cOpts }), 'SYN');
  expectOk(c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160, opts: sOpts }), 'SYN/ACK');
  expectOk(c.send(C, { flags: 'A', seq: CISN + 1, ack: SISN + 1, win: 502 }), 'ACK');
}

function expectOk(r: Outcome, what: string): void {
  if (r !== PKT_ACCEPT) throw new Error(`${what}: expected PKT_ACCEPT, got ${String(r)}`);
}

// ───────────────────────────────────────────────────────────────────────────
// Tests
// ───────────────────────────────────────────────────────────────────────────

const TW_ = 'TIME_WAIT';

describe('tcp validate (tcp_error)', () => {
  const VALID = new Set([0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30]); // S SU SA R RA FA FAU A AU
  it('accepts exactly the nine valid combinations, PSH/ECE/CWR ignored', () => {
    const { t, h } = setup();
    for (let f = 0; f < 256; f++) {
      h.logs.length = 0;
      const ok = t.validate(h, pkt(C, { flags: f, seq: 1, ack: 1, win: 100 }));
      assert.equal(ok, VALID.has(f & ~(0x08 | 0x40 | 0x80)), `flags 0x${f.toString(16)}`);
      assert.deepEqual(h.logs, ok ? [] : ['invalid tcp flag combination']);
    }
  });
  it('rejects the classic scans and odd combinations', () => {
    const { t, h } = setup();
    for (const f of ['', 'F', 'SF', 'SR', 'FR', 'SAU', 'FPU', 'FRA', 'SFRPAU', 'P', 'U', 'RAU', 'SRA'])
      assert.equal(t.validate(h, pkt(C, { flags: f, seq: 1 })), false, `flags '${f}'`);
    for (const f of ['SEC', 'SAE', 'PA', 'FPA', 'RP', 'AUP', 'SUP']) assert.equal(t.validate(h, pkt(C, { flags: f, seq: 1 })), true, `flags '${f}'`);
  });
  it('truncated header: doff < 5, or doff past the segment end', () => {
    const { t, h } = setup();
    assert.equal(t.validate(h, pkt(C, { flags: 'S', seq: 1, doff: 4 })), false);
    assert.equal(t.validate(h, pkt(C, { flags: 'S', seq: 1, doff: 15 })), false);
    assert.deepEqual(h.logs, ['truncated packet', 'truncated packet']);
  });
  it('fewer than 20 bytes of TCP header: invalid without a log line (skb_header_pointer fails)', () => {
    const { t, h } = setup();
    const v = pkt(C, { flags: 'S', seq: 1 });
    v.l4len = 12;
    v.malformed = 6;
    assert.equal(t.validate(h, v), false);
    assert.deepEqual(h.logs, []);
  });
  it('logs nothing when nf_conntrack_log_invalid does not select TCP', () => {
    const { t, h } = setup((x) => (x.nf_conntrack_log_invalid = 17));
    assert.equal(t.validate(h, pkt(C, { flags: 'SF', seq: 1 })), false);
    assert.deepEqual(h.logs, []);
    h.tun.nf_conntrack_log_invalid = 6;
    assert.equal(t.validate(h, pkt(C, { flags: 'SF', seq: 1 })), false);
    assert.deepEqual(h.logs, ['invalid tcp flag combination']);
  });
});

describe('tcp handshake and close walk-through (§5.9)', () => {
  it('states, timeouts and ASSURED at every step', () => {
    const { t, h, c } = setup();
    assert.equal(c.send(C, { flags: 'S', seq: CISN, win: 64240, opts: { mss: 1460, sackPerm: true, wscale: 7 } }), PKT_ACCEPT);
    assert.equal(c.state, 'SYN_SENT');
    assert.equal(c.timeout, 120);
    assert.equal(c.status & IPS_SEEN_REPLY, 0);
    assert.equal(t.canEarlyDrop(c.e), false);

    assert.equal(c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160, opts: { mss: 1460, sackPerm: true, wscale: 7 } }), PKT_ACCEPT);
    assert.equal(c.state, 'SYN_RECV');
    assert.equal(c.timeout, 60);
    assert.equal(c.status & IPS_ASSURED, 0);

    assert.equal(c.send(C, { flags: 'A', seq: CISN + 1, ack: SISN + 1, win: 502 }), PKT_ACCEPT);
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(c.timeout, 432000);
    assert.notEqual(c.status & IPS_ASSURED, 0);
    assert.equal(t.canEarlyDrop(c.e), false);

    assert.equal(c.send(C, { flags: 'PA', seq: 1001, ack: 5001, win: 502, len: 100 }), PKT_ACCEPT);
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(c.timeout, 300, 'unacknowledged data');
    assert.equal(c.send(S, { flags: 'A', seq: 5001, ack: 1101, win: 510 }), PKT_ACCEPT);
    assert.equal(c.timeout, 432000, 'data acknowledged');

    assert.equal(c.send(C, { flags: 'FA', seq: 1101, ack: 5001, win: 502 }), PKT_ACCEPT);
    assert.equal(c.state, 'FIN_WAIT');
    assert.equal(c.timeout, 120);
    assert.notEqual(seen(t, c.e, 0).flags & IP_CT_TCP_FLAG_CLOSE_INIT, 0);
    assert.equal(t.canEarlyDrop(c.e), true);

    assert.equal(c.send(S, { flags: 'A', seq: 5001, ack: 1102, win: 510 }), PKT_ACCEPT);
    assert.equal(c.state, 'CLOSE_WAIT');
    assert.equal(c.timeout, 60);
    assert.equal(c.send(S, { flags: 'FA', seq: 5001, ack: 1102, win: 510 }), PKT_ACCEPT);
    assert.equal(c.state, 'LAST_ACK');
    assert.equal(c.timeout, 30);
    assert.equal(c.send(C, { flags: 'A', seq: 1102, ack: 5002, win: 502 }), PKT_ACCEPT);
    assert.equal(c.state, TW_);
    assert.equal(c.timeout, 120);
    assert.equal(t.canEarlyDrop(c.e), true);
    assert.deepEqual(h.killed, []);
    assert.deepEqual(h.logs, []);
  });

  it('timeouts follow the live sysctl values', () => {
    const { c } = setup((x) => {
      x.nf_conntrack_tcp_timeout_syn_sent = 11;
      x.nf_conntrack_tcp_timeout_syn_recv = 12;
      x.nf_conntrack_tcp_timeout_established = 1000;
      x.nf_conntrack_tcp_timeout_unacknowledged = 200;
    });
    c.send(C, { flags: 'S', seq: CISN, win: 64240 });
    assert.equal(c.timeout, 11);
    c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160 });
    assert.equal(c.timeout, 12);
    c.send(C, { flags: 'A', seq: CISN + 1, ack: SISN + 1, win: 502 });
    assert.equal(c.timeout, 1000);
    c.send(C, { flags: 'PA', seq: CISN + 1, ack: SISN + 1, win: 502, len: 10 });
    assert.equal(c.timeout, 200);
  });

  it('a SYN retransmission before any reply does not renew the timeout', () => {
    const { h, c } = setup();
    c.send(C, { flags: 'S', seq: CISN, win: 64240 });
    assert.equal(c.left, 120);
    h.now += 50_000;
    const calls = h.setTimeoutCalls;
    assert.equal(c.send(C, { flags: 'S', seq: CISN, win: 64240 }), PKT_ACCEPT);
    assert.equal(h.setTimeoutCalls, calls);
    assert.equal(c.left, 70);
    assert.equal(c.state, 'SYN_SENT');
  });

  it('window scaling is only used when both SYNs carry the option', () => {
    {
      const { t, c } = setup();
      handshake(c);
      assert.equal(seen(t, c.e, 0).scale, 7);
      assert.equal(seen(t, c.e, 1).scale, 7);
      // server opens its window to 2000 << 7 = 256000 bytes
      assert.equal(c.send(S, { flags: 'A', seq: 5001, ack: 1001, win: 2000 }), PKT_ACCEPT);
      assert.equal(seen(t, c.e, 0).maxend, 1001 + 256000);
      assert.equal(c.send(C, { flags: 'PA', seq: 201001, ack: 5001, win: 502, len: 100 }), PKT_ACCEPT);
    }
    {
      const { t, h, c } = setup();
      handshake(c, { sOpts: { mss: 1460, sackPerm: true } });
      assert.equal(seen(t, c.e, 0).scale, 0, 'client scale forced to 0');
      assert.equal(seen(t, c.e, 1).scale, 0);
      assert.equal(c.send(S, { flags: 'A', seq: 5001, ack: 1001, win: 2000 }), PKT_ACCEPT);
      // unscaled, the window is the SYN/ACK's 65160 bytes: 201001 is far beyond
      // (more than a receiver window beyond, so not the "bytes more than expected" case)
      assert.equal(c.send(C, { flags: 'PA', seq: 201001, ack: 5001, win: 502, len: 100 }), PKT_INVALID);
      assert.deepEqual(h.logs, ['SEQ is over upper bound 66162 (over the window of the receiver)']);
    }
  });
});

describe('tcp newConnection (tcp_new) and loose pickup', () => {
  it('SYN initialises the sender', () => {
    const { t, c } = setup();
    c.send(C, { flags: 'S', seq: 0xfffffff0, win: 0, opts: { wscale: 20, sackPerm: true } });
    assert.equal(seen(t, c.e, 0).end, 0xfffffff1);
    assert.equal(seen(t, c.e, 0).maxend, 0xfffffff1);
    assert.equal(seen(t, c.e, 0).maxwin, 1, 'zero window counts as 1');
    assert.equal(seen(t, c.e, 0).scale, 14, 'window scale capped at 14');
    assert.equal(seen(t, c.e, 0).flags & (IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM), 3);
  });
  it('a SYN with a later ISN in SYN_SENT re-initialises the sender; options only when present (tcp_options)', () => {
    const { t, c } = setup();
    c.send(C, { flags: 'S', seq: 1000, win: 64240, opts: { sackPerm: true, wscale: 7 } });
    const both = IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM;
    // no options at all: tcp_options() returns before touching flags/scale
    assert.equal(c.send(C, { flags: 'S', seq: 2000, win: 1000 }), PKT_ACCEPT);
    assert.equal(seen(t, c.e, 0).end, 2001);
    assert.equal(seen(t, c.e, 0).maxwin, 1000);
    assert.equal(seen(t, c.e, 0).flags & both, both);
    assert.equal(seen(t, c.e, 0).scale, 7);
    // options without WS/SACK-permitted: both are cleared
    assert.equal(c.send(C, { flags: 'S', seq: 3000, win: 1000, opts: { mss: 1400 } }), PKT_ACCEPT);
    assert.equal(seen(t, c.e, 0).end, 3001);
    assert.equal(seen(t, c.e, 0).flags & both, 0);
    assert.equal(seen(t, c.e, 0).scale, 0);
    // an older ISN does not re-initialise
    assert.equal(c.send(C, { flags: 'S', seq: 2500, win: 1000, opts: { wscale: 3 } }), PKT_ACCEPT);
    assert.equal(seen(t, c.e, 0).end, 3001);
    assert.equal(seen(t, c.e, 0).scale, 0);
  });
  it('SYN/ACK, FIN/ACK and RST cannot create an entry ("invalid new")', () => {
    for (const f of ['SA', 'FA', 'R', 'RA']) {
      const { h, c } = setup();
      assert.equal(c.send(C, { flags: f, seq: 1, ack: 1, win: 10 }), 'new', f);
      assert.deepEqual(h.logs, ['invalid new']);
    }
  });
  it('loose=1: an ACK picks up the connection as ESTABLISHED with BE_LIBERAL, capped at 300 s until replied', () => {
    const { t, h, c } = setup();
    assert.equal(c.send(C, { flags: 'A', seq: 10000, ack: 20000, win: 1000 }), PKT_ACCEPT);
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(c.timeout, 300);
    const both = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
    assert.equal(seen(t, c.e, 0).flags & both, both);
    assert.equal(seen(t, c.e, 1).flags & both, both);
    assert.equal(c.status & IPS_ASSURED, 0);
    // data going far out of any window is still accepted (liberal)
    assert.equal(c.send(C, { flags: 'PA', seq: 900000, ack: 20000, win: 1000, len: 10 }), PKT_ACCEPT);
    assert.equal(c.send(S, { flags: 'A', seq: 20000, ack: 10000, win: 2000 }), PKT_ACCEPT);
    assert.equal(c.timeout, 300, 'reply not yet seen while it is processed');
    assert.equal(c.status & IPS_ASSURED, 0);
    assert.equal(c.send(C, { flags: 'A', seq: 10000, ack: 20000, win: 1001 }), PKT_ACCEPT);
    assert.notEqual(c.status & IPS_ASSURED, 0, 'ASSURED on ESTABLISHED→ESTABLISHED once replied');
    assert.equal(c.timeout, 432000);
    assert.deepEqual(h.logs, []);
  });
  it('loose=0: an ACK refuses (INVALID), no log', () => {
    const { h, c } = setup((x) => (x.nf_conntrack_tcp_loose = 0));
    assert.equal(c.send(C, { flags: 'A', seq: 10000, ack: 20000, win: 1000 }), 'new');
    assert.equal(c.send(C, { flags: 'PA', seq: 10000, ack: 20000, win: 1000, len: 5 }), 'new');
    assert.deepEqual(h.logs, []);
    assert.equal(c.send(C, { flags: 'S', seq: 10000, win: 1000 }), PKT_ACCEPT, 'SYN still creates');
  });
});

/** §5.5 transcribed from the design note, one string per packet class (columns NONE..SYN_SENT2). */
const NOTE_TABLE: Record<string, string[]> = {
  'ORIGINAL syn': ['SS', 'SS', 'IG', 'IG', 'IG', 'IG', 'IG', 'SS', 'SS', 'S2'],
  'ORIGINAL synack': ['IV', 'IV', 'SR', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'SR'],
  'ORIGINAL fin': ['IV', 'IV', 'FW', 'FW', 'LA', 'LA', 'LA', 'TW', 'CL', 'IV'],
  'ORIGINAL ack': ['ES', 'IV', 'ES', 'ES', 'CW', 'CW', 'TW', 'TW', 'CL', 'IV'],
  'ORIGINAL rst': ['IV', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL'],
  'ORIGINAL none': ['IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV'],
  'REPLY syn': ['IV', 'S2', 'IV', 'IV', 'IV', 'IV', 'IV', 'SS', 'IV', 'S2'],
  'REPLY synack': ['IV', 'SR', 'IG', 'IG', 'IG', 'IG', 'IG', 'IG', 'IG', 'SR'],
  'REPLY fin': ['IV', 'IV', 'FW', 'FW', 'LA', 'LA', 'LA', 'TW', 'CL', 'IV'],
  'REPLY ack': ['IV', 'IG', 'SR', 'ES', 'CW', 'CW', 'TW', 'TW', 'CL', 'IG'],
  'REPLY rst': ['IV', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL', 'CL'],
  'REPLY none': ['IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV', 'IV'],
};
const ABBR = ['NO', 'SS', 'SR', 'ES', 'FW', 'CW', 'LA', 'TW', 'CL', 'S2'];
const CLASS_FLAGS: Record<string, number> = { syn: 0x02, synack: 0x12, fin: 0x11, ack: 0x10, rst: 0x04, none: 0 };

describe('tcp transition table (§5.5), every cell', () => {
  it('matches the design note for every direction × class × old state', () => {
    const h = new FakeHost();
    const t = new TcpTracker(2);
    for (const [key, row] of Object.entries(NOTE_TABLE)) {
      const [dname, cls] = key.split(' ');
      const dir = dname === 'ORIGINAL' ? C : S;
      for (let old = 0; old < 10; old++) {
        const e = 1;
        t.restore(e, [old, 0, 0, TCP_NONE_SET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, IP_CT_TCP_FLAG_BE_LIBERAL, 0, 0, 0, 0, 0, IP_CT_TCP_FLAG_BE_LIBERAL]);
        h.st.set(e, IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED);
        h.killed.length = 0;
        const v = pkt(dir, { flags: CLASS_FLAGS[cls], seq: 100, ack: cls === 'syn' || cls === 'rst' || cls === 'none' ? 0 : 200, win: 1000 });
        const r = t.packet(h, e, dir, dir === S ? 3 : 0, v, h.now);
        const want = row[old];
        const cell = `${key} from ${ABBR[old]} (note: ${want})`;
        if (want === 'IV') {
          assert.equal(r, PKT_INVALID, cell);
          assert.equal(stateOf(t, e), old, cell);
        } else if (want === 'IG' || (want === 'SS' && old >= 7)) {
          // sIG, and SYN_SENT from TIME_WAIT/CLOSE without a FIN or RST seen (falls through to IGNORE)
          assert.equal(r, PKT_IGNORE, cell);
          assert.equal(stateOf(t, e), old, cell);
        } else {
          assert.equal(r, PKT_ACCEPT, cell);
          assert.equal(ABBR[stateOf(t, e)], want, cell);
        }
        assert.deepEqual(h.killed, [], cell);
      }
    }
  });
  it('the exported table is the kernel one', () => {
    for (let d = 0; d < 2; d++)
      for (let i = 0; i < 6; i++) {
        const key = `${d === 0 ? 'ORIGINAL' : 'REPLY'} ${['syn', 'synack', 'fin', 'ack', 'rst', 'none'][i]}`;
        const want = NOTE_TABLE[key].map((a) => (a === 'IV' ? 10 : a === 'IG' ? 11 : ABBR.indexOf(a)));
        assert.deepEqual([...TCP_CONNTRACKS[d][i]], want, key);
      }
  });
});

describe('tcp TIME_WAIT / CLOSE reopen', () => {
  function closed(): ReturnType<typeof setup> {
    const s = setup();
    handshake(s.c);
    s.c.send(C, { flags: 'FA', seq: 1001, ack: 5001, win: 502 });
    s.c.send(S, { flags: 'FA', seq: 5001, ack: 1002, win: 510 });
    s.c.send(C, { flags: 'A', seq: 1002, ack: 5002, win: 502 });
    assert.equal(s.c.state, TW_);
    return s;
  }
  it('a new SYN in TIME_WAIT after a FIN kills the entry and repeats; the repeat is a fresh SYN_SENT', () => {
    const { h, c } = closed();
    const old = c.e;
    assert.equal(c.send(C, { flags: 'S', seq: 90000, win: 64240 }), PKT_REPEAT);
    assert.deepEqual(h.killed, [old]);
    c.fresh();
    assert.equal(c.send(C, { flags: 'S', seq: 90000, win: 64240 }), PKT_ACCEPT);
    assert.notEqual(c.e, old);
    assert.equal(c.state, 'SYN_SENT');
    assert.equal(c.timeout, 120);
  });
  it('a SYN from the server in TIME_WAIT also repeats (role switch)', () => {
    const { h, c } = closed();
    assert.equal(c.send(S, { flags: 'S', seq: 90000, win: 64240 }), PKT_REPEAT);
    assert.equal(h.killed.length, 1);
  });
  it('CLOSE after a RST from the same side: SYN from that side repeats, from the other side is ignored', () => {
    {
      const { h, c } = setup();
      handshake(c);
      assert.equal(c.send(C, { flags: 'R', seq: 1001 }), PKT_ACCEPT);
      assert.equal(c.state, 'CLOSE');
      assert.equal(c.timeout, 10);
      assert.equal(c.send(C, { flags: 'S', seq: 90000, win: 64240 }), PKT_REPEAT);
      assert.equal(h.killed.length, 1);
    }
    {
      const { h, c } = setup();
      handshake(c);
      assert.equal(c.send(S, { flags: 'R', seq: 5001 }), PKT_ACCEPT);
      assert.equal(c.state, 'CLOSE');
      assert.equal(c.send(C, { flags: 'S', seq: 90000, win: 64240 }), PKT_IGNORE);
      assert.equal(c.state, 'CLOSE');
      assert.deepEqual(h.killed, []);
      assert.deepEqual(h.logs, ['packet (index 0) in dir 0 ignored, state CLOSE']);
    }
  });
});

describe('tcp ignored packets and resync', () => {
  it('a SYN in ESTABLISHED is ignored; the SYN/ACK answering it resyncs to SYN_RECV', () => {
    const { t, h, c } = setup();
    handshake(c);
    const calls = h.setTimeoutCalls;
    assert.equal(c.send(C, { flags: 'S', seq: 90000, win: 29200, opts: { sackPerm: true, wscale: 6 } }), PKT_IGNORE);
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(h.setTimeoutCalls, calls, 'ignored: timeout untouched');
    assert.deepEqual(h.logs, ['packet (index 0) in dir 0 ignored, state ESTABLISHED']);
    // a SYN/ACK not answering it: ignored too
    assert.equal(c.send(S, { flags: 'SA', seq: 70000, ack: 12345, win: 65160, opts: { sackPerm: true, wscale: 5 } }), PKT_IGNORE);
    assert.equal(c.state, 'ESTABLISHED');
    // the client repeats its SYN, the server answers it
    assert.equal(c.send(C, { flags: 'S', seq: 90000, win: 29200, opts: { sackPerm: true, wscale: 6 } }), PKT_IGNORE);
    assert.equal(c.send(S, { flags: 'SA', seq: 70000, ack: 90001, win: 65160, opts: { sackPerm: true, wscale: 5 } }), PKT_ACCEPT);
    assert.equal(c.state, 'SYN_RECV');
    assert.equal(c.timeout, 60);
    assert.equal(seen(t, c.e, 0).scale, 6);
    assert.equal(seen(t, c.e, 1).scale, 5);
    assert.equal(seen(t, c.e, 0).end, 90001);
    assert.equal(seen(t, c.e, 0).maxwin, 29200, 'client window re-initialised from the ignored SYN');
    assert.equal(c.send(C, { flags: 'A', seq: 90001, ack: 70001, win: 400 }), PKT_ACCEPT);
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(c.timeout, 432000);
  });
  it('a reply ACK in SYN_SENT is ignored and a RST answering it (challenge ACK) is accepted', () => {
    const { h, c } = setup();
    c.send(C, { flags: 'S', seq: CISN, win: 64240 });
    assert.equal(c.send(S, { flags: 'A', seq: 777, ack: 123, win: 100 }), PKT_IGNORE);
    assert.equal(c.state, 'SYN_SENT');
    // client answers the challenge ACK with a RST whose seq is the ACK's ack
    assert.equal(c.send(C, { flags: 'R', seq: 123 }), PKT_ACCEPT);
    assert.equal(c.state, 'CLOSE');
    assert.deepEqual(h.killed, [], 'SEEN_REPLY was set by the ignored reply');
    assert.equal(c.timeout, 10);
  });
  it('RFC 5961 challenge ACK in LAST_ACK is not the last ACK', () => {
    const { h, c } = setup();
    handshake(c);
    c.send(C, { flags: 'FA', seq: 1001, ack: 5001, win: 502 });
    c.send(S, { flags: 'A', seq: 5001, ack: 1002, win: 510 });
    c.send(S, { flags: 'FA', seq: 5001, ack: 1002, win: 510 });
    assert.equal(c.state, 'LAST_ACK');
    assert.equal(c.send(C, { flags: 'S', seq: 90000, win: 64240 }), PKT_IGNORE);
    assert.equal(c.send(S, { flags: 'A', seq: 5002, ack: 1002, win: 510 }), PKT_IGNORE);
    assert.equal(c.state, 'LAST_ACK');
    assert.deepEqual(h.logs, ['packet (index 0) in dir 0 ignored, state LAST_ACK', 'challenge-ack ignored']);
    assert.equal(c.send(C, { flags: 'A', seq: 1002, ack: 5002, win: 502 }), PKT_ACCEPT);
    assert.equal(c.state, TW_);
  });
  it('an ignored reply still counts as a reply for the core (SEEN_REPLY) but not for the tracker', () => {
    const { c } = setup();
    c.send(C, { flags: 'S', seq: CISN, win: 64240 });
    c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160 });
    assert.equal(c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160 }), PKT_IGNORE, 'retransmitted SYN/ACK');
    assert.equal(c.state, 'SYN_RECV');
  });
});

describe('tcp simultaneous open', () => {
  it('SYN, SYN, SYN/ACK, (SYN/ACK ignored), ACK → ESTABLISHED + ASSURED', () => {
    const { t, c } = setup();
    assert.equal(c.send(C, { flags: 'S', seq: 1000, win: 64240 }), PKT_ACCEPT);
    assert.equal(c.send(S, { flags: 'S', seq: 5000, win: 65160 }), PKT_ACCEPT);
    assert.equal(c.state, 'SYN_SENT2');
    assert.notEqual(t.save(c.e)[9] & IP_CT_TCP_SIMULTANEOUS_OPEN, 0);
    assert.equal(c.timeout, 120, 'SYN in SYN_SENT before a reply: timeout not renewed');
    assert.equal(c.send(C, { flags: 'SA', seq: 1000, ack: 5001, win: 64240 }), PKT_ACCEPT);
    assert.equal(c.state, 'SYN_RECV');
    assert.equal(c.timeout, 60);
    assert.equal(c.send(S, { flags: 'SA', seq: 5000, ack: 1001, win: 65160 }), PKT_IGNORE);
    assert.equal(c.send(S, { flags: 'A', seq: 5001, ack: 1001, win: 65160 }), PKT_ACCEPT);
    assert.equal(c.state, 'ESTABLISHED');
    assert.notEqual(c.status & IPS_ASSURED, 0);
    assert.equal(c.timeout, 432000);
  });
});

describe('tcp window tracking (tcp_in_window)', () => {
  function est(tweak?: (t: TunableValues) => void): ReturnType<typeof setup> {
    const s = setup(tweak);
    handshake(s.c);
    s.h.logs.length = 0;
    return s;
  }
  function unchanged(s: ReturnType<typeof setup>, r: Outcome, want: number, log: string): void {
    const calls = s.h.setTimeoutCalls;
    assert.equal(r, want);
    assert.equal(s.c.state, 'ESTABLISHED');
    assert.deepEqual(s.h.logs, [log]);
    assert.equal(s.h.setTimeoutCalls, calls);
  }
  it('I: SEQ over the upper bound → INVALID', () => {
    const s = est();
    const calls = s.h.setTimeoutCalls;
    const r = s.c.send(C, { flags: 'PA', seq: 1001 + 200000, ack: 5001, win: 502, len: 10 });
    assert.equal(s.h.setTimeoutCalls, calls);
    unchanged(s, r, PKT_INVALID, 'SEQ is over upper bound 66162 (over the window of the receiver)');
  });
  it('I with a small overshoot → ignored, td_end advanced so the ACK of it passes', () => {
    const s = est();
    const r = s.c.send(C, { flags: 'PA', seq: 66162, ack: 5001, win: 502, len: 10 });
    unchanged(s, r, PKT_IGNORE, '12 bytes more than expected');
    assert.equal(seen(s.t, s.c.e, 0).end, 66172);
    assert.notEqual(seen(s.t, s.c.e, 0).flags & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED, 0);
    s.h.logs.length = 0;
    assert.equal(s.c.send(S, { flags: 'A', seq: 5001, ack: 66172, win: 510 }), PKT_ACCEPT);
  });
  it('III: ACK over the upper bound → INVALID', () => {
    const s = est();
    const r = s.c.send(S, { flags: 'A', seq: 5001, ack: 1501, win: 510 });
    unchanged(s, r, PKT_INVALID, 'ACK is over upper bound 1002 (ACKed data not seen yet)');
  });
  it('II: already ACKed data retransmitted → ignored (not INVALID, 6.x)', () => {
    const s = est();
    const r = s.c.send(C, { flags: 'PA', seq: (1001 - 100000) >>> 0, ack: 5001, win: 502, len: 10 });
    unchanged(s, r, PKT_IGNORE, `SEQ is under lower bound ${(1001 - 65160 - 1) >>> 0} (already ACKed data retransmitted)`);
  });
  it('IV: overly delayed ACK → ignored', () => {
    const s = est();
    const r = s.c.send(C, { flags: 'A', seq: 1001, ack: (5001 - 70000) >>> 0, win: 502 });
    unchanged(s, r, PKT_IGNORE, `ignored ACK under lower bound ${(5001 - 66000 - 1) >>> 0} (possible overly delayed)`);
  });
  it('nf_conntrack_tcp_be_liberal=1 accepts all four (no log), without moving the windows', () => {
    const s = est((x) => (x.nf_conntrack_tcp_be_liberal = 1));
    const e = s.c.e;
    const before = s.t.save(e);
    assert.equal(s.c.send(C, { flags: 'PA', seq: 1001 + 200000, ack: 5001, win: 502, len: 10 }), PKT_ACCEPT);
    assert.equal(s.c.send(S, { flags: 'A', seq: 5001, ack: 1501, win: 510 }), PKT_ACCEPT);
    assert.equal(s.c.send(C, { flags: 'PA', seq: (1001 - 100000) >>> 0, ack: 5001, win: 502, len: 10 }), PKT_ACCEPT);
    assert.equal(s.c.send(C, { flags: 'A', seq: 1001, ack: (5001 - 70000) >>> 0, win: 502 }), PKT_ACCEPT);
    assert.deepEqual(s.h.logs, []);
    const after = s.t.save(e);
    assert.deepEqual(after.slice(10), before.slice(10), 'seen[] untouched');
    assert.equal(s.c.state, 'ESTABLISHED');
  });
  it('per-direction BE_LIBERAL applies only to its sender', () => {
    const s = est();
    patch(s.t, s.c.e, (d) => (d[10 + 6 + 5] |= IP_CT_TCP_FLAG_BE_LIBERAL));
    assert.equal(s.c.send(S, { flags: 'A', seq: 5001, ack: 1501, win: 510 }), PKT_ACCEPT);
    assert.equal(s.c.send(C, { flags: 'PA', seq: 1001 + 200000, ack: 5001, win: 502, len: 10 }), PKT_INVALID);
  });
  it('SACK: the highest SACK right edge is checked as the ACK when the receiver allowed SACK', () => {
    const s = est();
    assert.equal(s.c.send(C, { flags: 'PA', seq: 1001, ack: 5001, win: 502, len: 1000 }), PKT_ACCEPT);
    assert.equal(s.c.send(S, { flags: 'A', seq: 5001, ack: 1001, win: 510, opts: { sack: [[1501, 2001]] } }), PKT_ACCEPT);
    assert.equal(seen(s.t, s.c.e, 1).maxwin, (510 << 7) + 1000, 'max window grows by sack - ack');
    assert.equal(
      s.c.send(S, {
        flags: 'A',
        seq: 5001,
        ack: 1001,
        win: 510,
        opts: {
          sack: [
            [1101, 1201],
            [2101, 3001],
          ],
        },
      }),
      PKT_INVALID,
    );
    assert.deepEqual(s.h.logs, ['ACK is over upper bound 2002 (ACKed data not seen yet)']);
  });
  it('SACK blocks are not looked at when the receiver did not send SACK-permitted', () => {
    const s = setup();
    handshake(s.c, { cOpts: { mss: 1460, wscale: 7 } });
    assert.equal(s.c.send(C, { flags: 'PA', seq: 1001, ack: 5001, win: 502, len: 1000 }), PKT_ACCEPT);
    assert.equal(s.c.send(S, { flags: 'A', seq: 5001, ack: 1001, win: 510, opts: { sack: [[2101, 3001]] } }), PKT_ACCEPT);
  });
  it('sequence numbers wrap around 2^32', () => {
    const { c } = setup();
    const ci = 0xffffff00;
    const si = 0xfffffff0;
    assert.equal(c.send(C, { flags: 'S', seq: ci, win: 64240 }), PKT_ACCEPT);
    assert.equal(c.send(S, { flags: 'SA', seq: si, ack: ci + 1, win: 65160 }), PKT_ACCEPT);
    assert.equal(c.send(C, { flags: 'A', seq: ci + 1, ack: si + 1, win: 64240 }), PKT_ACCEPT);
    assert.equal(c.send(C, { flags: 'PA', seq: ci + 1, ack: si + 1, win: 64240, len: 1000 }), PKT_ACCEPT);
    assert.equal(c.send(S, { flags: 'A', seq: si + 1, ack: (ci + 1001) >>> 0, win: 65160 }), PKT_ACCEPT);
    assert.equal(c.timeout, 432000);
    assert.equal(c.send(S, { flags: 'A', seq: si + 1, ack: (ci + 1002) >>> 0, win: 65160 }), PKT_INVALID);
  });
});

describe('tcp retransmissions and timeouts', () => {
  it('identical ACKs: the third retransmission caps the timeout at max_retrans', () => {
    const { c } = setup((x) => (x.nf_conntrack_tcp_timeout_max_retrans = 250));
    handshake(c); // the handshake ACK is the first of the series
    const dup = { flags: 'A', seq: 1001, ack: 5001, win: 502 };
    assert.equal(c.send(C, dup), PKT_ACCEPT);
    assert.equal(c.timeout, 432000);
    assert.equal(c.send(C, dup), PKT_ACCEPT);
    assert.equal(c.timeout, 432000);
    assert.equal(c.send(C, dup), PKT_ACCEPT);
    assert.equal(c.timeout, 250);
    assert.equal(c.send(C, dup), PKT_ACCEPT);
    assert.equal(c.timeout, 250);
    assert.equal(c.send(C, { ...dup, win: 503 }), PKT_ACCEPT);
    assert.equal(c.timeout, 432000, 'a different segment resets the counter');
  });
  it('nf_conntrack_tcp_max_retrans is read live', () => {
    const { h, c } = setup((x) => (x.nf_conntrack_tcp_timeout_max_retrans = 250));
    handshake(c);
    h.tun.nf_conntrack_tcp_max_retrans = 1;
    assert.equal(c.send(C, { flags: 'A', seq: 1001, ack: 5001, win: 502 }), PKT_ACCEPT);
    assert.equal(c.timeout, 250);
  });
  it('unacknowledged data caps long timeouts only', () => {
    const { c } = setup((x) => (x.nf_conntrack_tcp_timeout_unacknowledged = 200));
    handshake(c);
    c.send(C, { flags: 'PA', seq: 1001, ack: 5001, win: 502, len: 10 });
    assert.equal(c.timeout, 200);
    c.send(C, { flags: 'FA', seq: 1011, ack: 5001, win: 502 });
    assert.equal(c.state, 'FIN_WAIT');
    assert.equal(c.timeout, 120, 'FIN_WAIT is shorter than the cap');
  });
});

describe('tcp RST handling (§5.8)', () => {
  it('RST with the exact expected sequence closes (10 s)', () => {
    const { c } = setup();
    handshake(c);
    assert.equal(c.send(S, { flags: 'R', seq: 5001 }), PKT_ACCEPT);
    assert.equal(c.state, 'CLOSE');
    assert.equal(c.timeout, 10);
  });
  it('RST below the peer’s highest ACK → INVALID "invalid rst"', () => {
    const { h, c } = setup();
    handshake(c);
    assert.equal(c.send(S, { flags: 'R', seq: 4000 }), PKT_INVALID);
    assert.equal(c.state, 'ESTABLISHED');
    assert.deepEqual(h.logs, ['invalid rst']);
  });
  it('nf_conntrack_tcp_ignore_invalid_rst=1: that RST is passed on, state kept', () => {
    const { h, c } = setup((x) => (x.nf_conntrack_tcp_ignore_invalid_rst = 1));
    handshake(c);
    assert.equal(c.send(S, { flags: 'R', seq: 4000 }), PKT_ACCEPT);
    assert.equal(c.state, 'ESTABLISHED');
    assert.deepEqual(h.logs, []);
  });
  it('in-window RST with an inexact sequence keeps the state (room for a challenge ACK)', () => {
    const { c } = setup();
    handshake(c);
    assert.equal(c.send(S, { flags: 'R', seq: 6000 }), PKT_ACCEPT);
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(c.timeout, 10);
  });
  it('out-of-window inexact RST → INVALID by the window check', () => {
    const { h, c } = setup();
    handshake(c);
    assert.equal(c.send(S, { flags: 'R', seq: 5001 + 500000 }), PKT_INVALID);
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(h.logs.length, 1);
    assert.match(h.logs[0], /^SEQ is over upper bound/);
  });
  it('RST train: RST right after the same side’s data closes', () => {
    const { c } = setup();
    handshake(c);
    assert.equal(c.send(S, { flags: 'PA', seq: 5001, ack: 1001, win: 510, len: 19 }), PKT_ACCEPT);
    assert.equal(c.send(S, { flags: 'R', seq: 5020 }), PKT_ACCEPT);
    assert.equal(c.state, 'CLOSE');
  });
  it('RST in a closing state skips the checks', () => {
    const { c } = setup();
    handshake(c);
    c.send(C, { flags: 'FA', seq: 1001, ack: 5001, win: 502 });
    assert.equal(c.state, 'FIN_WAIT');
    assert.equal(c.send(S, { flags: 'R', seq: 123456789 }), PKT_ACCEPT);
    assert.equal(c.state, 'CLOSE');
    assert.equal(c.timeout, 10);
  });
  it('RST answering the SYN before any reply: accepted and the entry is killed', () => {
    const { h, c } = setup();
    c.send(C, { flags: 'S', seq: CISN, win: 64240 });
    const e = c.e;
    assert.equal(c.send(S, { flags: 'RA', seq: 0, ack: CISN + 1 }), PKT_ACCEPT);
    assert.deepEqual(h.killed, [e]);
  });
  it('not yet established: RST with seq 0 passes the td_maxack check, other old seqs do not', () => {
    {
      const { h, c } = setup();
      c.send(C, { flags: 'S', seq: CISN, win: 64240 });
      c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160 });
      assert.equal(c.send(C, { flags: 'R', seq: 0 }), PKT_ACCEPT);
      assert.equal(c.state, 'CLOSE');
      assert.deepEqual(h.logs, []);
    }
    {
      const { h, c } = setup();
      c.send(C, { flags: 'S', seq: CISN, win: 64240 });
      c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160 });
      assert.equal(c.send(C, { flags: 'R', seq: 500 }), PKT_INVALID);
      assert.equal(c.state, 'SYN_RECV');
      assert.deepEqual(h.logs, ['invalid rst']);
    }
  });
  it('RST from the client before any reply kills too', () => {
    const { h, c } = setup();
    c.send(C, { flags: 'S', seq: CISN, win: 64240 });
    assert.equal(c.send(C, { flags: 'R', seq: CISN + 1 }), PKT_ACCEPT);
    assert.deepEqual(h.killed, [c.e]);
  });
  it('RST after a reply was seen does not kill', () => {
    const { h, c } = setup();
    c.send(C, { flags: 'S', seq: CISN, win: 64240 });
    c.send(S, { flags: 'SA', seq: SISN, ack: CISN + 1, win: 65160 });
    assert.equal(c.send(C, { flags: 'R', seq: CISN + 1 }), PKT_ACCEPT);
    assert.equal(c.state, 'CLOSE');
    assert.deepEqual(h.killed, []);
  });
  it('out-of-window FIN answering an out-of-window FIN lowers an ASSURED entry to 300 s', () => {
    const { h, c } = setup();
    handshake(c);
    assert.equal(c.left, 432000);
    assert.equal(c.send(S, { flags: 'FA', seq: 5001 + 500000, ack: 1001, win: 510 }), PKT_INVALID);
    assert.equal(c.left, 432000, 'first one only annotated');
    assert.equal(c.send(C, { flags: 'FA', seq: 1001 + 500000, ack: 5001, win: 502 }), PKT_INVALID);
    assert.equal(c.left, 300);
    assert.equal(h.logs[2], 'packet (index 2, dir 0) response for index 2 lower timeout to 300');
    assert.equal(c.state, 'ESTABLISHED');
  });
});

describe('tcp tracker bookkeeping', () => {
  it('stateName, canEarlyDrop', () => {
    const t = new TcpTracker(2);
    const names = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];
    for (let s = 0; s < 10; s++) {
      patch(t, 1, (d) => (d[0] = s));
      assert.equal(t.stateName(1), names[s]);
      assert.equal(t.canEarlyDrop(1), s >= 4 && s <= 8);
    }
    assert.equal(t.name, 'tcp');
    assert.equal(t.protonum, 6);
  });
  it('save/restore round-trips every per-entry number and behaves the same after', () => {
    const a = setup();
    handshake(a.c);
    a.c.send(C, { flags: 'PA', seq: 1001, ack: 5001, win: 502, len: 10 });
    const saved = a.t.save(a.c.e);
    assert.equal(saved.length, TCP_SAVE_LEN);
    const b = setup();
    b.t.restore(3, saved);
    assert.deepEqual(b.t.save(3), saved);
    b.c.e = 3;
    b.h.st.set(3, a.h.status(a.c.e));
    const next = { flags: 'A', seq: 5001, ack: 1011, win: 510 };
    assert.equal(b.c.send(S, next), a.c.send(S, next));
    assert.deepEqual(b.t.save(3), a.t.save(a.c.e));
    assert.equal(b.c.timeout, 432000);
  });
  it('resize keeps existing entries', () => {
    const a = setup();
    handshake(a.c);
    const saved = a.t.save(a.c.e);
    a.t.resize(100000);
    assert.deepEqual(a.t.save(a.c.e), saved);
    a.t.resize(10); // never shrinks
    assert.deepEqual(a.t.save(a.c.e), saved);
    a.t.restore(150000, saved); // beyond the capacity: grows
    a.t.resize(300000);
    assert.deepEqual(a.t.save(150000), saved);
    assert.deepEqual(a.t.save(a.c.e), saved);
  });
  it('save() numbers keep the layout of state files written before the packed records', () => {
    const { t, c } = setup();
    handshake(c);
    c.send(C, { flags: 'PA', seq: 1001, ack: 5001, win: 502, len: 10 });
    c.send(S, { flags: 'A', seq: 5001, ack: 1011, win: 510 });
    c.send(S, { flags: 'A', seq: 5001, ack: 1011, win: 510 });
    // prettier-ignore
    assert.deepEqual(t.save(c.e), [3, 1, 1, 3, 5001, 1011, 5001, 510, 0, 0, 1011, 66291, 64256, 5001, 7, 35, 5001, 69257, 65280, 1011, 7, 35]);
  });
  it('newConnection initialises every field of a reused row (resize leaves rows alone)', () => {
    const h = new FakeHost();
    for (const v of [
      pkt(C, { flags: 'S', seq: CISN, win: 64240, opts: { mss: 1460, sackPerm: true, wscale: 7 } }),
      pkt(C, { flags: 'A', seq: CISN, ack: SISN, win: 502 }), // loose pickup
    ]) {
      const dirty = new TcpTracker(4);
      dirty.restore(
        2,
        Array.from({ length: TCP_SAVE_LEN }, (_, i) => (i * 37 + 11) & 0xff),
      );
      assert.equal(dirty.newConnection(h, 2, v, h.now), true);
      const clean = new TcpTracker(4);
      assert.equal(clean.newConnection(h, 2, v, h.now), true);
      assert.deepEqual(dirty.save(2), clean.save(2));
    }
  });
  it('FIXED_TIMEOUT entries are never refreshed', () => {
    const { h, c } = setup();
    handshake(c);
    h.setStatusBits(c.e, IPS_FIXED_TIMEOUT);
    const calls = h.setTimeoutCalls;
    assert.equal(c.send(C, { flags: 'FA', seq: 1001, ack: 5001, win: 502 }), PKT_ACCEPT);
    assert.equal(c.state, 'FIN_WAIT');
    assert.equal(h.setTimeoutCalls, calls);
  });
});

test('tcp_in_window: the ack of bytes a helper added is in window only through the receiver offset', () => {
  for (const withOffset of [true, false]) {
    const h = new FakeHost();
    const c = new Conn(new TcpTracker(), h);
    assert.equal(c.send(C, { flags: 'S', seq: 100, win: 64000 }), PKT_ACCEPT);
    assert.equal(c.send(S, { flags: 'SA', seq: 900, ack: 101, win: 64000 }), PKT_ACCEPT);
    assert.equal(c.send(C, { flags: 'A', seq: 101, ack: 901, win: 64000 }), PKT_ACCEPT);
    // the client's 20-byte command at 101 went out 25 bytes long
    assert.equal(c.send(C, { flags: 'PA', seq: 101, ack: 901, win: 64000, len: 20 }), PKT_ACCEPT);
    if (withOffset) {
      h.setStatusBits(c.e, IPS_SEQ_ADJUST);
      h.seqadj.clear(c.e);
      h.seqadj.set(c.e, C, 101, 5);
    }
    // the server acknowledges what it received: 101 + 25
    const r = c.send(S, { flags: 'A', seq: 901, ack: 126, win: 64000 });
    if (withOffset) assert.equal(r, PKT_ACCEPT);
    else assert.notEqual(r, PKT_ACCEPT, 'an ack 5 bytes past what the client sent is over the upper bound');
  }
});
