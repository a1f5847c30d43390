/**
 * -m mac: libxt_mac.c (--mac-source XX:XX:XX:XX:XX:XX, `!`) and xt_mac.c mac_mt: the Ethernet
 * source address of a received packet, which the queue reports as NFQA_HWADDR (the input
 * device's dev_parse_header). No address (a locally generated packet, a device without an
 * Ethernet header) never matches, negated or not.
 */
import type { CompiledMatch, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { PKTF_HWADDR } from '../../queue/layout';

export interface MacState {
  addr: number[] | null;
  inv: boolean;
}

export const macMatch: MatchModule<MacState> = {
  name: 'mac',
  options: [{ name: 'mac-source', invertible: true, args: 1 }],
  create: () => ({ addr: null, inv: false }),
  parse(s, _opt, args, inv, optTok, env) {
    if (s.addr) return env.error(optTok, '--mac-source given twice');
    const t = args[0].text;
    if (!/^[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}$/i.test(t)) return env.error(args[0], `Bad mac address "${t}"`);
    s.addr = t.split(':').map((x) => parseInt(x, 16));
    s.inv = inv;
  },
  finalize(s, rule, at, env) {
    if (!s.addr) return env.error(at, 'mac match needs --mac-source');
    if (rule.chain === 'OUTPUT' || rule.chain === 'POSTROUTING')
      env.error(at, `mac match is only valid in PREROUTING, INPUT and FORWARD (the kernel refuses it in ${rule.chain})`);
  },
  familyOf: () => 0,
  save(s) {
    return [...(s.inv ? ['!'] : []), '--mac-source', s.addr!.map((b) => b.toString(16).padStart(2, '0')).join(':')];
  },
  compile(s) {
    const a = s.addr!;
    return new MacMatch(((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0, (a[4] << 8) | a[5], s.inv);
  },
};

class MacMatch implements CompiledMatch {
  constructor(
    private readonly hi: number,
    private readonly lo: number,
    private readonly inv: boolean,
  ) {}
  match(ctx: PacketContext): boolean {
    if ((ctx.pktFlags & PKTF_HWADDR) === 0) return false;
    return (ctx.hwaddrHi >>> 0 === this.hi && ctx.hwaddrLo === this.lo) !== this.inv;
  }
}
