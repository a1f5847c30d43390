/**
 * What a target may do to a packet besides deciding it (src/rules/types.ts CompiledTarget):
 * set the packet mark, rewrite the bytes in place, set the connection mark. A target of the
 * test's own, registered for the test like a real one (one module in TARGETS), goes through
 * parse, compile, the walk and Firewall.processBatch; the batch must come out with the verdict
 * flags and marks the queue sends to the kernel (src/queue/layout.ts).
 */
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText, type LoadedRules } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { parsePacket } from '../../../src/packet/parse';
import { put16 } from '../../../src/packet/bytes';
import { ipv4HeaderChecksum } from '../../../src/packet/checksum';
import type { PacketContext } from '../../../src/conntrack/context';
import { NF_ACCEPT, NF_DROP, VERDICT_SET_MARK, VERDICT_SET_PAYLOAD } from '../../../src/queue/layout';
import { batchOf } from '../../helpers/batch';
import { TARGETS } from '../../../src/rules/targets/index';
import { XT_CONTINUE, type CompiledTarget, type TargetModule } from '../../../src/rules/types';
import { ipv4, udp } from '../../helpers/packets';

interface TestState {
  mark: number;
  ctmark: number;
  ttl: number;
}

/** --mark N (packet mark), --ctmark N (connection mark), --ttl N (rewrites the IPv4 TTL and header checksum). */
const testTarget: TargetModule<TestState> = {
  name: 'NFQWTEST',
  tables: ['filter'],
  options: [
    { name: 'mark', invertible: false, args: 1 },
    { name: 'ctmark', invertible: false, args: 1 },
    { name: 'ttl', invertible: false, args: 1 },
  ],
  create: () => ({ mark: -1, ctmark: -1, ttl: -1 }),
  parse(s, opt, args) {
    s[opt as keyof TestState] = Number(args[0].text);
  },
  finalize() {},
  familyOf: () => 4,
  save: (s) => Object.entries(s).flatMap(([k, v]) => (v >= 0 ? [`--${k}`, String(v)] : [])),
  compile(s): CompiledTarget {
    return {
      run(ctx: PacketContext): number {
        if (s.mark >= 0) {
          ctx.mark = s.mark;
          ctx.verdictFlags |= VERDICT_SET_MARK;
        }
        if (s.ctmark >= 0 && ctx.entry >= 0 && ctx.conn) {
          ctx.conn.setMark(ctx.entry, s.ctmark);
          ctx.ctmark = s.ctmark;
        }
        if (s.ttl >= 0) {
          const v = ctx.view;
          const b = v.buf;
          b[v.off + 8] = s.ttl;
          put16(b, v.off + 10, ipv4HeaderChecksum(b, v.off));
          parsePacket(b, v.off, v.len, v, 4);
          ctx.verdictFlags |= VERDICT_SET_PAYLOAD;
        }
        return XT_CONTINUE;
      },
    };
  },
};
TARGETS.NFQWTEST = testTarget;
after(() => delete TARGETS.NFQWTEST);

function firewall(rules: string[]): { fw: Firewall; rules: LoadedRules } {
  const text = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ...rules.map((r) => `-A FORWARD ${r}`), 'COMMIT', ''].join(
    '\n',
  );
  const r = loadRuleText(text, 'effects.rules', { log: () => {}, ifname: () => undefined, reject: () => {} });
  assert.deepEqual(r.errors, []);
  const fw = new Firewall({ tun: { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 1024, nf_conntrack_max: 1024 }, rules: r.rules! });
  return { fw, rules: r.rules! };
}

const dgram = (sport: number, dport: number) => ipv4({ src: '198.18.1.1', dst: '198.19.2.1', ttl: 64 }, udp({ sport, dport, payload: 'x' }));

test('a target sets the packet mark: the ACCEPT carries VERDICT_SET_MARK and batch.marks the mark; DROP carries nothing', () => {
  const { fw } = firewall(['-p udp -j NFQWTEST --mark 42', '-p udp --dport 53 -j ACCEPT']);
  const b = batchOf([dgram(40000, 53), dgram(40001, 54)]);
  fw.processBatch(b, 1000);
  assert.equal(b.verdicts[0], NF_ACCEPT | VERDICT_SET_MARK);
  assert.equal(b.marks[0], 42);
  assert.equal(b.verdicts[1], NF_DROP);
  assert.equal(b.marks[1], 0);
});

test('a target sets the connection mark: the entry keeps it, later rules and packets see it', () => {
  const { fw, rules } = firewall(['-m connmark --mark 7 -j ACCEPT', '-p udp -j NFQWTEST --ctmark 7', '-m connmark --mark 7 -j ACCEPT']);
  const b = batchOf([dgram(40000, 53), dgram(40000, 53)]);
  fw.processBatch(b, 1000);
  assert.deepEqual(Array.from(b.verdicts), [NF_ACCEPT, NF_ACCEPT]);
  assert.equal(fw.ct.mark(fw.ctx.entry), 7);
  // first packet: rules 2 and 3; second (the entry's mark is 7 now): rule 1
  assert.deepEqual(Array.from(rules.counters.rulePkts), [1, 1, 1]);
});

test('a target rewrites the packet in place: VERDICT_SET_PAYLOAD, the new bytes in batch.data, the view parsed again', () => {
  const { fw } = firewall(['-p udp -j NFQWTEST --ttl 9', '-p udp -j ACCEPT']);
  const b = batchOf([dgram(40000, 53)]);
  fw.processBatch(b, 1000);
  assert.equal(b.verdicts[0], NF_ACCEPT | VERDICT_SET_PAYLOAD);
  assert.equal(b.data[8], 9);
  assert.equal(fw.ctx.view.ttl, 9);
});
