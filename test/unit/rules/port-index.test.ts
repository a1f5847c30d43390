/**
 * The destination-port index of compile.ts (PortIndex): a packet walks only the rules
 * its destination port can match. Differential check: random rule sets (port rules, port
 * rules behind pure and stateful matches, LOG and limit rules, jumps, negations) evaluated
 * with the index and with the index removed must give the same verdicts, the same per-rule
 * and policy counters and the same LOG lines, for random TCP/UDP packets including
 * fragments and truncated headers (where the index must not be used).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor } from './util';
import { ipv4, ipv6, tcp, udp } from '../../helpers/packets';
import { CTSTATE_ESTABLISHED, CTSTATE_NEW, IP_CT_ESTABLISHED, IP_CT_NEW } from '../../../src/conntrack/constants';
import { KEY_DPORT, KEY_SRC4, PortIndex, portConstraint } from '../../../src/rules/compile';
import { loadRules } from '../../../src/rules/index';

/** xorshift32, deterministic */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

const PORTS = [22, 25, 53, 80, 443, 1000, 1001, 5201, 8080, 65535];

function randomRules(r: () => number, n: number): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  const port = () => String(pick(PORTS));
  const range = () => {
    const a = pick(PORTS);
    const b = pick(PORTS);
    return a === b ? String(a) : `${Math.min(a, b)}:${Math.max(a, b)}`;
  };
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ':SUB - [0:0]'];
  const target = () => pick(['-j ACCEPT', '-j DROP', '', '-j LOG --log-prefix "x: "', '-j SUB', '-j RETURN']);
  const rule = (chain: string) => {
    const proto = pick(['tcp', 'udp']);
    const pre = pick(['', '', '-m conntrack --ctstate NEW ', '-m limit --limit 3/sec --limit-burst 2 ', '-m comment --comment c ']);
    const src = pick([
      '',
      '',
      '',
      '-s 198.18.1.0/24 ',
      '-s 198.18.0.0/16 ',
      '! -s 198.18.1.0/24 ',
      '-s 10.0.0.0/8 ',
      '-s 198.18.9.1 ',
      '-s 198.18.0.0/255.255.0.255 ',
      '-s 2001:2:0:1::/64 ',
    ]);
    const kind = Math.floor(r() * 7);
    let m: string;
    if (kind === 0) m = `-p ${proto} -m ${proto} --dport ${range()}`;
    else if (kind === 1) m = `-p ${proto} -m ${proto} ! --dport ${range()}`;
    else if (kind === 2) m = `-p ${proto} -m multiport --dports ${port()},${range()}`;
    else if (kind === 3) m = `-p ${proto} -m multiport ! --dports ${port()}`;
    else if (kind === 4) m = `-p ${proto} -m multiport --ports ${port()}`;
    else if (kind === 5) m = `-p ${proto} -m ${proto} --sport ${range()}`;
    else m = pick(['', `-p ${proto}`]);
    let t = target();
    if (chain === 'SUB' && t === '-j SUB') t = '-j ACCEPT';
    if (chain === 'FORWARD' && t === '-j RETURN') t = '';
    return `-A ${chain} ${src}${pre}${m} ${t}`.replace(/\s+/g, ' ').trim();
  };
  for (let i = 0; i < n; i++) lines.push(rule('FORWARD'));
  for (let i = 0; i < n / 2; i++) lines.push(rule('SUB'));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function randomPacket(r: () => number): Uint8Array {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  const dport = r() < 0.8 ? pick(PORTS) : Math.floor(r() * 65536);
  const sport = r() < 0.5 ? pick(PORTS) : 40000;
  const l4 = r() < 0.5 ? tcp({ sport, dport }) : udp({ sport, dport });
  const x = r();
  if (x < 0.08) return ipv4({ src: '198.18.1.1', dst: '198.19.2.1', proto: l4 === undefined ? 6 : undefined, fragOffset: pick([8, 16]) }, l4);
  if (x < 0.12) return ipv4({ src: '198.18.1.1', dst: '198.19.2.1', totalLength: 20 + 3 }, l4).subarray(0, 23);
  if (x < 0.3) return ipv6({ src: '2001:2:0:1::1', dst: '2001:2:0:2::1' }, l4);
  return ipv4({ src: pick(['198.18.1.1', '198.18.9.1', '10.1.2.3', '198.18.0.1', '255.255.255.255', '0.0.0.0']), dst: '198.19.2.1' }, l4);
}

function withoutIndex(text: string) {
  const t = engineFor(text);
  for (const ch of t.engine.compiled.chains) ch.portIdx = ch.portIdx.map(() => null);
  return t;
}

