/** -m multiport: libxt_multiport.c (revision 1: ranges, `!`), xt_multiport.c ports_match_v1. */
import type { CompiledMatch, MatchModule, MatchRuntime } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { formatPortRange, l4HeaderReadable, parsePortRange, splitList } from './util';

/** XT_MULTI_PORTS: a range counts as two entries. */
export const MULTIPORT_MAX = 15;

/** Protocols xt_multiport accepts (check_proto). */
const MULTIPORT_PROTOS = [6, 17, 136, 132, 33];

export interface MultiportState {
  /** 'src' | 'dst' | 'any' (--ports) */
  flags: 'src' | 'dst' | 'any' | null;
  ports: [number, number][];
  inv: boolean;
}

export const multiportMatch: MatchModule<MultiportState> = {
  name: 'multiport',
  options: [
    { name: 'source-ports', invertible: true, args: 1 },
    { name: 'sports', invertible: true, args: 1 },
    { name: 'destination-ports', invertible: true, args: 1 },
    { name: 'dports', invertible: true, args: 1 },
    { name: 'ports', invertible: true, args: 1 },
  ],
  create: () => ({ flags: null, ports: [], inv: false }),
  parse(s, opt, args, inv, optTok, env) {
    if (s.flags) return env.error(optTok, 'multiport can only have one of --sports, --dports or --ports');
    // libxt_multiport resolves the ports for the rule's -p when it reads the option: -p must come first
    if (env.protoName === '') return env.error(optTok, `${optTok.text} needs "-p tcp", "-p udp", "-p udplite", "-p sctp" or "-p dccp" before it`);
    s.flags = opt === 'source-ports' || opt === 'sports' ? 'src' : opt === 'ports' ? 'any' : 'dst';
    s.inv = inv;
    const list = splitList(args[0], args[0].text, env, 'port');
    if (!list) return;
    let count = 0;
    for (const p of list) {
      const r = parsePortRange(args[0], p, env, env.protoName || 'tcp');
      if (!r) return;
      count += r[0] === r[1] ? 1 : 2;
      s.ports.push(r);
    }
    if (count > MULTIPORT_MAX) env.error(args[0], `too many ports in multiport list (at most ${MULTIPORT_MAX}, a range counts as two)`);
  },
  finalize(s, rule, at, env) {
    if (!s.flags) env.error(at, 'multiport needs one of --sports, --dports or --ports');
    if (rule.proto === 0 || rule.protoInv || !MULTIPORT_PROTOS.includes(rule.proto))
      env.error(at, 'multiport needs "-p tcp", "-p udp", "-p udplite", "-p sctp" or "-p dccp"');
  },
  familyOf: () => 0,
  save(s) {
    const opt = s.flags === 'src' ? '--sports' : s.flags === 'dst' ? '--dports' : '--ports';
    return [...(s.inv ? ['!'] : []), opt, s.ports.map(formatPortRange).join(',')];
  },
  compile(s, env) {
    return new MultiportMatch(s, env.runtime);
  },
};

class MultiportMatch implements CompiledMatch {
  private readonly lo: Uint16Array;
  private readonly hi: Uint16Array;
  private readonly n: number;
  private readonly src: boolean;
  private readonly dst: boolean;
  private readonly inv: boolean;
  constructor(
    s: MultiportState,
    private readonly rt: MatchRuntime,
  ) {
    this.n = s.ports.length;
    this.lo = Uint16Array.from(s.ports.map((p) => p[0]));
    this.hi = Uint16Array.from(s.ports.map((p) => p[1]));
    this.src = s.flags === 'src' || s.flags === 'any';
    this.dst = s.flags === 'dst' || s.flags === 'any';
    this.inv = s.inv;
  }
  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    if (v.fragOffset !== 0) return false;
    if (!l4HeaderReadable(v)) {
      this.rt.hotdrop = 1;
      return false;
    }
    const sp = v.sport;
    const dp = v.dport;
    for (let i = 0; i < this.n; i++) {
      const lo = this.lo[i];
      const hi = this.hi[i];
      if (this.src && sp >= lo && sp <= hi) return !this.inv;
      if (this.dst && dp >= lo && dp <= hi) return !this.inv;
    }
    return this.inv;
  }
}
