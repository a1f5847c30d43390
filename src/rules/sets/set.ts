/**
 * What every ipset type implements (the kernel's ip_set_type_variant: kadt for packets from
 * -m set / -j SET, uadt for `ipset add/del/test`, list/head for `ipset list/save`) and the
 * pieces they share: the error texts of ipset's lib/errcode.c, the per-packet option block
 * (ip_set_adt_opt), the extension checks of ip_set_match_extensions, and reading a packet's
 * port the way ip_set_get_ip4_port / ip_set_get_ip6_port do.
 */
import type { PacketContext } from '../../conntrack/context';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../../packet/view';

export const IPPROTO_SCTP = 132;

/** An `ipset` command refused, in ipset's words (printed after "ipset v7.17: " by ipset). */
export class IpsetError extends Error {
  /** ipset's exit status: 1 for what the kernel or the element parser refuses, 2 for a bad command line */
  constructor(
    message: string,
    readonly status = 1,
  ) {
    super(message);
  }
}

/** ip_set_adt_opt.cmdflags bits (uapi ip_set.h) */
export const FLAG_EXIST = 1 << 0;
export const FLAG_RETURN_NOMATCH = 1 << 7;
export const FLAG_SKIP_COUNTER_UPDATE = 1 << 8;
export const FLAG_SKIP_SUBCOUNTER_UPDATE = 1 << 9;
export const FLAG_MATCH_COUNTERS = 1 << 10;

/** IPSET_COUNTER_* */
export const CNT_NONE = 0;
export const CNT_EQ = 1;
export const CNT_NE = 2;
export const CNT_LT = 3;
export const CNT_GT = 4;

/** -ENOTEMPTY: the packet hit an element flagged nomatch */
export const NOMATCH = -2;

/** IPSET_MAX_TIMEOUT: (UINT_MAX >> 1) / MSEC_PER_SEC seconds */
export const MAX_TIMEOUT = 2147483;

/**
 * The options of one use of a set on the packet path (a -m set match, a -j SET target):
 * preallocated per rule, never per packet. flags: bit d set = dimension d (1-based) reads the
 * source (IPSET_DIM_*_SRC), as libxt_set's parse_dirs writes them.
 */
export class AdtOpt {
  family = 0;
  dim = 0;
  flags = 0;
  cmdflags = 0;
  /** -j SET --timeout (seconds), -1 = the set's default */
  timeout = -1;
  packetsOp = CNT_NONE;
  packets = 0;
  bytesOp = CNT_NONE;
  bytes = 0;
}

export function counterMatches(v: number, op: number, ref: number): boolean {
  switch (op) {
    case CNT_EQ:
      return v === ref;
    case CNT_NE:
      return v !== ref;
    case CNT_LT:
      return v < ref;
    case CNT_GT:
      return v > ref;
    default:
      return true;
  }
}

/** The extensions of one `ipset add` (ip_set_ext from userspace): -1 = not given. */
export interface UserExt {
  timeout: number;
  packets: number;
  bytes: number;
  comment: string | null;
  nomatch: boolean;
  /** list:set: add before / after this member */
  before?: string;
  after?: string;
}

export const noExt = (): UserExt => ({ timeout: -1, packets: -1, bytes: -1, comment: null, nomatch: false });

/** The options common to every type at create (the extensions and what nfqwall keeps of the rest). */
export interface CreateOpts {
  /** 4 or 6 for the hash types (family inet/inet6), 0 for bitmap:port and list:set (both families) */
  family: 0 | 4 | 6;
  /** default timeout in seconds, 0 = the set has no timeout support */
  timeout: number;
  counters: boolean;
  comment: boolean;
  /** hash types */
  hashsize: number;
  maxelem: number;
  bucketsize: number;
  /** initval as given at create (nfqwall hashes with its own seed): printed back only when given */
  initval: string | null;
  /** hash:ip, bitmap:ip: the prefix the addresses are masked to (-1 = none given) */
  netmask: number;
  /** bitmap types: the range */
  rangeFrom: number;
  rangeTo: number;
  /** list:set */
  size: number;
}

export const defaultCreateOpts = (): CreateOpts => ({
  family: 4,
  timeout: 0,
  counters: false,
  comment: false,
  hashsize: 1024,
  maxelem: 65536,
  bucketsize: 12,
  initval: null,
  netmask: -1,
  rangeFrom: -1,
  rangeTo: -1,
  size: 8,
});

