/**
 * `nfqwall replay [--rules FILE] [options] CAPTURE` — offline: runs every packet of a
 * capture through the same pipeline as the daemon (parse → raw → conntrack →
 * filter → confirm) and prints one line per packet with its connection state and
 * verdict. Time is the capture's own timestamps, so timeouts behave as on the wire.
 */
import { openCapture, PcapError, type PcapPacket, type PcapReader } from '../pcap/read';
import { Firewall, HOOK_NAMES, type RuleEvaluator } from '../pipeline/firewall';
import { defaultTunables } from '../conntrack/sysctl';
import { applySetting } from '../conntrack/settings';
import { addrToString } from '../packet/format';
import { formatConntrack, formatExpect, summary } from '../conntrack/format';
import { CTSTATE_ESTABLISHED, CTSTATE_INVALID, CTSTATE_NEW, CTSTATE_RELATED, CTSTATE_UNTRACKED } from '../conntrack/constants';
import { NF_ACCEPT, VERDICT_MASK } from '../queue/layout';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, MALFORMED_NAMES, type PacketView } from '../packet/view';
import { acceptAll, loadRuleFile } from '../pipeline/load-rules';
import { parseArgs } from 'node:util';
import { loadAddon } from '../queue/addon';
import { wallClock } from '../rules/wallclock';

const USAGE = `usage: nfqwall replay [--rules FILE] [--hook INPUT|FORWARD|OUTPUT] [--set NAME=VALUE]... [--table] [--expect] [--json] [--quiet] CAPTURE

Runs a capture (pcap or pcapng; Ethernet, raw IP, Linux cooked) through the tracker
and the rules and prints, per packet: number, hook, tuple, TCP flags, ctstate,
protocol state, verdict. Without --rules every packet is accepted (tracking only).
  --hook H        the hook the packets are treated as queued from (default FORWARD)
  --set N=V       a tunable (as nfqwall run --set), e.g. net.netfilter.nf_conntrack_tcp_loose=0
  --table         print the connection table at the end, in conntrack -L format
  --expect        print the expectation table at the end, in conntrack -L expect format
  --json          one JSON object per packet instead of text
  --quiet         no per-packet lines (with --table: only the table)`;

const HOOKS: Record<string, number> = { PREROUTING: 0, INPUT: 1, FORWARD: 2, OUTPUT: 3, POSTROUTING: 4 };

export function ctstateName(bit: number): string {
  switch (bit) {
    case CTSTATE_NEW:
      return 'NEW';
    case CTSTATE_ESTABLISHED:
      return 'ESTABLISHED';
    case CTSTATE_RELATED:
      return 'RELATED';
    case CTSTATE_UNTRACKED:
      return 'UNTRACKED';
    case CTSTATE_INVALID:
    default:
      return 'INVALID';
  }
}

const TCP_FLAG_LETTERS = 'FSRPAUEC';
function tcpFlags(f: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) if (f & (1 << i)) s += TCP_FLAG_LETTERS[i];
  return s || '.';
}

function protoName(p: number): string {
  switch (p) {
    case IPPROTO_TCP:
      return 'tcp';
    case IPPROTO_UDP:
      return 'udp';
    case IPPROTO_ICMP:
      return 'icmp';
    case IPPROTO_ICMPV6:
      return 'icmpv6';
    default:
      return `proto-${p}`;
  }
}

function endpoints(v: PacketView): string {
  const fam = v.ipVersion === 6 ? 6 : 4;
  const s = addrToString(fam, v.src);
  const d = addrToString(fam, v.dst);
  if (v.proto === IPPROTO_TCP || v.proto === IPPROTO_UDP) {
    return fam === 6 ? `[${s}]:${v.sport} > [${d}]:${v.dport}` : `${s}:${v.sport} > ${d}:${v.dport}`;
  }
  if (v.proto === IPPROTO_ICMP || v.proto === IPPROTO_ICMPV6) return `${s} > ${d} type=${v.icmpType} code=${v.icmpCode} id=${v.icmpId}`;
  return `${s} > ${d}`;
}

