/**
 * -m recent: libxt_recent.c (--set / --rcheck / --update / --remove, each invertible;
 * --seconds, --reap, --hitcount, --rttl, --name, --rsource / --rdest, --mask) and xt_recent.c
 * recent_mt revision 1. The lists are in src/rules/recent-lists.ts, shared by every rule
 * that names them and by both families, and editable at run time (`nfqwall recent`).
 */
import type { CompiledMatch, Family, MatchModule } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { NF_INET_FORWARD } from '../../queue/layout';
import { formatAddr, parseIp4, parseIp6 } from '../addr';
import { acquireRecentList, commitRecentLists, nstampMaskFor, XT_RECENT_MAX_NSTAMPS, type RecentList } from '../recent-lists';
import { HZ } from './limit';

const XT_RECENT_NAME_LEN = 200;
const CMDS = ['set', 'rcheck', 'update', 'remove'] as const;
type Cmd = (typeof CMDS)[number];

export interface RecentState {
  cmd: Cmd | null;
  inv: boolean;
  seconds: number;
  reap: boolean;
  hitCount: number;
  rttl: boolean;
  name: string;
  nameSet: boolean;
  dest: boolean;
  /** --mask as written: family and 4 words (the words after an IPv4 mask all ones, as libxt_recent leaves them) */
  maskFamily: Family;
  mask: number[];
}

function positiveU32(s: string, min: number): number {
  if (!/^[0-9]+$/.test(s)) return -1;
  const n = Number(s);
  return n >= min && n <= 0xffffffff ? n : -1;
}

