/**
 * -m hashlimit: libxt_hashlimit.c revision 3 (--hashlimit-upto / --hashlimit-above RATE,
 * --hashlimit-burst, --hashlimit-mode srcip,srcport,dstip,dstport, --hashlimit-name,
 * --hashlimit-srcmask/-dstmask, --hashlimit-htable-size/-max/-gcinterval/-expire) and
 * xt_hashlimit.c: one token bucket per key, in a table shared by name (per family) by every
 * rule that names it and kept over a reload; the first rule's settings are the table's.
 * The bucket is the kernel's (credits refilled per jiffy, HZ = 1000 here), in microseconds
 * of credit so that the arithmetic stays exact in doubles. Entries expire --htable-expire
 * after their last packet and are dropped by the collection every --htable-gcinterval; a new
 * key in a full table (--htable-max) drops the packet (hotdrop). Byte rates (`N[k|m]b/s`,
 * --hashlimit-burst N[k|m]b): the kernel's byte mode, credits of CREDITS_PER_JIFFY_BYTES per
 * jiffy up to one second's worth, a packet costing its 16-byte chunks × user2credits_byte(avg)
 * (at most the whole bucket), the burst a count of refills of an empty bucket. Revision 3's
 * --hashlimit-rate-match [--hashlimit-rate-interval S]: no limiting, a count of packets (bytes)
 * per interval against rate + burst (rate × burst), the previous interval's rate deciding
 * whether the next one may match. HZ cancels out of every formula but the jiffy: 1 ms here.
 */
import * as os from 'node:os';
import type { CompiledMatch, CompileEnv, MatchModule, MatchRuntime } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { prefixMask } from '../addr';
import { parseRate, rateUnit } from './limit';

const SCALE = 1_000_000; // XT_HASHLIMIT_SCALE_v2
const BURST_MAX = 1_000_000; // XT_HASHLIMIT_BURST_MAX (revisions 2 and 3)
const U32_MAX = 0xffffffff;
const BYTE_SHIFT = 4; // XT_HASHLIMIT_BYTE_SHIFT: lengths count in 16-byte chunks
const BYTE_EXPIRE = 15; // s, the default expiry of a byte rate
const BYTE_EXPIRE_BURST = 60; // s, with --hashlimit-burst
/** CREDITS_PER_JIFFY_BYTES × HZ: 2^22 × 1000 at HZ 1000, the same 4194304000 at HZ 250 (2^24 × 250) */
const CPJB = 2 ** 22;
const BYTES_CAP = CPJB * 1000;
const GCINTERVAL = 1000;
const MODES = ['srcip', 'srcport', 'dstip', 'dstport'] as const;
const SIP = 1;
const SPT = 2;
const DIP = 4;
const DPT = 8;