export async function main(argv: string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        rules: { type: 'string' },
        hook: { type: 'string', default: 'FORWARD' },
        set: { type: 'string', multiple: true, default: [] },
        table: { type: 'boolean', default: false },
        expect: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`nfqwall replay: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`nfqwall replay: expected one capture file\n${USAGE}\n`);
    return 2;
  }
  const hookName = values.hook!.toUpperCase();
  const hook = HOOKS[hookName];
  if (hook === undefined || hook === 0 || hook === 4) {
    process.stderr.write(`nfqwall replay: --hook must be INPUT, FORWARD or OUTPUT\n`);
    return 2;
  }
  const tun = defaultTunables();
  for (const s of values.set!) {
    const err = applySetting(tun, s);
    if (err) {
      process.stderr.write(`nfqwall replay: --set ${s}: ${err}\n`);
      return 2;
    }
  }
  let rules: RuleEvaluator = acceptAll;
  const rulesFile = values.rules;
  if (rulesFile) {
    const loaded = loadRuleFile(rulesFile, { log: (line) => process.stderr.write(line + '\n') });
    if (loaded.errors.length > 0) {
      for (const e of loaded.errors) process.stderr.write(e + '\n');
      return 1;
    }
    rules = loaded.rules!;
  }

  const file = positionals[0];
  // streamed: one packet at a time through a window of the file, so a capture of any size
  // replays in bounded memory
  let cap: PcapReader;
  try {
    cap = openCapture(file);
  } catch (err) {
    process.stderr.write(`nfqwall replay: ${(err as Error).message}\n`);
    return 1;
  }
  const fw = new Firewall({ tun, rules, log: { warn: (m) => process.stderr.write(m + '\n'), info: () => {}, debug: () => {} } });
  const json = values.json!;
  const quiet = values.quiet!;
  const out: string[] = [];
  const flush = () => {
    if (out.length) process.stdout.write(out.join('\n') + '\n');
    out.length = 0;
  };
  let now = 0;
  let n = 0;
  // the capture's time stamps are wall-clock ms: -m time decides on them (the kernel's timezone as now)
  wallClock.set(0, wallClock.wantTz ? loadAddon().kernelTimezone() : 0);
  let capError: PcapError | null = null;
  const packets = cap.packets();
  for (;;) {
    let next: IteratorResult<PcapPacket>;
    try {
      next = packets.next();
    } catch (err) {
      capError = err instanceof PcapError ? err : new PcapError(file, 0, String((err as Error)?.message ?? err));
      break;
    }
    if (next.done) break;
    const p = next.value;
    n++;
    // monotonic time from the capture; a capture that goes back in time does not rewind the tracker
    if (p.tsMs > now) now = p.tsMs;
    const verdict = fw.decide(p.data, 0, p.data.length, p.origLen, hook, p.family, 0, 0, 0, 0, now);
    if (quiet) continue;
    const ctx = fw.ctx;
    const v = ctx.view;
    const state = ctstateName(ctx.ctstate);
    const e = ctx.entry;
    const protoState = e >= 0 && v.proto === IPPROTO_TCP ? fw.ct.tracker(IPPROTO_TCP).stateName(e) : '';
    const verdictName = (verdict & VERDICT_MASK) === NF_ACCEPT ? 'ACCEPT' : 'DROP';
    if (json) {
      const isIcmp = v.proto === IPPROTO_ICMP || v.proto === IPPROTO_ICMPV6;
      out.push(
        JSON.stringify({
          n,
          ts: p.tsMs,
          hook: HOOK_NAMES[hook],
          family: v.ipVersion,
          proto: v.proto,
          src: addrToString(v.ipVersion === 6 ? 6 : 4, v.src),
          dst: addrToString(v.ipVersion === 6 ? 6 : 4, v.dst),
          sport: v.sport,
          dport: v.dport,
          tcpFlags: v.proto === IPPROTO_TCP ? tcpFlags(v.tcpFlags) : undefined,
          icmpType: isIcmp ? v.icmpType : undefined,
          icmpCode: isIcmp ? v.icmpCode : undefined,
          ctstate: state,
          ctinfo: ctx.ctinfo,
          tcpState: protoState || undefined,
          malformed: v.malformed ? MALFORMED_NAMES[v.malformed] : undefined,
          verdict: verdictName,
        }),
      );
    } else {
      const flags = v.proto === IPPROTO_TCP ? ` [${tcpFlags(v.tcpFlags)}]` : '';
      const bad = v.malformed ? ` malformed=${MALFORMED_NAMES[v.malformed]}` : '';
      out.push(`${n} ${HOOK_NAMES[hook]} ${protoName(v.proto)} ${endpoints(v)}${flags} ${state}${protoState ? ' ' + protoState : ''}${bad} ${verdictName}`);
    }
    if (out.length >= 1024) flush();
  }
  flush();
  if (values.table) {
    let count = 0;
    fw.ct.forEach((e) => {
      out.push(formatConntrack(fw.ct, e, now));
      count++;
    }, now);
    flush();
    process.stderr.write(summary.shown(count) + '\n');
  }
  if (values.expect) {
    let count = 0;
    fw.ct.expectations.forEach((x) => {
      out.push(formatExpect(fw.ct, x, now));
      count++;
    });
    flush();
    process.stderr.write(summary.expectShown(count) + '\n');
  }
  cap.close();
  if (capError) {
    process.stderr.write(`nfqwall replay: ${capError.message} (${n} packets before it were replayed)\n`);
    return 1;
  }
  return 0;
}
