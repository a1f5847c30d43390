/**
 * -m hashlimit: libxt_hashlimit.c revision 3 (--hashlimit-upto / --hashlimit-above RATE,
 * --hashlimit-burst, --hashlimit-mode srcip,srcport,dstip,dstport, --hashlimit-name,
 * --hashlimit-srcmask/-dstmask, --hashlimit-htable-size/-max/-gcinterval/-expire) and
 * xt_hashlimit.c: one token bucket per key, in a table shared by name (per family) by every
 * rule that names it and kept over a reload; the first rule's settings are the table's.
 * The bucket is the kernel's (credits refilled per jiffy, HZ = 1000 here), in microseconds
 * of credit so that the arithmetic stays exact in doubles. Entries expire --htable-expire
 * after their last packet and are dropped by the collection every --htable-gcinterval; a new
 * key in a full table (--htable-max) drops the packet (hotdrop). Byte rates (`1kb/s`) and
 * --hashlimit-rate-match / --hashlimit-rate-interval are refused (not implemented).
 */
import * as os from 'node:os';
import type { CompiledMatch, CompileEnv, MatchModule, MatchRuntime } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { prefixMask } from '../addr';
import { parseRate, rateUnit } from './limit';

const SCALE = 1_000_000; // XT_HASHLIMIT_SCALE_v2
const BURST_MAX = 10000;
const GCINTERVAL = 1000;
const MODES = ['srcip', 'srcport', 'dstip', 'dstport'] as const;
const SIP = 1;
const SPT = 2;
const DIP = 4;
const DPT = 8;

export interface HashlimitState {
  avg: number;
  above: boolean;
  rateSet: boolean;
  burst: number;
  mode: number;
  name: string;
  srcmask: number;
  dstmask: number;
  size: number;
  max: number;
  gcinterval: number;
  expire: number;
}

const uintOpt = (s: string, min: number, max: number) => (/^[0-9]+$/.test(s) && Number(s) >= min && Number(s) <= max ? Number(s) : -1);