export interface HashlimitState {
  /** packets: the period in µs; bytes: the cost (bytes_to_cost); after finalize with --hashlimit-rate-match (packets) divided by mult */
  avg: number;
  above: boolean;
  rateSet: boolean;
  /** a byte rate (XT_HASHLIMIT_BYTES) */
  bytes: boolean;
  /** the rate's unit in seconds (hashlimit_mt_udata.mult): 1, 60, 3600, 86400; BYTE_EXPIRE for bytes */
  mult: number;
  /** --hashlimit-burst as given, read once the rate's kind is known */
  burstText: string;
  burst: number;
  rateMatch: boolean;
  /** --hashlimit-rate-interval in seconds, 0 = the default */
  interval: number;
  expireSet: boolean;
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
    { name: 'hashlimit-rate-match', invertible: false, args: 0 },
    { name: 'hashlimit-rate-interval', invertible: false, args: 1 },
  ],
  create: () => ({
    avg: 0,
    above: false,
    rateSet: false,
    bytes: false,
    mult: 1,
    burstText: '',
    burst: 5,
    rateMatch: false,
    interval: 0,
    expireSet: false,
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
    const t = a?.text ?? '';
    switch (opt) {
      case 'hashlimit':
      case 'hashlimit-upto':
      case 'hashlimit-above': {
        if (s.rateSet) return env.error(optTok, 'only one of --hashlimit-upto and --hashlimit-above is allowed');
        const b = parseBytes(t);
        if (b !== null) {
          if (typeof b === 'string') return env.error(a, b);
          s.avg = b;
          s.bytes = true;
          s.mult = BYTE_EXPIRE;
        } else {
          const r = parseRate(t, SCALE);
          if (typeof r === 'string') return env.error(a, r);
          s.avg = r;
          s.mult = rateMult(t);
        }
        s.above = (opt === 'hashlimit-above') !== inv;
        s.rateSet = true;
        return;
      }
      case 'hashlimit-burst':
        if (parseBurst(t) < 0) return env.error(a, `bad value for option "--hashlimit-burst", or out of range (1-${BURST_MAX})`);
        s.burstText = t;
        return;
      case 'hashlimit-rate-match':
        s.rateMatch = true;
        return;
      case 'hashlimit-rate-interval': {
        // parse_interval: atoi, at least 1
        const n = /^\s*[+-]?[0-9]+/.test(t) ? parseInt(t, 10) : 0;
        if (!(n > 0) || n > 0x7fffffff) return env.error(a, `hashlimit: bad value for option "--hashlimit-rate-interval" ("${t}")`);
        s.interval = n;
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
        else {
          s.expire = n;
          s.expireSet = true;
        }
      }
    }
  },
  finalize(s, rule, at, env) {
    if (!s.rateSet) return env.error(at, 'hashlimit match needs --hashlimit-upto or --hashlimit-above');
    if (!s.name) return env.error(at, 'hashlimit match needs --hashlimit-name');
    // hashlimit_mt_check (libxt_hashlimit.c): the expiry default, the burst by the rate's kind
    if (!s.expireSet) s.expire = s.mult * 1000;
    const given = s.burstText !== '' ? parseBurst(s.burstText) : -1;
    if (s.bytes) {
      let burst = 0;
      if (given >= 0) {
        const unit = costToBytes(s.avg);
        if (given < unit) return env.error(at, `burst cannot be smaller than ${unit}b`);
        burst = Math.floor(given / unit) + (given % unit !== 0 ? 1 : 0);
        if (!s.expireSet) s.expire = BYTE_EXPIRE_BURST * 1000;
      }
      s.burst = burst >>> 0;
    } else {
      if (given >= 0) s.burst = given;
      if (s.burst > BURST_MAX) return env.error(at, `bad value for option "--hashlimit-burst", or out of range (1-${BURST_MAX})`);
    }
    if (s.rateMatch) {
      if (!s.bytes) s.avg = Math.floor(s.avg / s.mult);
      if (s.interval === 0) s.interval = s.bytes ? 1 : s.mult;
      if (s.avg === 0) return env.error(at, 'hashlimit: invalid rate for --hashlimit-rate-match (the kernel refuses it: ERANGE)');
    } else if (s.bytes && user2creditsByte(s.avg) === 0)
      return env.error(at, `hashlimit: rate too high (the kernel refuses it: overflow, rate too high: ${s.avg})`);
    // without --hashlimit-rate-match an interval is kept but unused (and not saved), as by libxt_hashlimit
    if ((s.srcmask > 32 || s.dstmask > 32) && rule.family === 4) env.error(at, 'hashlimit: a mask longer than 32 is IPv6 only');
  },
  familyOf: (s) => (s.srcmask > 32 || s.dstmask > 32 ? 6 : 0),
  save(s, family) {
    const out = [s.above ? '--hashlimit-above' : '--hashlimit-upto'];
    let quantum: number;
    if (s.bytes) {
      quantum = printBytes(s.avg, s.burst, out);
    } else {
      const unit = rateUnit(s.avg, SCALE);
      quantum = unit.ms;
      out.push(unit.text, '--hashlimit-burst', String(s.burst));
    }
    if (s.mode) out.push('--hashlimit-mode', MODES.filter((_, i) => s.mode & (1 << i)).join(','));
    out.push('--hashlimit-name', s.name);
    if (s.size) out.push('--hashlimit-htable-size', String(s.size));
    if (s.max) out.push('--hashlimit-htable-max', String(s.max));
    if (s.gcinterval !== GCINTERVAL) out.push('--hashlimit-htable-gcinterval', String(s.gcinterval));
    if (s.expire >= 0 && s.expire !== quantum) out.push('--hashlimit-htable-expire', String(s.expire));
    const full = family === 6 ? 128 : 32;
    if (s.srcmask >= 0 && s.srcmask !== full) out.push('--hashlimit-srcmask', String(s.srcmask));
    if (s.dstmask >= 0 && s.dstmask !== full) out.push('--hashlimit-dstmask', String(s.dstmask));
    if (s.rateMatch) out.push('--hashlimit-rate-match');
    if (s.rateMatch && s.interval !== 1) out.push('--hashlimit-rate-interval', String(s.interval));
    return out;
  },
  compile(s, env) {
    return new HashlimitMatch(s, env);
  },
  inService: () => commitTables(),
};

