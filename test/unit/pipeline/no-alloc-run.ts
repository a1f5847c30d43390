/**
 * Child process of no-alloc.test.ts (not a test file itself): runs the packets and prints
 * {"minor": N, "major": N, "packets": N} — the garbage collections seen while processing.
 * Run with a small young generation (--max-semi-space-size=1) so that any per-packet
 * allocation shows up as many scavenges.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleFile } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { NF_ACCEPT, VERDICT_MASK } from '../../../src/queue/layout';
import { batchOf } from '../../helpers/batch';
import { SyncEventQueue } from '../../../src/sync/event-queue';
import type { TcpTracker } from '../../../src/conntrack/proto/tcp';
import { ipv4, ipv6, sctp, sctpInitValue, tcp, udp } from '../../helpers/packets';
import * as fs from 'node:fs';
import { runIpset } from '../../../src/rules/sets/command';
import { newListenerTable, NflogRing, nflogBus } from '../../../src/rules/nflog-ring';

const FLOWS = 512;

/**
 * SCTP associations (with `sctp` as the last argument): set up by INIT, INIT_ACK, COOKIE_ECHO,
 * COOKIE_ACK; then DATA and SACK with their vtags and CRC32c, and a HEARTBEAT / HEARTBEAT_ACK.
 */
function sctpAssociations(setup: Uint8Array[], steady: Uint8Array[]): void {
  for (let k = 0; k < FLOWS; k++) {
    const c = `198.18.${200 + (k >> 8)}.${k & 255}`;
    const s = '198.19.2.1';
    const tagC = 0x10000000 + k;
    const tagS = 0x20000000 + k;
    const C = (vtag: number, type: number, data: Uint8Array | number[], flags = 0) =>
      ipv4({ src: c, dst: s }, sctp({ sport: 40000 + k, dport: 5220, vtag, chunks: [{ type, flags, data }] }));
    const S = (vtag: number, type: number, data: Uint8Array | number[], flags = 0) =>
      ipv4({ src: s, dst: c }, sctp({ sport: 5220, dport: 40000 + k, vtag, chunks: [{ type, flags, data }] }));
    setup.push(C(0, 1, sctpInitValue(tagC)), S(tagC, 2, sctpInitValue(tagS)), C(tagS, 10, [1, 2, 3, 4]), S(tagC, 11, []));
    const payload = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, ...new Array(48).fill(0x61)];
    steady.push(
      C(tagS, 0, payload, 3),
      S(tagC, 3, [0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]),
      C(tagS, 4, [0, 1, 0, 8, 1, 2, 3, 4]),
      S(tagC, 5, [0, 1, 0, 8, 1, 2, 3, 4]),
    );
  }
}

function packets(withSctp: boolean, withV6: boolean): { setup: Uint8Array[]; steady: Uint8Array[] } {
  const setup: Uint8Array[] = [];
  const steady: Uint8Array[] = [];
  const pay = new Uint8Array(64).fill(0x61);
  for (let k = 0; k < FLOWS; k++) {
    const c = `198.18.${k >> 8}.${k & 255}`;
    const s = '198.19.2.1';
    const sport = 20000 + k;
    if (k % 2 === 0) {
      const a = (k * 2654435761) >>> 0;
      const b = (a ^ 0x5bd1e995) >>> 0;
      const C = (spec: Parameters<typeof tcp>[0]) => ipv4({ src: c, dst: s }, tcp({ sport, dport: 5201, window: 64240, ...spec }));
      const S = (spec: Parameters<typeof tcp>[0]) => ipv4({ src: s, dst: c }, tcp({ sport: 5201, dport: sport, window: 65160, ...spec }));
      setup.push(C({ seq: a, flags: 'S' }), S({ seq: b, ack: a + 1, flags: 'SA' }), C({ seq: a + 1, ack: b + 1, flags: 'A' }));
      // retransmissions of one in-window data segment and its ACK: ESTABLISHED every time
      steady.push(C({ seq: a + 1, ack: b + 1, flags: 'PA', payload: pay }), S({ seq: b + 1, ack: a + 65, flags: 'A' }));
    } else {
      const q = ipv4({ src: c, dst: s }, udp({ sport, dport: 5210, payload: pay }));
      const r = ipv4({ src: s, dst: c }, udp({ sport: 5210, dport: sport, payload: pay }));
      setup.push(q, r);
      steady.push(q, r);
    }
  }
  // new flows: UDP from other sources, each a NEW entry the first time it is seen after a sweep
  for (let k = 0; k < FLOWS; k++) steady.push(ipv4({ src: `198.18.100.${k & 255}`, dst: '198.19.2.1' }, udp({ sport: 30000 + k, dport: 5211, payload: pay })));
  if (withSctp) sctpAssociations(setup, steady);
  // IPv6 UDP flows (with an ipset file: the sets are looked up in both families)
  if (withV6)
    for (let k = 0; k < FLOWS; k++) {
      const q = ipv6({ src: `2001:2::${(k + 1).toString(16)}`, dst: '2001:2:1::1' }, udp({ sport: 30000 + k, dport: 5212, payload: pay }));
      setup.push(q);
      steady.push(q);
    }
  return { setup, steady };
}

