/**
 * -m limit: libxt_limit.c (--limit N/second|minute|hour|day, --limit-burst) and the
 * kernel's xt_limit.c token bucket with credits. Time comes from the `now` (ms)
 * passed to the engine; jiffies are simulated with HZ = 1000 (1 jiffy = 1 ms).
 */
import type { CompiledMatch, MatchModule } from '../types';

export const XT_LIMIT_SCALE = 10000;
export const XT_LIMIT_AVG = (XT_LIMIT_SCALE * 3600) / 3; // 3/hour
export const XT_LIMIT_BURST = 5;
export const XT_LIMIT_BURST_MAX = 10000;
export const HZ = 1000;
const U32 = 4294967296;
/** MAX_CPJ = 0xFFFFFFFF / (HZ*60*60*24); CREDITS_PER_JIFFY = largest power of two <= MAX_CPJ. */
const MAX_CPJ = Math.floor(0xffffffff / (HZ * 60 * 60 * 24));
export const CREDITS_PER_JIFFY = 2 ** Math.floor(Math.log2(MAX_CPJ));

/** user2credits: the kernel's u32 arithmetic, including its wrap-around. */
export function user2credits(user: number): number {
  if (user > Math.floor(0xffffffff / (HZ * CREDITS_PER_JIFFY))) return (Math.floor(user / XT_LIMIT_SCALE) * HZ * CREDITS_PER_JIFFY) % U32;
  return Math.floor((user * HZ * CREDITS_PER_JIFFY) / XT_LIMIT_SCALE);
}

const rates = (scale: number): readonly [string, number][] => [
  ['day', scale * 24 * 60 * 60],
  ['hour', scale * 60 * 60],
  ['min', scale * 60],
  ['sec', scale],
];

/**
 * parse_rate: N[/second|/minute|/hour|/day] (any prefix of the unit). Returns avg (the period
 * in 1/scale seconds: XT_LIMIT_SCALE for -m limit, XT_HASHLIMIT_SCALE_v2 for -m hashlimit) or an error.
 */
export function parseRate(s: string, scale = XT_LIMIT_SCALE): number | string {
  const slash = s.indexOf('/');
  let mult = 1;
  if (slash >= 0) {
    const unit = s.slice(slash + 1).toLowerCase();
    if (unit === '') return `bad rate "${s}"`;
    if ('second'.startsWith(unit)) mult = 1;
    else if ('minute'.startsWith(unit)) mult = 60;
    else if ('hour'.startsWith(unit)) mult = 3600;
    else if ('day'.startsWith(unit)) mult = 86400;
    else return `bad rate "${s}"`;
  }
  const num = slash >= 0 ? s.slice(0, slash) : s;
  if (!/^[0-9]+$/.test(num) || Number(num) === 0 || Number(num) > 0xffffffff) return `bad rate "${s}"`;
  const val = Math.floor((scale * mult) / Number(num));
  if (val === 0) return `rate too fast "${s}"`;
  return val;
}

/** print_rate: the largest unit that still gives a whole number; also that unit in ms (hashlimit's quantum). */
export function formatRate(period: number, scale = XT_LIMIT_SCALE): string {
  return rateUnit(period, scale).text;
}

export function rateUnit(period: number, scale: number): { text: string; ms: number } {
  const r = rates(scale);
  let i = 1;
  for (; i < r.length; i++) {
    const mult = r[i][1];
    if (period > mult || Math.floor(mult / period) < mult % period) break;
  }
  return { text: `${Math.floor(r[i - 1][1] / period)}/${r[i - 1][0]}`, ms: (r[i - 1][1] / scale) * 1000 };
}

export interface LimitState {
  avg: number;
  burst: number;
  avgSet: boolean;
  burstSet: boolean;
}

export const limitMatch: MatchModule<LimitState> = {
  name: 'limit',
  options: [
    { name: 'limit', invertible: false, args: 1 },
    { name: 'limit-burst', invertible: false, args: 1 },
  ],
  create: () => ({ avg: XT_LIMIT_AVG, burst: XT_LIMIT_BURST, avgSet: false, burstSet: false }),
  parse(s, opt, args, _inv, optTok, env) {
    const a = args[0];
    if (opt === 'limit') {
      if (s.avgSet) return env.error(optTok, '--limit given twice');
      const r = parseRate(a.text);
      if (typeof r === 'string') return env.error(a, r);
      s.avg = r;
      s.avgSet = true;
    } else {
      if (s.burstSet) return env.error(optTok, '--limit-burst given twice');
      if (!/^[0-9]+$/.test(a.text) || Number(a.text) > XT_LIMIT_BURST_MAX) return env.error(a, `bad --limit-burst "${a.text}" (0..${XT_LIMIT_BURST_MAX})`);
      s.burst = Number(a.text);
      s.burstSet = true;
    }
  },
  finalize(s, _rule, at, env) {
    // limit_mt_check: burst 0 or avg*burst overflowing u32 credits is refused (ERANGE).
    if (s.burst === 0 || user2credits((s.avg * s.burst) % U32) < user2credits(s.avg))
      env.error(at, `limit overflow, try lower: ${formatRate(s.avg)} with burst ${s.burst}`);
  },
  familyOf: () => 0,
  save(s) {
    const out = ['--limit', formatRate(s.avg)];
    if (s.burst !== XT_LIMIT_BURST) out.push('--limit-burst', String(s.burst));
    return out;
  },
  compile(s) {
    return new LimitMatch(s.avg, s.burst);
  },
};

export class LimitMatch implements CompiledMatch {
  credit: number;
  readonly creditCap: number;
  readonly cost: number;
  /** last jiffy seen; -1 before the first packet (credits start full) */
  prev = -1;
  constructor(avg: number, burst: number) {
    this.credit = user2credits((avg * burst) % U32);
    this.creditCap = this.credit;
    this.cost = user2credits(avg);
  }
  match(_ctx: unknown, now: number): boolean {
    const j = Math.floor(now);
    if (this.prev >= 0 && j > this.prev) this.credit += (j - this.prev) * CREDITS_PER_JIFFY;
    if (this.prev < 0 || j > this.prev) this.prev = j;
    if (this.credit > this.creditCap) this.credit = this.creditCap;
    if (this.credit >= this.cost) {
      this.credit -= this.cost;
      return true;
    }
    return false;
  }
}