/** The unit of a packet rate in seconds (parse_rate's mult): /second 1, /minute 60, /hour 3600, /day 86400. */
function rateMult(t: string): number {
  const slash = t.indexOf('/');
  if (slash < 0) return 1;
  const unit = t.slice(slash + 1).toLowerCase();
  return 'second'.startsWith(unit) ? 1 : 'minute'.startsWith(unit) ? 60 : 'hour'.startsWith(unit) ? 3600 : 86400;
}

const factor = (c: string | undefined) => (c === 'm' ? 1024 * 1024 : c === 'k' ? 1024 : 1);

/** bytes_to_cost: UINT32_MAX / ((bytes >> 4) + 1), the shift on the low 32 bits as the u32 of libxt_hashlimit. */
const bytesToCost = (bytes: number) => Math.floor(U32_MAX / ((Math.floor(bytes / 16) % 2 ** 32) + 1));
/** cost_to_bytes: the bytes per second a cost stands for. */
const costToBytes = (cost: number) => (Math.floor(U32_MAX / cost) - 1) * 2 ** BYTE_SHIFT;
/** user2credits_byte: (avg × HZ × CREDITS_PER_JIFFY_BYTES) >> 32, exact in 64 bits. */
const user2creditsByte = (avg: number) => Number((BigInt(avg) * BigInt(BYTES_CAP)) >> 32n);
/** user2rate_bytes (rate-match): (U32_MAX / avg - 1) << 4. */
const user2rateBytes = (avg: number) => (Math.floor(U32_MAX / avg) - 1) * 2 ** BYTE_SHIFT;

/** parse_bytes: "N[k|m]b/s" → its cost; null when not a byte rate (then it is a packet rate). */
function parseBytes(t: string): number | string | null {
  const at = t.indexOf('b/s');
  if (at <= 0) return null;
  const m = /^\s*[+-]?[0-9]+/.exec(t); // atoll
  const r = m ? Number(m[0]) : 0;
  if (r === 0) return null;
  const bytes = r * factor(t[at - 1]);
  if (bytes > Number.MAX_SAFE_INTEGER) return `Rate value too large "${t}"`;
  const cost = bytesToCost(bytes);
  if (cost === 0) return `Rate too high "${t}"`;
  return cost;
}

/** parse_burst (revision 2/3): a number (base 0), with k or m: times 1024 or 1048576; -1 when bad. */
function parseBurst(t: string): number {
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(.*)$/.exec(t);
  if (!m) return -1;
  const v = Number(m[1].startsWith('0') && !/^0[xX]/.test(m[1]) && m[1].length > 1 ? parseInt(m[1], 8) : m[1]);
  if (v < 1 || (m[2] === '' && v > BURST_MAX)) return -1;
  const n = v * factor(m[2][0]);
  return n > Number.MAX_SAFE_INTEGER ? -1 : n;
}