export const hashlimitMatch: MatchModule<HashlimitState> = {
  name: 'hashlimit',
  options: [
    { name: 'hashlimit-upto', invertible: true, args: 1 },
    { name: 'hashlimit-above', invertible: true, args: 1 },
    { name: 'hashlimit', invertible: false, args: 1 },
    { name: 'hashlimit-burst', invertible: false, args: 1 },
    { name: 'hashlimit-mode', invertible: false, args: 1 },
    { name: 'hashlimit-name', invertible: false, args: 1 },
    { name: 'hashlimit-srcmask', invertible: false, args: 1 },
    { name: 'hashlimit-dstmask', invertible: false, args: 1 },
    { name: 'hashlimit-htable-size', invertible: false, args: 1 },
    { name: 'hashlimit-htable-max', invertible: false, args: 1 },
    { name: 'hashlimit-htable-gcinterval', invertible: false, args: 1 },
    { name: 'hashlimit-htable-expire', invertible: false, args: 1 },
  ],
  unsupported: ['hashlimit-rate-match', 'hashlimit-rate-interval'],
  create: () => ({
    avg: 0,
    above: false,
    rateSet: false,
    burst: 5,
    mode: 0,
    name: '',
    srcmask: -1,
    dstmask: -1,
    size: 0,
    max: 0,
    gcinterval: GCINTERVAL,
    expire: -1,
  }),
  parse(s, opt, args, inv, optTok, env) {
    const a = args[0];
    const t = a.text;
    switch (opt) {
      case 'hashlimit':
      case 'hashlimit-upto':
      case 'hashlimit-above': {
        if (s.rateSet) return env.error(optTok, 'only one of --hashlimit-upto and --hashlimit-above is allowed');
        if (/b\//i.test(t) || /[kmg]b$/i.test(t)) return env.error(a, `hashlimit: byte rates ("${t}") are not supported`);
        const r = parseRate(t, SCALE);
        if (typeof r === 'string') return env.error(a, r);
        s.avg = r;
        s.above = (opt === 'hashlimit-above') !== inv;
        s.rateSet = true;
        return;
      }
      case 'hashlimit-burst': {
        const n = uintOpt(t, 1, BURST_MAX);
        if (n < 0) return env.error(a, `bad value for option "--hashlimit-burst", or out of range (1-${BURST_MAX})`);
        s.burst = n;
        return;
      }
      case 'hashlimit-mode': {
        let m = 0;
        for (const w of t.split(',')) {
          const i = (MODES as readonly string[]).indexOf(w);
          if (i < 0) return env.error(a, `hashlimit: bad mode "${w}" (srcip, srcport, dstip, dstport)`);
          m |= 1 << i;
        }
        s.mode = m;
        return;
      }
      case 'hashlimit-name':
        if (t === '' || t.length > 255 || t.includes('/')) return env.error(a, `hashlimit: bad table name "${t}"`);
        s.name = t;
        return;
      case 'hashlimit-srcmask':
      case 'hashlimit-dstmask': {
        const n = uintOpt(t, 0, 128);
        if (n < 0) return env.error(a, `bad value for option "--${opt}", or out of range (0-128)`);
        if (opt === 'hashlimit-srcmask') s.srcmask = n;
        else s.dstmask = n;
        return;
      }
      default: {
        const n = uintOpt(t, opt === 'hashlimit-htable-size' || opt === 'hashlimit-htable-max' ? 0 : 1, 0xffffffff);
        if (n < 0) return env.error(a, `bad value for option "--${opt}"`);
        if (opt === 'hashlimit-htable-size') s.size = n;
        else if (opt === 'hashlimit-htable-max') s.max = n;
        else if (opt === 'hashlimit-htable-gcinterval') s.gcinterval = n;
        else s.expire = n;
      }
    }
  },
  finalize(s, rule, at, env) {
    if (!s.rateSet) return env.error(at, 'hashlimit match needs --hashlimit-upto or --hashlimit-above');
    if (!s.name) return env.error(at, 'hashlimit match needs --hashlimit-name');
    if ((s.srcmask > 32 || s.dstmask > 32) && rule.family === 4) env.error(at, 'hashlimit: a mask longer than 32 is IPv6 only');
  },
  familyOf: (s) => (s.srcmask > 32 || s.dstmask > 32 ? 6 : 0),
  save(s, family) {
    const unit = rateUnit(s.avg, SCALE);
    const out = [s.above ? '--hashlimit-above' : '--hashlimit-upto', unit.text, '--hashlimit-burst', String(s.burst)];
    if (s.mode) out.push('--hashlimit-mode', MODES.filter((_, i) => s.mode & (1 << i)).join(','));
    out.push('--hashlimit-name', s.name);
    if (s.size) out.push('--hashlimit-htable-size', String(s.size));
    if (s.max) out.push('--hashlimit-htable-max', String(s.max));
    if (s.gcinterval !== GCINTERVAL) out.push('--hashlimit-htable-gcinterval', String(s.gcinterval));
    if (s.expire >= 0 && s.expire !== unit.ms) out.push('--hashlimit-htable-expire', String(s.expire));
    const full = family === 6 ? 128 : 32;
    if (s.srcmask >= 0 && s.srcmask !== full) out.push('--hashlimit-srcmask', String(s.srcmask));
    if (s.dstmask >= 0 && s.dstmask !== full) out.push('--hashlimit-dstmask', String(s.dstmask));
    return out;
  },
  compile(s, env) {
    return new HashlimitMatch(s, env);
  },
  inService: () => commitTables(),
};

/** htable_create: the kernel's default size (buckets) from the machine's memory, max 8 × size. */
function tableLimits(s: HashlimitState): { size: number; max: number } {
  let size = s.size;
  if (size === 0) {
    const mem = os.totalmem();
    size = mem > 1024 ** 3 ? 8192 : Math.max(16, Math.floor(mem / 16384 / 8));
  }
  return { size, max: s.max === 0 ? 8 * size : Math.max(s.max, size) };
}

/** One named table of buckets (xt_hashlimit_htable). */
class HashTable {
  gen = 0;
  readonly cost: number;
  readonly cap: number;
  readonly max: number;
  readonly expire: number;
  readonly gcinterval: number;
  readonly mode: number;
  readonly srcMask = new Uint32Array(4);
  readonly dstMask = new Uint32Array(4);
  private count = 0;
  private created = -1;
  private lastGc = -1;
  private slots = 0;
  private keys = new Uint32Array(0); // 10 words a key: src[4] dst[4] sport dport
  private credit = new Float64Array(0);
  private prev = new Float64Array(0);
  private expires = new Float64Array(0);
  private next = new Int32Array(0);
  private readonly buckets: Int32Array;
  private free = -1;
  private high = 0;

  constructor(
    s: HashlimitState,
    readonly family: 4 | 6,
  ) {
    this.cost = s.avg; // microseconds of credit a packet costs; refill 1000 per jiffy
    this.cap = s.avg * s.burst;
    const lim = tableLimits(s);
    this.max = lim.max;
    this.buckets = new Int32Array(2 ** Math.ceil(Math.log2(Math.min(Math.max(lim.size, 16), 65536)))).fill(-1);
    this.expire = s.expire >= 0 ? s.expire : rateUnit(s.avg, SCALE).ms;
    this.gcinterval = s.gcinterval;
    this.mode = s.mode;
    const full = family === 4 ? 32 : 128;
    this.srcMask.set(prefixMask(family, s.srcmask < 0 ? full : Math.min(s.srcmask, full)));
    this.dstMask.set(prefixMask(family, s.dstmask < 0 ? full : Math.min(s.dstmask, full)));
  }

  private grow(): void {
    const n = Math.min(this.max, Math.max(64, this.slots * 2));
    const g = <T extends Uint32Array | Float64Array | Int32Array>(a: T, k: number, make: (n: number) => T): T => {
      const b = make(n * k);
      b.set(a);
      return b;
    };
    this.keys = g(this.keys, 10, (x) => new Uint32Array(x));
    this.credit = g(this.credit, 1, (x) => new Float64Array(x));
    this.prev = g(this.prev, 1, (x) => new Float64Array(x));
    this.expires = g(this.expires, 1, (x) => new Float64Array(x));
    this.next = g(this.next, 1, (x) => new Int32Array(x));
    this.slots = n;
  }

  /** htable_gc at every gcinterval since the table was made: entries expired by then are gone. */
  private collect(now: number): void {
    if (this.created < 0) this.created = this.lastGc = now;
    const due = this.created + Math.floor((now - this.created) / this.gcinterval) * this.gcinterval;
    if (due <= this.lastGc) return;
    this.lastGc = due;
    for (let b = 0; b < this.buckets.length; b++) {
      let prev = -1;
      for (let e = this.buckets[b]; e >= 0;) {
        const nx = this.next[e];
        if (this.expires[e] <= due) {
          if (prev < 0) this.buckets[b] = nx;
          else this.next[prev] = nx;
          this.next[e] = this.free;
          this.free = e;
          this.count--;
        } else prev = e;
        e = nx;
      }
    }
  }

  /** One packet of key k (10 words): true when below the limit. hotdrop: the table is full. */
  packet(k: Uint32Array, jiffies: number, rt: MatchRuntime): boolean {
    this.collect(jiffies);
    let h = 0x811c9dc5;
    for (let i = 0; i < 10; i++) h = Math.imul(h ^ (k[i] | 0), 0x01000193);
    const b = (h ^ (h >>> 16)) & (this.buckets.length - 1);
    let e = this.buckets[b];
    for (; e >= 0; e = this.next[e]) {
      let same = true;
      for (let i = 0; i < 10 && same; i++) if (this.keys[e * 10 + i] !== k[i]) same = false;
      if (same) break;
    }
    if (e < 0) {
      if (this.count >= this.max) {
        rt.hotdrop = 1;
        return false;
      }
      if (this.free >= 0) {
        e = this.free;
        this.free = this.next[e];
      } else {
        if (this.high === this.slots) this.grow();
        e = this.high++;
      }
      this.keys.set(k, e * 10);
      this.next[e] = this.buckets[b];
      this.buckets[b] = e;
      this.count++;
      this.credit[e] = this.cap;
      this.prev[e] = jiffies;
    } else {
      // rateinfo_recalc
      const delta = jiffies - this.prev[e];
      if (delta > 0) {
        this.prev[e] = jiffies;
        this.credit[e] = Math.min(this.credit[e] + delta * 1000, this.cap);
      }
    }
    this.expires[e] = jiffies + this.expire;
    if (this.credit[e] >= this.cost) {
      this.credit[e] -= this.cost;
      return true;
    }
    return false;
  }
}

/** This thread's tables by family and name (kept over reloads while a rule names them). */
const tables = new Map<string, HashTable>();
let generation = 0;

function acquire(s: HashlimitState, family: 4 | 6): HashTable {
  const key = `${family}/${s.name}`;
  let t = tables.get(key);
  if (!t) {
    t = new HashTable(s, family);
    tables.set(key, t);
  }
  t.gen = generation + 1;
  return t;
}

function commitTables(): void {
  generation++;
  for (const [k, t] of tables) if (t.gen !== generation) tables.delete(k);
}

class HashlimitMatch implements CompiledMatch {
  private readonly v4: HashTable;
  private readonly v6: HashTable;
  private readonly above: boolean;
  private readonly key = new Uint32Array(10);
  private readonly rt: MatchRuntime;
  constructor(s: HashlimitState, env: CompileEnv) {
    this.v4 = acquire(s, 4);
    this.v6 = acquire(s, 6);
    this.above = s.above;
    this.rt = env.runtime;
  }

  match(ctx: PacketContext, now: number): boolean {
    const t = ctx.family === 6 ? this.v6 : this.v4;
    const v = ctx.view;
    const k = this.key;
    const n = ctx.family === 6 ? 4 : 1;
    const m = t.mode;
    k.fill(0);
    if (m & SIP) for (let i = 0; i < n; i++) k[i] = (v.src[i] & t.srcMask[i]) >>> 0;
    if (m & DIP) for (let i = 0; i < n; i++) k[4 + i] = (v.dst[i] & t.dstMask[i]) >>> 0;
    // ports of TCP, UDP, UDP-Lite, SCTP, DCCP (proto_ports_offset 0); other protocols 0
    const p = v.proto;
    if (p === 6 || p === 17 || p === 136 || p === 132 || p === 33) {
      if (m & SPT) k[8] = v.sport;
      if (m & DPT) k[9] = v.dport;
    }
    const below = t.packet(k, Math.floor(now), this.rt);
    if (this.rt.hotdrop !== 0) return false;
    return below !== this.above;
  }
}
