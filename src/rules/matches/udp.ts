/** -m udp: libxt_udp.c options, xt_tcpudp.c udp_mt semantics. */
import type { CompiledMatch, MatchModule, MatchRuntime } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { createPorts, l4HeaderReadable, parsePortOption, PORT_OPTIONS, PortRanges, savePortOptions, type PortsState } from './util';

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
  private readonly ports: PortRanges;
  constructor(
    s: UdpState,
    private readonly rt: MatchRuntime,
  ) {
    this.ports = new PortRanges(s);
  }
  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    if (v.fragOffset !== 0) return false;
    if (!l4HeaderReadable(v)) {
      this.rt.hotdrop = 1;
      return false;
    }
    return this.ports.match(v.sport, v.dport);
  }
}