/** print_bytes: the rate as "N[k|m]b/s" (a unit only when it gives back the same cost), the burst in bytes; returns the default expiry. */
function printBytes(avg: number, burst: number, out: string[]): number {
  const units: [string, number][] = [
    ['m', 1024 * 1024],
    ['k', 1024],
    ['', 1],
  ];
  const r = costToBytes(avg);
  let i = 0;
  for (; i < units.length - 1; i++) if (r >= units[i][1] && bytesToCost(r - (r % units[i][1])) === avg) break;
  out.push(`${Math.floor(r / units[i][1])}${units[i][0]}b/s`);
  if (burst === 0) return BYTE_EXPIRE * 1000;
  const b = r * burst;
  for (i = 0; i < units.length - 1; i++) if (b >= units[i][1]) break;
  out.push('--hashlimit-burst', `${Math.floor(b / units[i][1])}${units[i][0]}b`);
  return BYTE_EXPIRE_BURST * 1000;
}

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
  /** byte mode (XT_HASHLIMIT_BYTES) and rate-match mode, from the table's first rule */
  readonly bytes: boolean;
  readonly rateMatch: boolean;
  /** byte mode: the refills of an empty bucket a new entry gets (credit_cap) */
  readonly refills: number;
  /** rate-match: the rate per interval, what a window may count (burst), the interval in jiffies */
  readonly rate: number;
  readonly rmBurst: number;
  readonly interval: number;
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
  /** byte mode: refills left (credit_cap); rate-match: the current window's count (current_rate) */
  private aux = new Float64Array(0);
  /** rate-match: the previous window was over the rate (prev_window) */
  private overPrev = new Uint8Array(0);
  private next = new Int32Array(0);
  private readonly buckets: Int32Array;
  private free = -1;
  private high = 0;

  constructor(
    s: HashlimitState,
    readonly family: 4 | 6,
  ) {
    this.bytes = s.bytes;
    this.rateMatch = s.rateMatch;
    // packets: microseconds of credit a packet costs, refill 1000 per jiffy; bytes: user2credits_byte
    // per 16-byte chunk, refill CREDITS_PER_JIFFY_BYTES per jiffy up to a second's worth
    this.cost = s.bytes ? user2creditsByte(s.avg) : s.avg;
    this.cap = s.bytes ? BYTES_CAP : s.avg * s.burst;
    this.refills = s.bytes ? s.burst : 0;
    // rateinfo_init, revision 3 with XT_HASHLIMIT_RATE_MATCH
    this.rate = !s.rateMatch ? 0 : s.bytes ? user2rateBytes(s.avg) : Math.floor(SCALE / s.avg);
    this.rmBurst = !s.rateMatch ? 0 : s.bytes ? (s.burst ? s.burst * this.rate : this.rate) : s.burst + this.rate;
    this.interval = s.interval * 1000;
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
    const g = <T extends Uint32Array | Float64Array | Int32Array | Uint8Array>(a: T, k: number, make: (n: number) => T): T => {
      const b = make(n * k);
      b.set(a);
      return b;
    };
    this.keys = g(this.keys, 10, (x) => new Uint32Array(x));
    this.credit = g(this.credit, 1, (x) => new Float64Array(x));
    this.prev = g(this.prev, 1, (x) => new Float64Array(x));
    this.expires = g(this.expires, 1, (x) => new Float64Array(x));
    this.aux = g(this.aux, 1, (x) => new Float64Array(x));
    this.overPrev = g(this.overPrev, 1, (x) => new Uint8Array(x));
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

  /** One packet of key k (10 words) and length len: true when below the limit. hotdrop: the table is full. */
  packet(k: Uint32Array, len: number, jiffies: number, rt: MatchRuntime): boolean {
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
      // rateinfo_init
      this.prev[e] = jiffies;
      this.credit[e] = this.cap;
      this.aux[e] = this.rateMatch ? 0 : this.refills;
      this.overPrev[e] = 0;
    } else this.recalc(e, jiffies);
    this.expires[e] = jiffies + this.expire;
    if (this.rateMatch) {
      const n = (this.aux[e] += this.bytes ? len : 1);
      return this.overPrev[e] === 0 && n <= this.rmBurst;
    }
    let cost = this.cost;
    if (this.bytes) {
      // hashlimit_byte_cost: the packet's chunks, at most a full bucket; an empty bucket is refilled while refills last
      cost = ((len >>> BYTE_SHIFT) + 1) * this.cost;
      if (cost > BYTES_CAP) cost = BYTES_CAP;
      if (this.credit[e] < cost && this.aux[e] > 0) {
        this.aux[e]--;
        this.credit[e] = BYTES_CAP;
      }
    }
    if (this.credit[e] >= cost) {
      this.credit[e] -= cost;
      return true;
    }
    return false;
  }

  /** rateinfo_recalc */
  private recalc(e: number, jiffies: number): void {
    const delta = jiffies - this.prev[e];
    if (delta <= 0) return;
    if (this.rateMatch) {
      if (delta < this.interval) return;
      this.prev[e] = jiffies;
      // current_rate × interval·HZ > delta × rate, in jiffies of 1 ms (HZ = 1000)
      this.overPrev[e] = this.aux[e] * this.interval > delta * this.rate ? 1 : 0;
      this.aux[e] = 0;
      return;
    }
    this.prev[e] = jiffies;
    this.credit[e] = Math.min(this.credit[e] + delta * (this.bytes ? CPJB : 1000), this.cap);
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
    const below = t.packet(k, ctx.length, Math.floor(now), this.rt);
    if (this.rt.hotdrop !== 0) return false;
    return below !== this.above;
  }
}
