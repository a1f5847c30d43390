/**
 * State file: round trip with wall-clock adjusted timeouts, expired entries left out,
 * atomic write (no temp file left), and files that are ignored (corrupt, truncated, future
 * version, not a state file) without an exception.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Conntrack } from '../../../src/conntrack/core';
import { formatConntrack } from '../../../src/conntrack/format';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { TUPLE_WORDS } from '../../../src/conntrack/layout';
import { restoreState, saveState, STATE_VERSION } from '../../../src/daemon/state';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { NF_ACCEPT, NF_DROP, NF_INET_FORWARD } from '../../../src/queue/layout';
import { ipv4, tcp } from '../../helpers/packets';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-state-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function tuple(sport: number): number[] {
  const t = new Array(TUPLE_WORDS).fill(0);
  t[0] = (4 << 8) | 17;
  t[1] = 0xc6120101; // 198.18.1.1
  t[5] = 0xc6130201; // 198.19.2.1
  t[9] = ((sport << 16) | 53) >>> 0;
  return t;
}

function table(): Conntrack {
  const tun = defaultTunables(1 << 30);
  return new Conntrack(tun);
}

describe('state file', () => {
  test('round trip: timeouts less the wall-clock time passed; expired entries are not restored', async () => {
    const a = table();
    // replied and ASSURED: within nf_conntrack_udp_timeout_stream (120 s)
    a.importEntry({ tuple: tuple(1000), status: 6, timeoutMs: 100_000, ageMs: 5000, mark: 7, helper: '', proto: [] }, 50_000);
    a.importEntry({ tuple: tuple(1001), status: 0, timeoutMs: 10_000, ageMs: 0, mark: 0, helper: '', proto: [] }, 50_000);
    const file = path.join(dir, 'a.state');
    const w = await saveState(a, file, { now: 50_000, wallNow: 1_700_000_000_000 });
    assert.deepEqual(w, { entries: 2, expectations: 0 });
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp-')),
      [],
    );
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const b = table();
    // 20 s of wall-clock time later, on a fresh monotonic clock
    const r = restoreState(b, file, { now: 3000, wallNow: 1_700_000_020_000 });
    assert.equal(r.ignored, undefined);
    assert.equal(r.restored, 1);
    assert.equal(r.expired, 1);
    const lines: string[] = [];
    b.forEach((e) => lines.push(formatConntrack(b, e, 3000)));
    assert.deepEqual(lines, [
      'udp      17 80 src=198.18.1.1 dst=198.19.2.1 sport=1000 dport=53 src=198.19.2.1 dst=198.18.1.1 sport=53 dport=1000 [ASSURED] mark=7 use=1',
    ]);
  });

  test('a missing file restores nothing quietly', () => {
    const r = restoreState(table(), path.join(dir, 'missing'), { now: 0 });
    assert.deepEqual(r, { restored: 0, expired: 0, refused: 0, expectations: 0 });
  });

  test('corrupt, truncated, future-version and foreign files are ignored with a reason', async () => {
    const a = table();
    for (let i = 0; i < 10; i++) a.importEntry({ tuple: tuple(2000 + i), status: 0, timeoutMs: 100_000, ageMs: 0, mark: 0, helper: '', proto: [] }, 0);
    const good = path.join(dir, 'good.state');
    await saveState(a, good, { now: 0 });
    const text = fs.readFileSync(good, 'utf8');
    const cases: [string, string, RegExp][] = [
      ['truncated mid-line', text.slice(0, Math.floor(text.length / 2)), /not valid JSON|truncated/],
      ['truncated at a line end', text.split('\n').slice(0, 5).join('\n') + '\n', /truncated/],
      ['garbage', '\u0000\u0001binary junk', /not valid JSON/],
      ['future version', text.replace(`"version":${STATE_VERSION}`, '"version":99'), /unsupported state file version 99/],
      ['foreign', '{"hello":"world"}\n', /not an nfqwall state file/],
      ['empty', '', /not an nfqwall state file/],
    ];
    for (const [name, content, re] of cases) {
      const f = path.join(dir, 'bad.state');
      fs.writeFileSync(f, content);
      const b = table();
      const r = restoreState(b, f, { now: 0 });
      assert.match(String(r.ignored), re, name);
      assert.equal(b.count, 0, name);
    }
    const b = table();
    assert.equal(restoreState(b, good, { now: 0 }).restored, 10);
  });

  test('a TCP connection that moved on after the save (periodic save, fail-open downtime) is picked up again (liberal windows), state kept', async () => {
    // ESTABLISHED-only rules with tcp_loose=0: only a restored entry can admit these packets
    const text = `*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A FORWARD -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n`;
    const fwOf = () => {
      const loaded = loadRuleText(text, 'x.rules', { log: () => {} });
      assert.ok(loaded.rules, loaded.errors.join('\n'));
      const tun = defaultTunables(1 << 30);
      tun.nf_conntrack_tcp_loose = 0;
      return new Firewall({ tun, rules: loaded.rules! });
    };
    const C = '198.18.1.1';
    const S = '198.19.2.1';
    const ISN_C = 1000;
    const ISN_S = 900_000;
    const pkt = (fromClient: boolean, flags: string, seq: number, ack: number, payload = 0) =>
      fromClient
        ? ipv4({ src: C, dst: S }, tcp({ sport: 40000, dport: 6201, flags, seq, ack, window: 502, payload: new Uint8Array(payload) }))
        : ipv4({ src: S, dst: C }, tcp({ sport: 6201, dport: 40000, flags, seq, ack, window: 509, payload: new Uint8Array(payload) }));
    const send = (fw: Firewall, p: Uint8Array, now: number) => fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, 4, 2, 3, 0, 0, now);
    const a = fwOf();
    let now = 1000;
    assert.equal(send(a, pkt(true, 'S', ISN_C, 0), now++), NF_ACCEPT);
    assert.equal(send(a, pkt(false, 'SA', ISN_S, ISN_C + 1), now++), NF_ACCEPT);
    assert.equal(send(a, pkt(true, 'A', ISN_C + 1, ISN_S + 1, 1000), now++), NF_ACCEPT);
    assert.equal(send(a, pkt(false, 'A', ISN_S + 1, ISN_C + 1001, 100), now++), NF_ACCEPT);
    const file = path.join(dir, 'tcp.state');
    await saveState(a.ct, file, { now, wallNow: 1_700_000_000_000 });
    // 20 MB later (far beyond any window): what the first packets after a restart look like
    const far = 20 << 20;
    const later = [pkt(true, 'A', ISN_C + 1001 + far, ISN_S + 101 + 5000, 1000), pkt(false, 'A', ISN_S + 101 + 5000, ISN_C + 2001 + far, 100)];
    // the original table judges them out of window (INVALID → dropped): the control
    // (the entry imported with the windows of the file, as restore did before)
    const control = fwOf();
    assert.ok(control.ct.importEntry(JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[1]), 0) >= 0);
    assert.equal(send(control, later[0], 1), NF_DROP, 'control: the saved window refuses it');
    const b = fwOf();
    const r = restoreState(b.ct, file, { now: 0, wallNow: 1_700_000_001_000 });
    assert.equal(r.restored, 1);
    const lines: string[] = [];
    b.ct.forEach((e) => lines.push(formatConntrack(b.ct, e, 0)));
    assert.match(lines[0], /^tcp {6}6 \d+ ESTABLISHED src=198\.18\.1\.1 dst=198\.19\.2\.1 sport=40000 dport=6201 .*\[ASSURED\]/);
    assert.equal(send(b, later[0], 1), NF_ACCEPT, 'client data 20 MB further on');
    assert.equal(send(b, later[1], 2), NF_ACCEPT, 'server answer 20 MB further on');
    // right after a crash the peers resend old data and acknowledge data the restored entry
    // never saw (the server got more than the client resends): both must pass, or the
    // connection stalls — windows picked up from the first packets alone would refuse the ACK
    const c = fwOf();
    assert.equal(restoreState(c.ct, file, { now: 0, wallNow: 1_700_000_001_000 }).restored, 1);
    assert.equal(send(c, pkt(true, 'A', ISN_C + 1001 + far - 50_000, ISN_S + 5101, 1000), 1), NF_ACCEPT, 'a retransmission of old data');
    assert.equal(send(c, pkt(false, 'A', ISN_S + 5101, ISN_C + 1001 + far, 0), 2), NF_ACCEPT, 'the ACK of data the entry never saw');
    assert.equal(send(c, pkt(true, 'A', ISN_C + 1001 + far, ISN_S + 5101, 1000), 3), NF_ACCEPT, 'new data');
    const flags = (JSON.parse(JSON.stringify(c.ct.exportEntry([...c.ct.entries(10)][0], 10))).proto as number[]).filter((_, i) => i === 15 || i === 21);
    assert.deepEqual(
      flags.map((f) => f & 0x08),
      [0x08, 0x08],
      'both directions window-liberal (IP_CT_TCP_FLAG_BE_LIBERAL), as a mid-stream pickup',
    );
  });
});