test('port and source indexes: same verdicts, counters and LOG lines as the full walk (random rule sets)', () => {
  let indexed = 0;
  const kinds = new Set<number>();
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed * 7919);
    const text = randomRules(r, 24 + Math.floor(r() * 40));
    const a = engineFor(text);
    const b = withoutIndex(text);
    indexed += a.engine.compiled.chains.filter((c) => c.portIdx.some((p) => p !== null)).length;
    for (const c of a.engine.compiled.chains) for (const p of c.portIdx) if (p) kinds.add(p.kind);
    for (let i = 0; i < 400; i++) {
      const pkt = randomPacket(r);
      const est = r() < 0.3;
      const o = { ctstate: est ? CTSTATE_ESTABLISHED : CTSTATE_NEW, ctinfo: est ? IP_CT_ESTABLISHED : IP_CT_NEW };
      const now = i * 37; // ms: the limit rules refill and run dry
      const va = a.engine.evalFilter(ctxFor(pkt, o), now);
      const vb = b.engine.evalFilter(ctxFor(pkt, o), now);
      assert.equal(va, vb, `seed ${seed} packet ${i}: verdict`);
    }
    assert.deepEqual(Array.from(a.engine.counters.rulePkts), Array.from(b.engine.counters.rulePkts), `seed ${seed}: rule counters`);
    assert.deepEqual(Array.from(a.engine.counters.chainPkts), Array.from(b.engine.counters.chainPkts), `seed ${seed}: policy counters`);
    assert.deepEqual(a.logs, b.logs, `seed ${seed}: LOG lines`);
  }
  assert.ok(indexed > 10, `only ${indexed} chains got an index`);
  assert.ok(kinds.has(KEY_DPORT) && kinds.has(KEY_SRC4), `index kinds used: ${[...kinds].join(',')}`);
});

test('port index: which rules may be skipped', () => {
  const rules = (line: string) => {
    const r = loadRules(`*filter\n:FORWARD DROP [0:0]\n-A FORWARD ${line}\nCOMMIT\n`, 't', { helperId: () => 0 });
    return portConstraint(r.set!.tables[0].chains.find((c) => c.name === 'FORWARD')!.rules[0]);
  };
  assert.deepEqual(rules('-p tcp --dport 80 -j ACCEPT'), [[80, 80]]);
  assert.deepEqual(rules('-p udp -m udp --dport 1000:2000 -j ACCEPT'), [[1000, 2000]]);
  assert.deepEqual(rules('-m conntrack --ctstate NEW -p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT'), [
    [80, 80],
    [443, 443],
    [8000, 8080],
  ]);
  // a stateful match before the port test (limit spends a token) keeps the rule on every path
  assert.equal(rules('-p tcp -m limit --limit 1/sec -m tcp --dport 80 -j ACCEPT'), null);
  assert.equal(rules('-p tcp ! --dport 80 -j ACCEPT'), null);
  assert.equal(rules('-p tcp -m multiport ! --dports 80 -j ACCEPT'), null);
  assert.equal(rules('-p tcp -m multiport --ports 80 -j ACCEPT'), null);
  assert.equal(rules('-p tcp --sport 80 -j ACCEPT'), null);
  assert.equal(rules('-p tcp -j ACCEPT'), null);
});

test('port index: a 1000-rule chain of port rules visits a handful of rules per packet', () => {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]'];
  lines.push('-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  for (let i = 0; i < 998; i++) lines.push(`-A FORWARD -p ${i % 2 ? 'udp' : 'tcp'} -m ${i % 2 ? 'udp' : 'tcp'} --dport ${10000 + i} -j ACCEPT`);
  lines.push('-A FORWARD -p tcp -m multiport --dports 80,443 -j ACCEPT', 'COMMIT', '');
  const { engine } = engineFor(lines.join('\n'));
  const fwd = engine.compiled.chains[engine.compiled.filterForward];
  const pi = fwd.portIdx[0] as PortIndex; // IPv4 TCP
  assert.ok(pi instanceof PortIndex);
  assert.deepEqual(Array.from(pi.lookup(443)), [0, 999]);
  assert.deepEqual(Array.from(pi.lookup(10000)), [0, 1]);
  assert.deepEqual(Array.from(pi.lookup(9)), [0]);
  const ctx = ctxFor(ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 443 })));
  assert.equal(engine.evalFilter(ctx, 0), 1);
  assert.equal(engine.counters.rulePkts[999], 1);
});

