/** -m tcp: libxt_tcp.c options, xt_tcpudp.c tcp_mt semantics. */
import type { CompiledMatch, MatchModule, MatchRuntime, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { createPorts, l4HeaderReadable, parsePortOption, PORT_OPTIONS, PortRanges, savePortOptions, splitList, type PortsState } from './util';

export const TCP_FLAG_NAMES: readonly [string, number][] = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ALL', 0x3f],
  ['NONE', 0],
];

export interface TcpState extends PortsState {
  /** --tcp-flags MASK COMP (--syn is SYN of FIN,SYN,RST,ACK) */
  flagMask: number;
  flagCmp: number;
  flagsSet: boolean;
  flagsInv: boolean;
  option: number;
  optionInv: boolean;
}

function parseFlags(tok: Token, s: string, env: ParseEnv): number {
  const parts = splitList(tok, s, env, 'TCP flag');
  if (!parts) return -1;
  let v = 0;
  for (const p of parts) {
    const f = TCP_FLAG_NAMES.find(([n]) => n === p.toUpperCase());
    if (!f) {
      env.error(tok, `unknown TCP flag "${p}"`);
      return -1;
    }
    v |= f[1];
  }
  return v;
}

export function formatTcpFlags(flags: number): string {
  if (flags === 0) return 'NONE';
  const out: string[] = [];
  for (const [name, bit] of TCP_FLAG_NAMES.slice(0, 6)) if (flags & bit) out.push(name);
  return out.join(',');
}

function dup(tok: Token, env: ParseEnv, what: string): void {
  env.error(tok, `${what} given twice`);
}

export const tcpMatch: MatchModule<TcpState> = {
  name: 'tcp',
  proto: 6,
  options: [
    ...PORT_OPTIONS,
    { name: 'tcp-flags', invertible: true, args: 2 },
    { name: 'syn', invertible: true, args: 0 },
    { name: 'tcp-option', invertible: true, args: 1 },
  ],
  create: () => ({
    ...createPorts(),
    flagMask: 0,
    flagCmp: 0,
    flagsSet: false,
    flagsInv: false,
    option: 0,
    optionInv: false,
  }),
  parse(s, opt, args, inv, optTok, env) {
    if (parsePortOption(s, opt, args[0], inv, optTok, env, 'tcp')) return;
    switch (opt) {
      case 'tcp-flags':
      case 'syn': {
        if (s.flagsSet) return dup(optTok, env, 'TCP flags (--tcp-flags / --syn)');
        if (opt === 'syn') {
          s.flagMask = 0x17; // FIN,SYN,RST,ACK
          s.flagCmp = 0x02;
        } else {
          const m = parseFlags(args[0], args[0].text, env);
          const c = parseFlags(args[1], args[1].text, env);
          if (m < 0 || c < 0) return;
          s.flagMask = m;
          s.flagCmp = c;
        }
        s.flagsSet = true;
        s.flagsInv = inv;
        return;
      }
      case 'tcp-option': {
        const t = args[0].text;
        if (!/^[0-9]+$/.test(t) || Number(t) < 1 || Number(t) > 255) return env.error(args[0], `bad TCP option number "${t}" (1..255)`);
        s.option = Number(t);
        s.optionInv = inv;
        return;
      }
    }
  },
  finalize() {},
  familyOf: () => 0,
  save(s) {
    const out = savePortOptions(s);
    if (s.option) out.push(...(s.optionInv ? ['!'] : []), '--tcp-option', String(s.option));
    if (s.flagsSet) out.push(...(s.flagsInv ? ['!'] : []), '--tcp-flags', formatTcpFlags(s.flagMask), formatTcpFlags(s.flagCmp));
    return out;
  },
  compile(s, env) {
    return new TcpMatch(s, env.runtime);
  },
};

class TcpMatch implements CompiledMatch {
  private readonly ports: PortRanges;
  private readonly fMask: number;
  private readonly fCmp: number;
  private readonly fInv: boolean;
  private readonly opt: number;
  private readonly optInv: boolean;
  constructor(
    s: TcpState,
    private readonly rt: MatchRuntime,
  ) {
    this.ports = new PortRanges(s);
    this.fMask = s.flagsSet ? s.flagMask : 0;
    this.fCmp = s.flagsSet ? s.flagCmp : 0;
    this.fInv = s.flagsInv;
    this.opt = s.option;
    this.optInv = s.optionInv;
  }
  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    if (v.fragOffset !== 0) {
      // Don't allow a fragment of TCP 8 bytes in (tcp_mt).
      if (v.fragOffset === 8) this.rt.hotdrop = 1;
      return false;
    }
    if (!l4HeaderReadable(v)) {
      this.rt.hotdrop = 1;
      return false;
    }
    if (!this.ports.match(v.sport, v.dport)) return false;
    if (((v.tcpFlags & this.fMask) === this.fCmp) === this.fInv) return false;
    if (this.opt !== 0) {
      if (v.tcpHeaderLen < 20) {
        this.rt.hotdrop = 1;
        return false;
      }
      if (findTcpOption(v.buf, v.l4off, v.tcpHeaderLen, v.l4len, this.opt) === this.optInv) return false;
    }
    return true;
  }
}

/** tcp_find_option: walks the option bytes (kind 0 ends, 1 is one byte, else kind,len). */
export function findTcpOption(buf: Uint8Array, l4off: number, hdrLen: number, avail: number, want: number): boolean {
  const end = l4off + Math.min(hdrLen, avail);
  let i = l4off + 20;
  while (i < end) {
    const kind = buf[i];
    if (kind === want) return true;
    if (kind < 2) {
      i++;
      continue;
    }
    if (i + 1 >= end) break;
    const len = buf[i + 1];
    i += len > 1 ? len : 1;
  }
  return false;
}
