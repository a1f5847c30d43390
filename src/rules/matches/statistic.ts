/**
 * -m statistic: libxt_statistic.c and xt_statistic.c. `--mode random --probability P`: the
 * kernel keeps lround(P * 2^31) and matches when (get_random_u32() & 0x7FFFFFFF) is below it;
 * iptables-save prints that back with %.11f (0.3333333333 is saved as 0.33333333349).
 * `--mode nth --every N --packet P`: one counter per rule, started at N-1-P, counting up to
 * N-1 and wrapping to 0, the packet that wraps it matches (the first packet matches with
 * --packet 0). `!` before --probability or --every inverts. nfqwall's counter is per packet
 * thread: with several queues each thread counts its own packets (the kernel's is one atomic
 * per rule across CPUs), so nth is exact with one queue. The random bits come from xorshift128
 * seeded from the system's random source, in 32-bit integers: Math.random() returns a heap
 * number per call outside optimised code (the no-allocation run counted 16 more scavenges).
 */
import { randomFillSync } from 'node:crypto';
import type { CompiledMatch, MatchModule } from '../types';

const MODE_RANDOM = 0;
const MODE_NTH = 1;
const U32_MAX = 0xffffffff;

export interface StatisticState {
  mode: number | null;
  inv: boolean;
  /** lround(P * 2^31) */
  probability: number | null;
  /** --every N stored as N - 1, as the kernel's u.nth.every */
  every: number | null;
  packet: number | null;
}

function u32(text: string, min: number): number | null {
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) return null;
  const v = Number(text);
  return v >= min && v <= U32_MAX ? v : null;
}

/** printf("%.11f", probability / 2^31): the exact binary fraction rounded half to even */
function formatProbability(p: number): string {
  const num = BigInt(p) * 10n ** 11n;
  let q = num >> 31n;
  const r = num & ((1n << 31n) - 1n);
  const half = 1n << 30n;
  if (r > half || (r === half && (q & 1n) === 1n)) q++;
  const s = q.toString().padStart(12, '0');
  return `${s.slice(0, -11)}.${s.slice(-11)}`;
}

export const statisticMatch: MatchModule<StatisticState> = {
  name: 'statistic',
  options: [
    { name: 'mode', invertible: false, args: 1 },
    { name: 'probability', invertible: true, args: 1 },
    { name: 'every', invertible: true, args: 1 },
    { name: 'packet', invertible: false, args: 1 },
  ],
  create: () => ({ mode: null, inv: false, probability: null, every: null, packet: null }),
  parse(s, opt, args, inv, optTok, env) {
    const text = args[0].text;
    if (inv) s.inv = true;
    switch (opt) {
      case 'mode':
        if (text === 'random') s.mode = MODE_RANDOM;
        else if (text === 'nth') s.mode = MODE_NTH;
        else env.error(args[0], `Bad mode "${text}"`);
        return;
      case 'probability': {
        const v = /^[0-9]*\.?[0-9]*(e[-+]?[0-9]+)?$/i.test(text) && /[0-9]/.test(text) ? Number(text) : NaN;
        if (!(v >= 0 && v <= 1)) return env.error(args[0], 'statistic: bad value for option "--probability", or out of range (0-1).');
        s.probability = Math.round(0x80000000 * v);
        return;
      }
      case 'every': {
        const v = u32(text, 1);
        if (v === null) return env.error(args[0], `statistic: bad value for option "--every", or out of range (1-${U32_MAX}).`);
        s.every = v - 1;
        return;
      }
      case 'packet': {
        const v = u32(text, 0);
        if (v === null) return env.error(args[0], `statistic: bad value for option "--packet", or out of range (0-${U32_MAX}).`);
        s.packet = v;
        return;
      }
    }
    env.error(optTok, `statistic: unknown option --${opt}`);
  },
  finalize(s, _rule, at, env) {
    if (s.mode === null) return env.error(at, 'statistic: option "--mode" must be specified');
    if (s.every !== null && s.packet === null) return env.error(at, 'statistic: option "--every" also requires "--packet".');
    if (s.packet !== null && s.every === null) return env.error(at, 'statistic: option "--packet" also requires "--every".');
    if (s.mode === MODE_RANDOM) {
      if (s.every !== null) return env.error(at, '--every and --packet can only be used in nth mode');
      if (s.probability === null) return env.error(at, '--probability must be specified when using random mode');
    } else {
      if (s.probability !== null) return env.error(at, '--probability can only be used in random mode');
      if (s.every === null) return env.error(at, '--every and --packet must be specified when using nth mode');
      if (s.packet! > s.every) return env.error(at, 'the --packet p must be 0 <= p <= n-1');
    }
  },
  familyOf: () => 0,
  save(s) {
    const inv = s.inv ? ['!'] : [];
    if (s.mode === MODE_RANDOM) return ['--mode', 'random', ...inv, '--probability', formatProbability(s.probability!)];
    return ['--mode', 'nth', ...inv, '--every', String(s.every! + 1), '--packet', String(s.packet!)];
  },
  compile(s) {
    return s.mode === MODE_RANDOM ? new RandomMatch(s.probability!, s.inv) : new NthMatch(s.every!, s.every! - s.packet!, s.inv);
  },
};

class RandomMatch implements CompiledMatch {
  /** xorshift128 state, never all zero */
  private readonly s = new Int32Array(4);
  constructor(
    private readonly probability: number,
    private readonly inv: boolean,
  ) {
    const s = this.s;
    do randomFillSync(s);
    while ((s[0] | s[1] | s[2] | s[3]) === 0);
  }
  match(): boolean {
    const s = this.s;
    let t = s[3];
    const s0 = s[0];
    s[3] = s[2];
    s[2] = s[1];
    s[1] = s0;
    t ^= t << 11;
    t ^= t >>> 8;
    s[0] = t ^ s0 ^ (s0 >>> 19);
    // get_random_u32() & 0x7FFFFFFF: 31 random bits
    return (s[0] & 0x7fffffff) < this.probability !== this.inv;
  }
}

class NthMatch implements CompiledMatch {
  constructor(
    private readonly every: number,
    private count: number,
    private readonly inv: boolean,
  ) {}
  match(): boolean {
    this.count = this.count === this.every ? 0 : this.count + 1;
    return (this.count === 0) !== this.inv;
  }
}
