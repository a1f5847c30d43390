/**
 * -m connlimit: libxt_connlimit.c (--connlimit-upto N / --connlimit-above N, --connlimit-mask
 * PREFIX, --connlimit-saddr / --connlimit-daddr) and xt_connlimit.c over nf_conncount.c,
 * counting in nfqwall's own connection table. Per rule, per masked address of the packet (its
 * source, or destination with --connlimit-daddr), the connections seen by the rule: each packet
 * adds its own connection once, and the walk drops connections that are gone from the table
 * or are TCP in TIME_WAIT or CLOSE (already_closed), at most 8 per walk (CONNCOUNT_GC_MAX_NODES).
 * The kernel also keeps, for the jiffy it was added in, a connection not yet confirmed; nfqwall
 * drops one that the rules refused at once (the entry is gone when the walk looks).
 */
import type { CompiledMatch, Family, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { prefixMask } from '../addr';

const CONNCOUNT_GC_MAX_NODES = 8;

export interface ConnlimitState {
  limit: number;
  above: boolean;
  set: boolean;
  prefix: number;
  daddr: boolean;
}

export const connlimitMatch: MatchModule<ConnlimitState> = {
  name: 'connlimit',
  options: [
    { name: 'connlimit-upto', invertible: false, args: 1 },
    { name: 'connlimit-above', invertible: true, args: 1 },
    { name: 'connlimit-mask', invertible: false, args: 1 },
    { name: 'connlimit-saddr', invertible: false, args: 0 },
    { name: 'connlimit-daddr', invertible: false, args: 0 },
  ],
  create: () => ({ limit: 0, above: true, set: false, prefix: -1, daddr: false }),
  parse(s, opt, args, inv, optTok, env) {
    const a = args[0];
    switch (opt) {
      case 'connlimit-upto':
      case 'connlimit-above': {
        if (s.set) return env.error(optTok, '"--connlimit-upto" and "--connlimit-above" can be given once, one of them');
        if (!/^[0-9]+$/.test(a.text) || Number(a.text) > 0xffffffff) return env.error(a, `bad value for option "--${opt}", or out of range (0-4294967295)`);
        s.limit = Number(a.text);
        // ! --connlimit-above N is --connlimit-upto N (XT_CONNLIMIT_INVERT)
        s.above = (opt === 'connlimit-above') !== inv;
        s.set = true;
        return;
      }
      case 'connlimit-mask':
        if (!/^[0-9]+$/.test(a.text) || Number(a.text) > 128) return env.error(a, `bad value for option "--connlimit-mask", or out of range (0-128)`);
        s.prefix = Number(a.text);
        return;
      default:
        s.daddr = opt === 'connlimit-daddr';
    }
  },
  finalize(s, rule, at, env) {
    if (!s.set) return env.error(at, 'connlimit match needs "--connlimit-upto" or "--connlimit-above"');
    if (s.prefix > 32 && rule.family === 4) env.error(at, `connlimit: --connlimit-mask ${s.prefix} is too long for IPv4 (0-32)`);
  },
  // a mask longer than 32 exists only for IPv6
  familyOf: (s): Family => (s.prefix > 32 ? 6 : 0),
  save(s, family) {
    const out = [s.above ? '--connlimit-above' : '--connlimit-upto', String(s.limit)];
    // iptables-save prints the mask in the table's family (32 / 128 when none was given)
    const prefix = s.prefix >= 0 ? s.prefix : family === 4 ? 32 : family === 6 ? 128 : -1;
    if (prefix >= 0) out.push('--connlimit-mask', String(prefix));
    out.push(s.daddr ? '--connlimit-daddr' : '--connlimit-saddr');
    return out;
  },
  compile(s) {
    return new ConnlimitMatch(s);
  },
};

function hashKey(fam: number, a: ArrayLike<number>): number {
  let h = Math.imul(fam, 0x27d4eb2f);
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ (a[i] | 0), 0x9e3779b1) ^ (h >>> 15);
  return h;
}

class ConnlimitMatch implements CompiledMatch {
  private readonly limit: number;
  private readonly above: boolean;
  private readonly daddr: boolean;
  private readonly mask4: number;
  private readonly mask6 = new Uint32Array(4);
  private readonly key = new Uint32Array(4);
  // keys: open addressing
  private kcap = 64;
  private nkeys = 0;
  private kFam = new Uint8Array(64);
  private kAddr = new Uint32Array(64 * 4);
  private kHead = new Int32Array(64);
  private kCount = new Int32Array(64);
  // connections: singly linked lists per key
  private ccap = 64;
  private cEnt = new Int32Array(64);
  private cGen = new Uint32Array(64);
  private cNext = new Int32Array(64);
  private cFree = -1;
  private cHigh = 0;

  constructor(s: ConnlimitState) {
    this.limit = s.limit;
    this.above = s.above;
    this.daddr = s.daddr;
    this.mask4 = prefixMask(4, s.prefix < 0 || s.prefix > 32 ? 32 : s.prefix)[0] >>> 0;
    this.mask6.set(prefixMask(6, s.prefix < 0 ? 128 : s.prefix));
  }