export const recentMatch: MatchModule<RecentState> = {
  name: 'recent',
  options: [
    ...CMDS.map((name) => ({ name, invertible: true, args: 0 as const })),
    { name: 'seconds', invertible: false, args: 1 },
    { name: 'reap', invertible: false, args: 0 },
    { name: 'hitcount', invertible: false, args: 1 },
    { name: 'rttl', invertible: false, args: 0 },
    { name: 'name', invertible: false, args: 1 },
    { name: 'rsource', invertible: false, args: 0 },
    { name: 'rdest', invertible: false, args: 0 },
    { name: 'mask', invertible: false, args: 1 },
  ],
  create: () => ({
    cmd: null,
    inv: false,
    seconds: 0,
    reap: false,
    hitCount: 0,
    rttl: false,
    name: 'DEFAULT',
    nameSet: false,
    dest: false,
    maskFamily: 0,
    mask: [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
  }),
  parse(s, opt, args, inv, optTok, env) {
    const a = args[0];
    if ((CMDS as readonly string[]).includes(opt)) {
      if (s.cmd) return env.error(optTok, `option "--${opt}" cannot be used together with "--${s.cmd}"`);
      s.cmd = opt as Cmd;
      s.inv = inv;
      return;
    }
    switch (opt) {
      case 'seconds':
      case 'hitcount': {
        const n = positiveU32(a.text, opt === 'seconds' ? 1 : 0);
        if (n < 0) return env.error(a, `bad value for option "--${opt}", or out of range (${opt === 'seconds' ? 1 : 0}-4294967295)`);
        if (opt === 'seconds') s.seconds = n;
        else if (n >= XT_RECENT_MAX_NSTAMPS) return env.error(a, `hitcount (${n}) is larger than allowed maximum (${XT_RECENT_MAX_NSTAMPS - 1})`);
        else s.hitCount = n;
        return;
      }
      case 'reap':
        s.reap = true;
        return;
      case 'rttl':
        s.rttl = true;
        return;
      case 'name':
        if (s.nameSet) return env.error(optTok, 'option "--name" can only be used once');
        if (a.text === '' || a.text.length >= XT_RECENT_NAME_LEN) return env.error(a, `bad list name "${a.text}" (1 to ${XT_RECENT_NAME_LEN - 1} characters)`);
        if (a.text.includes('/')) return env.error(a, `bad list name "${a.text}" (no "/": it names a file under /proc/net/xt_recent)`);
        s.name = a.text;
        s.nameSet = true;
        return;
      case 'rsource':
      case 'rdest':
        s.dest = opt === 'rdest';
        return;
      case 'mask': {
        const v4 = parseIp4(a.text);
        const v6 = v4 < 0 ? parseIp6(a.text) : null;
        if (v4 < 0 && !v6) return env.error(a, `bad --mask "${a.text}" (an IPv4 or IPv6 address)`);
        s.maskFamily = v4 >= 0 ? 4 : 6;
        s.mask = v4 >= 0 ? [v4, 0xffffffff, 0xffffffff, 0xffffffff] : v6!;
        return;
      }
    }
  },
  finalize(s, _rule, at, env) {
    if (!s.cmd) return env.error(at, "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'");
    // recent_mt_check's -EINVAL cases, with the reason
    if ((s.cmd === 'set' || s.cmd === 'remove') && (s.seconds || s.hitCount || s.reap || s.rttl))
      return env.error(at, `recent: --${s.cmd} cannot be used with --seconds, --hitcount, --reap or --rttl`);
    if (s.reap && !s.seconds) env.error(at, 'recent: option "--reap" also requires "--seconds"');
  },
  familyOf: (s) => s.maskFamily,
  save(s, family) {
    const out: string[] = [];
    if (s.inv) out.push('!');
    out.push(`--${s.cmd}`);
    if (s.seconds) out.push('--seconds', String(s.seconds));
    if (s.reap) out.push('--reap');
    if (s.hitCount) out.push('--hitcount', String(s.hitCount));
    if (s.rttl) out.push('--rttl');
    out.push('--name', s.name);
    // iptables-save prints the mask in the table's family; a rule for both families has none to print
    const fam = s.maskFamily || family;
    if (fam === 4 || fam === 6) out.push('--mask', formatAddr(fam, fam === 4 ? [s.mask[0]] : s.mask));
    out.push(s.dest ? '--rdest' : '--rsource');
    return out;
  },
  compile(s) {
    return new RecentMatch(s, acquireRecentList(s.name, nstampMaskFor(s.hitCount), s.mask));
  },
  // the lists this rule set no longer names are freed
  inService: () => commitRecentLists(),
};

/** indices into CMDS (--rcheck is 1) */
const CMD_SET = 0;
const CMD_UPDATE = 2;
const CMD_REMOVE = 3;

class RecentMatch implements CompiledMatch {
  private readonly cmd: number;
  private readonly inv: boolean;
  private readonly dest: boolean;
  private readonly rttl: boolean;
  private readonly reap: boolean;
  private readonly window: number;
  private readonly enough: number;
  private readonly key = new Uint32Array(4);
  constructor(
    s: RecentState,
    private readonly list: RecentList,
  ) {
    this.cmd = CMDS.indexOf(s.cmd!);
    this.inv = s.inv;
    this.dest = s.dest;
    this.rttl = s.rttl;
    this.reap = s.reap;
    this.window = s.seconds * HZ;
    this.enough = s.hitCount > 0 ? s.hitCount : 1;
  }

  match(ctx: PacketContext, now: number): boolean {
    const v = ctx.view;
    const t = this.list;
    const a = this.dest ? v.dst : v.src;
    const m = t.mask;
    const key = this.key;
    const family = ctx.family;
    if (family === 4) {
      key[0] = a[0] & m[0];
      key[1] = key[2] = key[3] = 0;
    } else for (let i = 0; i < 4; i++) key[i] = a[i] & m[i];
    // "use TTL as seen before forwarding": forwarded packets were decremented already
    let ttl = v.ttl;
    if (ctx.hook === NF_INET_FORWARD) ttl = (ttl + 1) & 255;
    const jiffies = Math.floor(now);
    let ret = this.inv;
    let e = t.lookup(family, key, this.rttl ? ttl : 0);
    if (e < 0) {
      if (this.cmd !== CMD_SET) return ret;
      t.init(family, key, ttl, jiffies);
      return !ret;
    }
    if (this.cmd === CMD_SET) ret = !ret;
    else if (this.cmd === CMD_REMOVE) {
      t.remove(e);
      return !ret;
    } else {
      const since = this.window ? jiffies - this.window : -Infinity;
      if (t.hits(e, since, this.enough) >= this.enough) ret = !ret;
      if (this.reap && t.reap(since) === e) e = -1;
    }
    if (e >= 0 && (this.cmd === CMD_SET || (this.cmd === CMD_UPDATE && ret))) {
      t.update(e, jiffies);
      t.setTtl(e, ttl);
    }
    return ret;
  }
}
