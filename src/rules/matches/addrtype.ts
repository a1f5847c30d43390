/**
 * -m addrtype: libxt_addrtype.c revision 1 (--src-type / --dst-type TYPE[,TYPE…], each
 * invertible; --limit-iface-in / --limit-iface-out) and xt_addrtype.c addrtype_mt_v1, on the
 * gateway's local routing table (src/rules/local-routes.ts, kept current from rtnetlink).
 *
 * Supported types: UNICAST, LOCAL, BROADCAST, MULTICAST (IPv6: UNSPEC, UNICAST, LOCAL,
 * MULTICAST). The others (BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT, XRESOLVE, ANYCAST, and
 * IPv4 UNSPEC) are answered by the kernel from its full route lookup, which nfqwall does not
 * mirror: they are refused. UNICAST is "no local, broadcast or multicast route", which is what
 * the kernel answers unless the main table holds blackhole/unreachable/prohibit/throw routes.
 */
import type { CompiledMatch, Family, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { activeLocalRoutes, localRoutes, RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST, RTN_UNICAST, type LocalRoutes } from '../local-routes';

/** XT_ADDRTYPE_* bit order (1 << RTN_*), as libxt_addrtype prints them */
const NAMES = ['UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE'];
const UNSPEC = 1 << 0;
const UNICAST = 1 << RTN_UNICAST;
const LOCAL = 1 << RTN_LOCAL;
const BROADCAST = 1 << RTN_BROADCAST;
const MULTICAST = 1 << RTN_MULTICAST;
const SUPPORTED = UNSPEC | UNICAST | LOCAL | BROADCAST | MULTICAST;

export interface AddrtypeState {
  src: number;
  srcInv: boolean;
  dst: number;
  dstInv: boolean;
  limitIn: boolean;
  limitOut: boolean;
}

export const addrtypeMatch: MatchModule<AddrtypeState> = {
  name: 'addrtype',
  options: [
    { name: 'src-type', invertible: true, args: 1 },
    { name: 'dst-type', invertible: true, args: 1 },
    { name: 'limit-iface-in', invertible: false, args: 0 },
    { name: 'limit-iface-out', invertible: false, args: 0 },
  ],
  create: () => ({ src: 0, srcInv: false, dst: 0, dstInv: false, limitIn: false, limitOut: false }),
  parse(s, opt, args, inv, optTok, env) {
    if (opt === 'limit-iface-in' || opt === 'limit-iface-out') {
      if (opt === 'limit-iface-in') s.limitIn = true;
      else s.limitOut = true;
      if (s.limitIn && s.limitOut) env.error(optTok, 'addrtype: you can\'t specify both "--limit-iface-in" and "--limit-iface-out"');
      return;
    }
    const isSrc = opt === 'src-type';
    if (isSrc ? s.src : s.dst) return env.error(optTok, `option "--${opt}" can only be used once`);
    let mask = 0;
    for (const name of args[0].text.split(',')) {
      const bit = NAMES.indexOf(name.toUpperCase());
      if (bit < 0) return env.error(args[0], `addrtype: bad type "${name}" (one of ${NAMES.join(', ')})`);
      if (((1 << bit) & SUPPORTED) === 0)
        return env.error(
          args[0],
          `addrtype: type ${NAMES[bit]} is not supported: the kernel answers it from its full route lookup, which nfqwall does not mirror`,
        );
      mask |= 1 << bit;
    }
    if (isSrc) [s.src, s.srcInv] = [mask, inv];
    else [s.dst, s.dstInv] = [mask, inv];
  },
  finalize(s, rule, at, env) {
    if (!s.src && !s.dst) return env.error(at, 'addrtype match needs --src-type or --dst-type');
    // addrtype_mt_checkentry_v1
    if (s.limitIn && (rule.chain === 'OUTPUT' || rule.chain === 'POSTROUTING'))
      return env.error(at, `addrtype: --limit-iface-in is only valid in PREROUTING, INPUT and FORWARD (not ${rule.chain})`);
    if (s.limitOut && (rule.chain === 'PREROUTING' || rule.chain === 'INPUT'))
      return env.error(at, `addrtype: --limit-iface-out is only valid in OUTPUT, FORWARD and POSTROUTING (not ${rule.chain})`);
    // (the type is dropped after its error so that familyOf adds no family conflict to it)
    if ((s.src | s.dst) & UNSPEC && (rule.family === 4 || (s.src | s.dst) & BROADCAST)) {
      env.error(at, 'addrtype: type UNSPEC is not supported for IPv4: the kernel answers it from its full route lookup, which nfqwall does not mirror');
      [s.src, s.dst] = [s.src & ~UNSPEC, s.dst & ~UNSPEC];
    } else if (rule.family === 6 && (s.src | s.dst) & BROADCAST) {
      env.error(at, 'addrtype: ipv6 does not support BROADCAST matching');
      [s.src, s.dst] = [s.src & ~BROADCAST, s.dst & ~BROADCAST];
    }
  },
  // ip6tables refuses BROADCAST and nfqwall refuses IPv4 UNSPEC: such a rule exists in one family only
  familyOf(s): Family {
    const m = s.src | s.dst;
    return m & BROADCAST ? 4 : m & UNSPEC ? 6 : 0;
  },
  save(s) {
    const types = (m: number) => NAMES.filter((_, i) => m & (1 << i)).join(',');
    const out: string[] = [];
    if (s.src) out.push(...(s.srcInv ? ['!'] : []), '--src-type', types(s.src));
    if (s.dst) out.push(...(s.dstInv ? ['!'] : []), '--dst-type', types(s.dst));
    if (s.limitIn) out.push('--limit-iface-in');
    if (s.limitOut) out.push('--limit-iface-out');
    return out;
  },
  compile(s) {
    return new AddrtypeMatch(s, localRoutes());
  },
  inService(uses, env) {
    if (uses.length === 0) return;
    try {
      activeLocalRoutes();
    } catch (e) {
      env.error(uses[0].at, `addrtype: cannot read the local routing table (ip route show table local): ${(e as Error).message}`);
    }
  },
};

/** ipv6_addr_type() classes addrtype looks at */
function v6Class(a: ArrayLike<number>): number {
  const st = a[0] >>> 0;
  if ((st & 0xe0000000) >>> 0 !== 0 && (st & 0xe0000000) >>> 0 !== 0xe0000000) return UNICAST;
  if (st >>> 24 === 0xff) return MULTICAST;
  if ((st & 0xffc00000) >>> 0 === 0xfe800000 || (st & 0xffc00000) >>> 0 === 0xfec00000 || (st & 0xfe000000) >>> 0 === 0xfc000000) return UNICAST;
  if ((a[0] | a[1]) === 0) {
    if (a[2] === 0) return a[3] === 0 ? UNSPEC : UNICAST; // any / loopback and v4-compatible
    if (a[2] >>> 0 === 0xffff) return 0; // v4-mapped: neither
  }
  return UNICAST;
}

class AddrtypeMatch implements CompiledMatch {
  private readonly src: number;
  private readonly dst: number;
  private readonly srcInv: boolean;
  private readonly dstInv: boolean;
  private readonly limitIn: boolean;
  private readonly limitOut: boolean;
  constructor(
    s: AddrtypeState,
    private readonly routes: LocalRoutes,
  ) {
    [this.src, this.dst, this.srcInv, this.dstInv, this.limitIn, this.limitOut] = [s.src, s.dst, s.srcInv, s.dstInv, s.limitIn, s.limitOut];
  }

  private type4(addr: number, mask: number, dev: number): boolean {
    return ((1 << this.routes.type4(addr, dev)) & mask) !== 0;
  }

  /** match_type6: every class the mask names must hold, then the LOCAL lookup when asked */
  private type6(addr: Uint32Array, mask: number, dev: number): boolean {
    const cls = v6Class(addr);
    if (mask & MULTICAST && cls !== MULTICAST) return false;
    if (mask & UNICAST && cls !== UNICAST) return false;
    if (mask & UNSPEC && cls !== UNSPEC) return false;
    if (mask & LOCAL) return this.routes.local6(addr, dev);
    return true;
  }

  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    const dev = this.limitIn ? ctx.indev : this.limitOut ? ctx.outdev : 0;
    const v6 = ctx.family === 6;
    if (this.src) {
      const r = v6 ? this.type6(v.src, this.src, dev) : this.type4(v.src[0], this.src, dev);
      if (r === this.srcInv) return false;
    }
    if (this.dst) {
      const r = v6 ? this.type6(v.dst, this.dst, dev) : this.type4(v.dst[0], this.dst, dev);
      if (r === this.dstInv) return false;
    }
    return true;
  }
}
