/**
 * Micro-benchmark of the rule evaluator: packets per second through a FORWARD chain of
 * 10 and of 1000 rules (worst case for the packet: it matches the last rule), IPv4 TCP
 * and UDP, with conntrack and port matches. No thresholds: it prints numbers.
 *
 *   node --import tsx bench/micro/rules.ts
 */
import { PacketContext } from '../../src/conntrack/context';
import { parsePacket } from '../../src/packet/parse';
import { NF_INET_FORWARD } from '../../src/queue/layout';
import { CTSTATE_NEW, IP_CT_NEW } from '../../src/conntrack/constants';
import { loadRules, formatError } from '../../src/rules/index';
import { ipv4, tcp, udp } from '../../test/helpers/packets';

function ruleText(n: number): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]'];
  lines.push('-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  for (let i = 0; i < n - 2; i++) {
    const proto = i % 2 === 0 ? 'tcp' : 'udp';
    lines.push(`-A FORWARD -s 198.18.${(i >> 8) & 255}.${i & 255}/32 -i g0 -p ${proto} -m ${proto} --dport ${10000 + i} -j ACCEPT`);
  }
  lines.push('-A FORWARD -i g+ -o g1 -p tcp -m multiport --dports 80,443 -j ACCEPT');
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function ctxOf(pkt: Uint8Array): PacketContext {
  const ctx = new PacketContext();
  ctx.reset();
  parsePacket(pkt, 0, pkt.length, ctx.view);
  ctx.family = 4;
  ctx.hook = NF_INET_FORWARD;
  ctx.indev = 2;
  ctx.outdev = 3;
  ctx.length = pkt.length;
  ctx.entry = 1;
  ctx.ctinfo = IP_CT_NEW;
  ctx.ctstate = CTSTATE_NEW;
  return ctx;
}

function run(n: number): void {
  const r = loadRules(ruleText(n), `bench-${n}.rules`, {
    helperId: () => 0,
    deps: { ifname: (i) => ['', 'lo', 'g0', 'g1'][i], log: () => {}, reject: () => {} },
  });
  if (!r.engine) throw new Error(r.errors.map(formatError).join('\n'));
  const engine = r.engine;
  const cases: [string, PacketContext][] = [
    ['tcp to the last rule', ctxOf(ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, tcp({ sport: 40000, dport: 443 })))],
    ['udp, no rule matches', ctxOf(ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 40000, dport: 9 })))],
  ];
  for (const [name, ctx] of cases) {
    for (let i = 0; i < 20000; i++) engine.evalFilter(ctx, i); // warm-up
    const iters = n > 100 ? 200_000 : 2_000_000;
    const t0 = process.hrtime.bigint();
    let acc = 0;
    for (let i = 0; i < iters; i++) acc += engine.evalFilter(ctx, i);
    const ns = Number(process.hrtime.bigint() - t0);
    const pps = (iters / ns) * 1e9;
    process.stdout.write(
      `${String(n).padStart(5)} rules  ${name.padEnd(22)} ${(pps / 1e6).toFixed(2).padStart(8)} Mpps  ${(ns / iters).toFixed(0).padStart(6)} ns/packet  (verdict sum ${acc})\n`,
    );
  }
}

run(10);
run(1000);