/** One set in one thread: its storage is shared between threads (descriptor), this object is not. */
export interface IpSet {
  readonly uid: number;
  name: string;
  readonly typeName: string;
  readonly revision: number;
  /** IPSET_TYPE_NOMATCH */
  readonly nomatchFeature: boolean;
  readonly dimension: number;
  readonly opts: CreateOpts;
  /** the kernel's kadt IPSET_TEST: 1 matched, 0 not, NOMATCH hit a nomatch element */
  ktest(ctx: PacketContext, o: AdtOpt, now: number): number;
  /** kadt IPSET_ADD / IPSET_DEL: 0 done, <0 refused (the packet cannot make an element, exists, …) */
  kadd(ctx: PacketContext, o: AdtOpt, now: number): number;
  kdel(ctx: PacketContext, o: AdtOpt, now: number): number;
  /** ipset add / del / test ELEMENT: throws IpsetError; test returns whether it is in */
  uadd(elem: string, ext: UserExt, exist: boolean, now: number): void;
  udel(elem: string, exist: boolean, now: number): void;
  utest(elem: string, now: number): boolean;
  flush(): void;
  /** the words after `create NAME TYPE` in ipset save */
  header(): string;
  /** the members as `ipset save` prints them (without `add NAME `), expired ones left out */
  members(now: number): string[];
  /** the entries, expired or not (Number of entries) */
  count(): number;
  memory(): number;
  /** what another thread needs to attach to the same storage */
  buffers(): unknown;
  /** removes the expired elements (the kernel's periodic gc) */
  gc(now: number): void;
}

/** What a set type module registers (src/rules/sets/types/*.ts). */
export interface SetType {
  readonly name: string;
  /** the options this type takes at create besides timeout/counters/comment */
  readonly createOptions: readonly string[];
  /** default family (hash types: inet; bitmap:port and list:set: both) */
  readonly families: readonly (0 | 4 | 6)[];
  /** a new set (buffers given: attach to another thread's storage); sets: the thread's others (list:set) */
  make(uid: number, name: string, opts: CreateOpts, buffers: unknown, sets: SetLookup): IpSet;
}

/** The sets of this thread, for list:set's members. */
export interface SetLookup {
  byUid(uid: number): IpSet | undefined;
  byName(name: string): IpSet | undefined;
}

/**
 * ip_set_test: a use of fewer dimensions than the set has, or of another family, never
 * matches; --return-nomatch turns a nomatch element into a match and a plain one into none.
 */
export function ipSetTest(set: IpSet, ctx: PacketContext, o: AdtOpt, now: number): number {
  if (o.dim < set.dimension || !(o.family === set.opts.family || set.opts.family === 0)) return 0;
  let r = set.ktest(ctx, o, now);
  if ((o.cmdflags & FLAG_RETURN_NOMATCH) !== 0 && set.nomatchFeature && (r > 0 || r === NOMATCH)) r = -r;
  return r < 0 ? 0 : r;
}

/** ip_set_add / ip_set_del from a packet: 0 done, < 0 not (IPSET_ERR_TYPE_MISMATCH, exists, full, …). */
export function ipSetAdd(set: IpSet, ctx: PacketContext, o: AdtOpt, now: number): number {
  if (o.dim < set.dimension || !(o.family === set.opts.family || set.opts.family === 0)) return -1;
  return set.kadd(ctx, o, now);
}

export function ipSetDel(set: IpSet, ctx: PacketContext, o: AdtOpt, now: number): number {
  if (o.dim < set.dimension || !(o.family === set.opts.family || set.opts.family === 0)) return -1;
  return set.kdel(ctx, o, now);
}

/**
 * The packet's port for a set's port dimension as proto << 16 | port (ip_set_get_ip4_port /
 * ip_set_get_ip6_port): TCP, UDP, UDP-Lite and SCTP ports, ICMP and ICMPv6 type << 8 | code,
 * 0 for other protocols; -1 when the packet has none to read (a later fragment, a short header).
 */
export function packetPort(ctx: PacketContext, src: boolean): number {
  const v = ctx.view;
  const proto = v.proto;
  if (proto <= 0) return -1;
  if (v.fragOffset !== 0) {
    // IPv6: ip_set_get_ip6_port refuses any fragment with an offset
    if (ctx.family === 6) return -1;
    if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP || proto === IPPROTO_UDPLITE || proto === IPPROTO_ICMP) return -1;
    return proto << 16;
  }
  const need =
    proto === IPPROTO_TCP
      ? 20
      : proto === IPPROTO_SCTP
        ? 12
        : proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6
          ? 8
          : 0;
  if (v.l4len < need) return -1;
  const b = v.buf;
  const o = v.l4off;
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP || proto === IPPROTO_UDPLITE)
    return (proto << 16) | (src ? (b[o] << 8) | b[o + 1] : (b[o + 2] << 8) | b[o + 3]);
  if (proto === IPPROTO_ICMP && ctx.family === 4) return (proto << 16) | (b[o] << 8) | b[o + 1];
  if (proto === IPPROTO_ICMPV6 && ctx.family === 6) return (proto << 16) | (b[o] << 8) | b[o + 1];
  return proto << 16;
}