test('source index: a chain of -s prefixes (bogons) visits only the prefixes holding the source', () => {
  const bogons = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/4', '240.0.0.0/4'];
  const text = ['*filter', ':FORWARD ACCEPT [0:0]', ...bogons.map((b) => `-A FORWARD -s ${b} -j DROP`), '-A FORWARD -p udp -j ACCEPT', 'COMMIT', ''].join('\n');
  const { engine } = engineFor(text);
  const pi = engine.compiled.chains[engine.compiled.filterForward].portIdx[1] as PortIndex; // IPv4 UDP
  assert.equal(pi.kind, KEY_SRC4);
  assert.deepEqual(Array.from(pi.lookup(0xc6120101)), [9]); // 198.18.1.1: only the wildcard
  assert.deepEqual(Array.from(pi.lookup(0x0a010203)), [1, 9]); // 10.1.2.3
  assert.deepEqual(Array.from(pi.lookup(0xffffffff)), [8, 9]);
  assert.deepEqual(Array.from(pi.lookup(0xffffffff | 0)), [8, 9]); // the same word as int32
  assert.equal(engine.evalFilter(ctxFor(ipv4({ src: '10.9.9.9', dst: '198.19.2.1' }, udp({ sport: 1, dport: 2 }))), 0), 0);
  assert.equal(engine.evalFilter(ctxFor(ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 1, dport: 2 }))), 0), 1);
  assert.equal(engine.counters.rulePkts[1], 1);
  assert.equal(engine.counters.rulePkts[9], 1);
});

test('index lists equal the brute-force candidate lists at every cut and beside it (random overlapping ranges, multiport, wildcards)', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const r = rng(seed * 104729);
    const port = () => 1 + Math.floor(r() * 2000);
    const lines = ['*filter', ':FORWARD ACCEPT [0:0]'];
    const want: ([number, number][] | null)[] = [];
    for (let i = 0; i < 300; i++) {
      const k = r();
      if (k < 0.1) {
        lines.push('-A FORWARD -p tcp -j ACCEPT');
        want.push(null);
      } else if (k < 0.5) {
        const a = port();
        const b = a + Math.floor(r() * 300);
        lines.push(`-A FORWARD -p tcp -m tcp --dport ${a}:${b} -j DROP`);
        want.push([[a, b]]);
      } else {
        const ps = Array.from({ length: 1 + Math.floor(r() * 4) }, () => port()).sort((x, y) => x - y);
        lines.push(`-A FORWARD -p tcp -m multiport --dports ${[...new Set(ps)].join(',')} -j DROP`);
        want.push([...new Set(ps)].map((p) => [p, p]));
      }
    }
    lines.push('COMMIT', '');
    const { engine } = engineFor(lines.join('\n'));
    const pi = engine.compiled.chains[engine.compiled.filterForward].portIdx[0] as PortIndex; // IPv4 TCP
    assert.equal(pi.kind, KEY_DPORT, `seed ${seed}`);
    const probes = new Set<number>([0, 65535]);
    for (const c of want) for (const [lo, hi] of c ?? []) for (const p of [lo - 1, lo, hi, hi + 1]) if (p >= 0 && p <= 65535) probes.add(p);
    for (const p of probes) {
      const brute = want.flatMap((c, i) => (!c || c.some(([lo, hi]) => p >= lo && p <= hi) ? [i] : []));
      assert.deepEqual(Array.from(pi.lookup(p)), brute, `seed ${seed} port ${p}`);
    }
  }
});

test('source index of a 50k-address blocklist: each address finds its own rule and the wildcard rules only', () => {
  const N = 50_000;
  const addr = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  const lines = ['*filter', ':FORWARD ACCEPT [0:0]', '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'];
  for (let i = 0; i < N; i++) lines.push(`-A FORWARD -s ${addr(i)}/32 -j DROP`);
  lines.push('-A FORWARD -p udp -j ACCEPT', 'COMMIT', '');
  const { engine } = engineFor(lines.join('\n'));
  const pi = engine.compiled.chains[engine.compiled.filterForward].portIdx[1] as PortIndex; // IPv4 UDP
  assert.equal(pi.kind, KEY_SRC4);
  const word = (i: number) => ((198 << 24) | ((18 + (i >> 16)) << 16) | (i & 0xffff)) >>> 0;
  for (let i = 0; i < N; i += 997) assert.deepEqual(Array.from(pi.lookup(word(i))), [0, 1 + i, N + 1], addr(i));
  assert.deepEqual(Array.from(pi.lookup(word(N))), [0, N + 1], 'an address on no list');
  assert.ok(pi.maxList() <= 3);
  assert.equal(engine.evalFilter(ctxFor(ipv4({ src: addr(12345), dst: '198.19.2.1' }, udp({ sport: 1, dport: 2 }))), 0), 0);
  assert.equal(engine.evalFilter(ctxFor(ipv4({ src: addr(N), dst: '198.19.2.1' }, udp({ sport: 1, dport: 2 }))), 0), 1);
});