  private slot(fam: number, a: Uint32Array): number {
    const m = this.kcap - 1;
    for (let i = hashKey(fam, a) & m; ; i = (i + 1) & m) {
      if (this.kFam[i] === 0) return i;
      if (
        this.kFam[i] === fam &&
        this.kAddr[i * 4] === a[0] &&
        this.kAddr[i * 4 + 1] === a[1] &&
        this.kAddr[i * 4 + 2] === a[2] &&
        this.kAddr[i * 4 + 3] === a[3]
      )
        return i;
    }
  }

  /** Keys at 3/4: rebuilt without the empty ones, doubled when still over half full (rare; allocates). */
  private rehash(): void {
    const [fam, addr, head, count, cap] = [this.kFam, this.kAddr, this.kHead, this.kCount, this.kcap];
    let live = 0;
    for (let i = 0; i < cap; i++) if (fam[i] !== 0 && count[i] > 0) live++;
    const ncap = live * 2 >= cap ? cap * 2 : cap;
    this.kcap = ncap;
    this.kFam = new Uint8Array(ncap);
    this.kAddr = new Uint32Array(ncap * 4);
    this.kHead = new Int32Array(ncap);
    this.kCount = new Int32Array(ncap);
    this.nkeys = 0;
    const k = new Uint32Array(4);
    for (let i = 0; i < cap; i++) {
      if (fam[i] === 0) continue;
      if (count[i] === 0) continue;
      k.set(addr.subarray(i * 4, i * 4 + 4));
      const j = this.slot(fam[i], k);
      this.kFam[j] = fam[i];
      this.kAddr.set(k, j * 4);
      this.kHead[j] = head[i];
      this.kCount[j] = count[i];
      this.nkeys++;
    }
  }

  private allocConn(): number {
    if (this.cFree >= 0) {
      const c = this.cFree;
      this.cFree = this.cNext[c];
      return c;
    }
    if (this.cHigh === this.ccap) {
      const n = this.ccap * 2;
      const grow = <T extends Int32Array | Uint32Array>(a: T, make: (n: number) => T): T => {
        const b = make(n);
        b.set(a);
        return b;
      };
      this.cEnt = grow(this.cEnt, (x) => new Int32Array(x));
      this.cGen = grow(this.cGen, (x) => new Uint32Array(x));
      this.cNext = grow(this.cNext, (x) => new Int32Array(x));
      this.ccap = n;
    }
    return this.cHigh++;
  }

  /** nf_conncount_count: the connections of the packet's key, its own added once. */
  private count(ctx: PacketContext): number {
    const v = ctx.view;
    const a = this.daddr ? v.dst : v.src;
    const key = this.key;
    const fam = ctx.family;
    if (fam === 4) {
      key[0] = (a[0] & this.mask4) >>> 0;
      key[1] = key[2] = key[3] = 0;
    } else for (let i = 0; i < 4; i++) key[i] = (a[i] & this.mask6[i]) >>> 0;
    let k = this.slot(fam, key);
    if (this.kFam[k] === 0) {
      if ((this.nkeys + 1) * 4 > this.kcap * 3) {
        this.rehash();
        k = this.slot(fam, key);
      }
      this.kFam[k] = fam;
      this.kAddr.set(key, k * 4);
      this.kHead[k] = -1;
      this.kCount[k] = 0;
      this.nkeys++;
    }
    const self = ctx.entry;
    const ct = ctx.conntrack;
    let collect = 0;
    let prev = -1;
    for (let c = this.kHead[k]; c >= 0 && collect <= CONNCOUNT_GC_MAX_NODES;) {
      const next = this.cNext[c];
      const e = this.cEnt[c];
      const alive = ct !== null && ct.table.isAlloc(e) && ct.table.gen[e] === this.cGen[c];
      if (alive && e === self) return this.kCount[k]; // already counted
      if (!alive || (ct!.proto(e) === 6 && isClosed(ct!.tracker(6).stateName(e)))) {
        if (prev < 0) this.kHead[k] = next;
        else this.cNext[prev] = next;
        this.cNext[c] = this.cFree;
        this.cFree = c;
        this.kCount[k]--;
        collect++;
      } else prev = c;
      c = next;
    }
    // without an entry (untracked, invalid) the kernel counts the packet's tuple for a jiffy
    if (self < 0 || ct === null) return this.kCount[k] + 1;
    const c = this.allocConn();
    this.cEnt[c] = self;
    this.cGen[c] = ct.table.gen[self];
    this.cNext[c] = this.kHead[k];
    this.kHead[k] = c;
    return ++this.kCount[k];
  }

  match(ctx: PacketContext): boolean {
    return this.count(ctx) > this.limit === this.above;
  }
}

function isClosed(state: string): boolean {
  return state === 'TIME_WAIT' || state === 'CLOSE';
}
