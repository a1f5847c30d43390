/**
 * What the NAT targets share (xt_nat.c, xt_MASQUERADE.c, xt_REDIRECT.c, xt_NETMAP.c): the
 * compiled action binds the packet's connection through ctx.conn.natSetup (nf_nat_setup_info)
 * and ends the nat chain's walk with that verdict, as the kernel's NAT targets return it; and
 * the SNAT/DNAT option set (--to-*, --random, --random-fully, --persistent), parsed and saved
 * as libxt_NAT.c does, which targets/SNAT.ts and targets/DNAT.ts instantiate.
 */
import type { PacketContext } from '../conntrack/context';
import type { NatRange } from '../conntrack/nat';
import { NAT_MANIP_DST, NAT_MANIP_SRC, NF_NAT_RANGE_PERSISTENT, NF_NAT_RANGE_PROTO_RANDOM, NF_NAT_RANGE_PROTO_RANDOM_FULLY } from '../conntrack/nat';
import { NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN, NF_INET_POST_ROUTING } from '../queue/layout';
import { checkPorts, emptyRange, formatNatRange, formatPorts, parseNatTo, parsePorts, toNatRange, type NatRangeState } from './nat-range';
import type { CompiledTarget, TargetModule } from './types';

/**
 * HOOK2MANIP for the hook the nat chain runs at: SRC at POSTROUTING and INPUT, DST at
 * PREROUTING and OUTPUT (ctx.natHook: the hook of the nat chain being walked).
 */
export function hookManip(natHook: number): number {
  return natHook === NF_INET_POST_ROUTING || natHook === NF_INET_LOCAL_IN ? NAT_MANIP_SRC : NAT_MANIP_DST;
}

/** Binds the connection within a fixed range (SNAT, DNAT). */
export class BindAction implements CompiledTarget {
  constructor(private readonly range: NatRange) {}
  run(ctx: PacketContext, now: number): number {
    return bind(ctx, this.range, now);
  }
}

/** nf_nat_setup_info for the packet's entry with the manip of the nat chain being walked. */
export function bind(ctx: PacketContext, range: NatRange, now: number): number {
  const conn = ctx.conn;
  if (ctx.entry < 0 || conn === null) return NF_ACCEPT;
  return conn.natSetup(ctx.entry, range, hookManip(ctx.natHook), now) ? NF_ACCEPT : NF_DROP;
}

export interface NatToState {
  range: NatRangeState;
  set: boolean;
  random: boolean;
  fully: boolean;
  persistent: boolean;
}

/** SNAT / DNAT: `--OPT ADDR[-ADDR][:PORT[-PORT]]` and the flags the target has. */
export function natToTarget(name: string, opt: string, hooks: readonly string[], randomFully: boolean): TargetModule<NatToState> {
  return {
    name,
    tables: ['nat'],
    hooks,
    options: [
      { name: opt, invertible: false, args: 1 },
      { name: 'random', invertible: false, args: 0 },
      ...(randomFully ? [{ name: 'random-fully', invertible: false, args: 0 as const }] : []),
      { name: 'persistent', invertible: false, args: 0 },
    ],
    create: () => ({ range: emptyRange(), set: false, random: false, fully: false, persistent: false }),
    parse(s, o, args, _inv, optTok, env) {
      if (o === opt) {
        if (s.set) return env.error(optTok, `${name}: option "--${opt}" can only be used once.`);
        s.set = true;
        parseNatTo(args[0], env, s.range);
      } else if (o === 'random') s.random = true;
      else if (o === 'random-fully') s.fully = true;
      else s.persistent = true;
    },
    finalize(s, rule, at, env) {
      if (!s.set) return env.error(at, `${name}: option "--${opt}" must be specified`);
      checkPorts(s.range, rule, at, env);
    },
    familyOf: (s) => s.range.family,
    save(s) {
      const out = [`--${opt}`, formatNatRange(s.range)];
      if (s.random) out.push('--random');
      if (s.fully) out.push('--random-fully');
      if (s.persistent) out.push('--persistent');
      return out;
    },
    compile: (s) => new BindAction(toNatRange(s.range, natFlags(s.random, s.fully, s.persistent))),
  };
}

export function natFlags(random: boolean, fully: boolean, persistent: boolean): number {
  return (random ? NF_NAT_RANGE_PROTO_RANDOM : 0) | (fully ? NF_NAT_RANGE_PROTO_RANDOM_FULLY : 0) | (persistent ? NF_NAT_RANGE_PERSISTENT : 0);
}

export interface ToPortsState {
  range: NatRangeState;
  random: boolean;
  fully: boolean;
}

/** MASQUERADE / REDIRECT: `--to-ports PORT[-PORT]`, `--random` (and MASQUERADE's `--random-fully`). */
export function toPortsOptions(name: string, randomFully: boolean): Omit<TargetModule<ToPortsState>, 'name' | 'tables' | 'hooks' | 'compile'> {
  return {
    options: [
      { name: 'to-ports', invertible: false, args: 1 },
      { name: 'random', invertible: false, args: 0 },
      ...(randomFully ? [{ name: 'random-fully', invertible: false, args: 0 as const }] : []),
    ],
    create: () => ({ range: emptyRange(), random: false, fully: false }),
    parse(s, opt, args, _inv, optTok, env) {
      if (opt === 'to-ports') {
        if (s.range.portTok) return env.error(optTok, `${name}: option "--to-ports" can only be used once.`);
        parsePorts(args[0].text, args[0], env, s.range);
      } else if (opt === 'random') s.random = true;
      else s.fully = true;
    },
    finalize(s, rule, at, env) {
      checkPorts(s.range, rule, at, env);
    },
    familyOf: () => 0,
    save(s) {
      const out: string[] = [];
      if (s.range.portTok) out.push('--to-ports', formatPorts(s.range));
      if (s.random) out.push('--random');
      if (s.fully) out.push('--random-fully');
      return out;
    },
  };
}

/** The compiled range of a --to-ports target. */
export function toPortsRange(s: ToPortsState): NatRange {
  return toNatRange(s.range, natFlags(s.random, s.fully, false));
}
