/** -m udp: libxt_udp.c options, xt_tcpudp.c udp_mt semantics. */
import type { CompiledMatch, MatchModule, MatchRuntime } from '../types';
import type { PacketContext } from '../../pipeline/context';
import { formatPortRange, l4HeaderReadable, parsePortRange } from './util';

export interface UdpState {
  sport: [number, number] | null;
  sportInv: boolean;
  dport: [number, number] | null;
  dportInv: boolean;
}

export const udpMatch: MatchModule<UdpState> = {
  name: 'udp',
  proto: 17,
  options: [
    { name: 'sport', invertible: true, args: 1 },
    { name: 'source-port', invertible: true, args: 1 },
    { name: 'dport', invertible: true, args: 1 },
    { name: 'destination-port', invertible: true, args: 1 },
  ],
  create: () => ({ sport: null, sportInv: false, dport: null, dportInv: false }),
  parse(s, opt, args, inv, optTok, env) {
    if (opt === 'sport' || opt === 'source-port') {
      if (s.sport) return env.error(optTok, '--sport given twice');
      s.sport = parsePortRange(args[0], args[0].text, env);
      s.sportInv = inv;
    } else {
      if (s.dport) return env.error(optTok, '--dport given twice');
      s.dport = parsePortRange(args[0], args[0].text, env);
      s.dportInv = inv;
    }
  },
  finalize() {},
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.sport) out.push(...(s.sportInv ? ['!'] : []), '--sport', formatPortRange(s.sport));
    if (s.dport) out.push(...(s.dportInv ? ['!'] : []), '--dport', formatPortRange(s.dport));
    return out;
  },
  compile(s, env) {
    return new UdpMatch(s, env.runtime);
  },
};

class UdpMatch implements CompiledMatch {
  private readonly sLo: number;
  private readonly sHi: number;
  private readonly sInv: boolean;
  private readonly dLo: number;
  private readonly dHi: number;
  private readonly dInv: boolean;
  constructor(
    s: UdpState,
    private readonly rt: MatchRuntime,
  ) {
    this.sLo = s.sport ? s.sport[0] : 0;
    this.sHi = s.sport ? s.sport[1] : 65535;
    this.sInv = s.sportInv;
    this.dLo = s.dport ? s.dport[0] : 0;
    this.dHi = s.dport ? s.dport[1] : 65535;
    this.dInv = s.dportInv;
  }
  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    if (v.fragOffset !== 0) return false;
    if (!l4HeaderReadable(v)) {
      this.rt.hotdrop = 1;
      return false;
    }
    if ((v.sport >= this.sLo && v.sport <= this.sHi) === this.sInv) return false;
    if ((v.dport >= this.dLo && v.dport <= this.dHi) === this.dInv) return false;
    return true;
  }
}
