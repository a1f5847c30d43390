/** -m udp: libxt_udp.c options, xt_tcpudp.c udp_mt semantics. */
import type { CompiledMatch, MatchModule, MatchRuntime } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { createPorts, l4HeaderReadable, parsePortOption, PORT_OPTIONS, savePortOptions, type PortsState } from './util';

export type UdpState = PortsState;

export const udpMatch: MatchModule<UdpState> = {
  name: 'udp',
  proto: 17,
  options: PORT_OPTIONS,
  create: createPorts,
  parse(s, opt, args, inv, optTok, env) {
    parsePortOption(s, opt, args[0], inv, optTok, env, '');
  },
  finalize() {},
  familyOf: () => 0,
  save: savePortOptions,
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
