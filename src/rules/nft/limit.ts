/**
 * The limit statement: nft_limit.c's token bucket in nanoseconds, for packets and bytes,
 * `limit rate [over] N/UNIT [burst M packets|bytes]`. xt_limit's bucket (credits per
 * jiffy, its own rounding) is not the same, so this is a match of its own. At its place in
 * the rule: tests after it stay after it (RuleBuild.impure).
 */
import type { PacketContext } from '../../conntrack/context';
import type { CompiledMatch, MatchModule } from '../types';
import { nftToken, type RuleBuild } from './build';
import { isObject, NftError } from './path';

/** json_parse_limit_stmt's seconds_from_unit (anything else is one second) */
const UNIT_SECONDS: Record<string, number> = { second: 1, minute: 60, hour: 3600, day: 86400, week: 604800 };
/** rate_to_bytes */
const BYTE_UNITS: Record<string, number> = { bytes: 1, kbytes: 1024, mbytes: 1024 * 1024 };
/** NFT_LIMIT_PKT_BURST_DEFAULT */
const PKT_BURST_DEFAULT = 5;
const NSEC_PER_SEC = 1e9;
/** the largest packet whose byte cost must be exact (and not wrap the kernel's u64 nsecs * len) */
const MAX_LEN = 65535;

export interface NftLimitState {
  bytes: boolean;
  /** packets or bytes per unit */
  rate: number;
  /** the unit in seconds */
  unit: number;
  /** packets, or bytes (0 allowed for bytes) */
  burst: number;
  inv: boolean;
  text: string;
}

export function limitMatch(b: RuleBuild, v: unknown, path: string): void {
  const p = `${path}.limit`;
  if (typeof v === 'string') throw new NftError(p, 'named limits are not supported');
  if (!isObject(v)) throw new NftError(path, 'limit takes { rate, per, burst }');
  const rateUnit = v.rate_unit ?? 'packets';
  const burstUnit = v.burst_unit ?? 'bytes';
  const per = v.per ?? 'second';
  const int = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!int(v.rate) || v.rate === 0) throw new NftError(`${p}.rate`, `bad rate ${JSON.stringify(v.rate)}`);
  if (typeof per !== 'string' || !(per in UNIT_SECONDS)) throw new NftError(`${p}.per`, `unsupported unit ${JSON.stringify(per)}`);
  if (v.burst !== undefined && !int(v.burst)) throw new NftError(`${p}.burst`, `bad burst ${JSON.stringify(v.burst)}`);
  const burst0 = (v.burst as number | undefined) ?? 0;
  const s: NftLimitState = {
    bytes: rateUnit !== 'packets',
    rate: v.rate,
    unit: UNIT_SECONDS[per],
    burst: burst0,
    inv: v.inv === true,
    text: JSON.stringify(v),
  };
  if (s.bytes) {
    if (typeof rateUnit !== 'string' || !BYTE_UNITS[rateUnit]) throw new NftError(`${p}.rate_unit`, `unsupported unit ${JSON.stringify(rateUnit)}`);
    if (typeof burstUnit !== 'string' || !BYTE_UNITS[burstUnit]) throw new NftError(`${p}.burst_unit`, `unsupported unit ${JSON.stringify(burstUnit)}`);
    s.rate *= BYTE_UNITS[rateUnit];
    s.burst *= BYTE_UNITS[burstUnit];
    // nft_limit_bytes_eval's cost, nsecs * skb->len, is a u64 product: per week it wraps for large packets
    if (BigInt(s.unit * NSEC_PER_SEC) * BigInt(MAX_LEN) >= 2n ** 64n)
      throw new NftError(`${p}.per`, `byte rates per ${per} are not supported (the kernel's cost, nanoseconds per ${per} × packet length, wraps at 64 bits)`);
  } else if (s.burst === 0) s.burst = PKT_BURST_DEFAULT; // json_parse_limit_stmt, then nft_limit_init
  const { tokensMax, q, r } = bucket(s);
  if (!Number.isSafeInteger(tokensMax) || (s.bytes && (!Number.isSafeInteger(q * MAX_LEN) || !Number.isSafeInteger(r * MAX_LEN))))
    throw new NftError(p, 'rate and burst too large for an exact bucket');
  b.rule.matches.push({ name: nftLimit.name, at: nftToken('limit'), explicit: true, state: s });
  b.impure = true;
}

/**
 * nft_limit_init: the bucket size and the cost of a packet in nanoseconds; for bytes,
 * nsecs = q * rate + r, so that the cost nsecs * len / rate is q * len + r * len / rate
 * in exact integers per packet.
 */
function bucket(s: NftLimitState): { tokensMax: number; pktCost: number; q: number; r: number } {
  const nsecs = s.unit * NSEC_PER_SEC;
  const q = Math.floor(nsecs / s.rate);
  const r = nsecs - q * s.rate;
  if (!s.bytes) return { tokensMax: q * s.burst, pktCost: q, q, r };
  // tokens_max = nsecs * (rate + burst) / rate, in 64 bits as the kernel computes it
  const max = (BigInt(nsecs) * BigInt(s.rate + s.burst)) / BigInt(s.rate);
  return { tokensMax: max < 2n ** 53n ? Number(max) : NaN, pktCost: 0, q, r };
}

/** One limit statement's bucket (nft_limit_eval): tokens are nanoseconds of credit. */
class NftLimit implements CompiledMatch {
  /** -1 before the first packet: the bucket starts full (nft_limit_init) */
  private last = -1;
  private tokens: number;
  private readonly tokensMax: number;
  private readonly pktCost: number;
  private readonly q: number;
  private readonly r: number;
  constructor(private readonly s: NftLimitState) {
    const b = bucket(s);
    this.tokensMax = this.tokens = b.tokensMax;
    this.pktCost = b.pktCost;
    this.q = b.q;
    this.r = b.r;
  }

  match(ctx: PacketContext, nowMs: number): boolean {
    const now = Math.floor(nowMs * 1e6);
    let tokens = this.last < 0 ? this.tokensMax : this.tokens + (now - this.last);
    if (tokens > this.tokensMax) tokens = this.tokensMax;
    this.last = now;
    // nft_limit_bytes_eval: div64_u64(nsecs * skb->len, rate)
    const cost = this.s.bytes ? this.q * ctx.length + Math.floor((this.r * ctx.length) / this.s.rate) : this.pktCost;
    const delta = tokens - cost;
    if (delta >= 0) {
      this.tokens = delta;
      return !this.s.inv;
    }
    this.tokens = tokens;
    return this.s.inv;
  }
}

export const nftLimit: MatchModule<NftLimitState> = {
  name: 'nft-limit',
  options: [],
  create: () => ({ bytes: false, rate: 1, unit: 1, burst: PKT_BURST_DEFAULT, inv: false, text: '' }),
  parse() {},
  finalize() {},
  familyOf: () => 0,
  save: (s) => ['--nft', JSON.stringify(`limit ${s.text}`)],
  compile: (s) => new NftLimit(s),
};