async function main(): Promise<void> {
  // after the rules: 'sctp' (SCTP associations too), a *.ipset file (an `ipset restore` file,
  // loaded before the rules that name its sets; IPv6 flows too)
  const extra = process.argv.slice(4);
  const ipsetFile = extra.find((a) => a.endsWith('.ipset'));
  if (ipsetFile) {
    const r = runIpset(['restore'], 0, fs.readFileSync(ipsetFile, 'utf8'));
    assert.equal(r.status, 0, r.err ?? '');
  }
  const loaded = loadRuleFile(process.argv[3] ?? path.join(__dirname, '..', '..', '..', 'rules', 'bench.rules'), { log: () => {} });
  assert.ok(loaded.rules, loaded.errors.join('\n'));
  const tun = defaultTunables();
  tun.nf_conntrack_max = 8192;
  // as in the daemon: a ring and the readers table, no reader (-j NFLOG copies nothing)
  nflogBus.attach(new NflogRing(), newListenerTable());
  const fw = new Firewall({ tun, rules: loaded.rules! });
  // "sync": the table's events are recorded for state sync (the sender, which runs in the event
  // loop, is replaced by emptying the ring every round)
  const events = extra.includes('sync') ? new SyncEventQueue(fw.ct.table, fw.ct.tracker(6) as TcpTracker) : undefined;
  fw.ct.events = events;
  const { setup, steady } = packets(extra.includes('sctp'), ipsetFile !== undefined);
  const sb = batchOf(setup);
  const st = batchOf(steady);
  let now = 1000.5;
  fw.processBatch(sb, now);
  const run = (rounds: number) => {
    for (let r = 0; r < rounds; r++) {
      now += 40_000.173; // past the 30 s unreplied-UDP timeout: the new flows expire every round (fractional ms, as performance.now())
      fw.tick(now, 1 << 14);
      fw.processBatch(st, now);
      if (events) {
        assert.ok(events.length > 0 && !events.overrun);
        events.clear();
      }
    }
  };
  run(300); // warm-up: JIT, table and caches at their size
  for (let i = 0; i < st.count; i++) assert.equal(st.verdicts[i] & VERDICT_MASK, NF_ACCEPT, `packet ${i}`);
  let minor = 0;
  let major = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) minor++;
      else major++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  await new Promise((r) => setImmediate(r));
  minor = 0;
  major = 0;
  const rounds = Math.ceil(Number(process.argv[2] ?? 1_000_000) / st.count);
  run(rounds);
  await new Promise((r) => setTimeout(r, 20));
  obs.disconnect();
  for (let i = 0; i < st.count; i++) assert.equal(st.verdicts[i] & VERDICT_MASK, NF_ACCEPT, `packet ${i}`);
  process.stdout.write(JSON.stringify({ minor, major, packets: rounds * st.count }) + '\n');
}

void main();
