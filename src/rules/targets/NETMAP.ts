/**
 * -j NETMAP --to ADDR[/PREFIX] (libxt_NETMAP.c, xt_NETMAP.c): the address's host part kept,
 * its network part replaced — the destination in nat PREROUTING and OUTPUT, the source in
 * POSTROUTING and INPUT; the prefix as the saved form shows it (the network address).
 */
import { NatRange, NF_NAT_RANGE_MAP_IPS } from '../../conntrack/nat';
import type { PacketContext } from '../../conntrack/context';
import { NF_ACCEPT, NF_DROP } from '../../queue/layout';
import { formatAddr, parseIp4, parseIp6, prefixMask } from '../addr';
import { hookManip } from '../nat-action';
import { NAT_MANIP_SRC } from '../../conntrack/nat';
import type { CompiledTarget, Family, TargetModule } from '../types';

export interface NetmapState {
  family: Family;
  addr: number[];
  prefix: number;
  set: boolean;
}

export const netmapTarget: TargetModule<NetmapState> = {
  name: 'NETMAP',
  tables: ['nat'],
  hooks: ['PREROUTING', 'POSTROUTING', 'OUTPUT', 'INPUT'],
  options: [{ name: 'to', invertible: false, args: 1 }],
  create: () => ({ family: 0, addr: [0, 0, 0, 0], prefix: 0, set: false }),
  parse(s, _opt, args, _inv, optTok, env) {
    if (s.set) return env.error(optTok, 'NETMAP: option "--to" can only be used once.');
    const text = args[0].text;
    const slash = text.indexOf('/');
    const a = slash < 0 ? text : text.slice(0, slash);
    const fam: 4 | 6 = a.includes(':') ? 6 : 4;
    const words = fam === 4 ? (parseIp4(a) >= 0 ? [parseIp4(a), 0, 0, 0] : null) : parseIp6(a);
    if (!words) return env.error(args[0], `Bad IP address "${a}"`);
    const max = fam === 4 ? 32 : 128;
    const p = slash < 0 ? max : /^[0-9]+$/.test(text.slice(slash + 1)) ? Number(text.slice(slash + 1)) : -1;
    if (p < 0 || p > max) return env.error(args[0], `bad prefix length "${text.slice(slash + 1)}" (0..${max})`);
    const m = prefixMask(fam, p);
    s.family = fam;
    s.addr = words.map((w, i) => (w & m[i]) >>> 0);
    s.prefix = p;
    s.set = true;
  },
  finalize(s, _rule, at, env) {
    if (!s.set) env.error(at, 'NETMAP: option "--to" must be specified');
  },
  familyOf: (s) => s.family,
  save: (s) => ['--to', `${formatAddr(s.family === 6 ? 6 : 4, s.addr)}/${s.prefix}`],
  compile(s) {
    const fam = s.family === 6 ? 6 : 4;
    return new NetmapAction(Uint32Array.from(s.addr), Uint32Array.from(prefixMask(fam, s.prefix).map((w) => w >>> 0)));
  },
};

class NetmapAction implements CompiledTarget {
  private readonly range = new NatRange();
  constructor(
    private readonly net: Uint32Array,
    private readonly mask: Uint32Array,
  ) {}

  run(ctx: PacketContext, now: number): number {
    const conn = ctx.conn;
    const e = ctx.entry;
    if (e < 0 || conn === null) return NF_ACCEPT;
    const manip = hookManip(ctx.natHook);
    const from = manip === NAT_MANIP_SRC ? ctx.view.src : ctx.view.dst;
    const r = this.range;
    r.flags = NF_NAT_RANGE_MAP_IPS;
    for (let i = 0; i < 4; i++) r.minAddr[i] = r.maxAddr[i] = ((from[i] & ~this.mask[i]) | (this.net[i] & this.mask[i])) >>> 0;
    return conn.natSetup(e, r, manip, now) ? NF_ACCEPT : NF_DROP;
  }
}
