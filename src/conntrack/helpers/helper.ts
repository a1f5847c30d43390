import type { PacketView } from '../../packet/view';
import type { TunableValues } from '../sysctl';

/**
 * What the conntrack core offers a helper (the part of nf_conntrack_helper.c /
 * nf_conntrack_expect.c a nf_conntrack_<helper>.c file calls).
 */
export interface HelperHost {
  readonly tun: TunableValues;
  /** Address family of entry e: 4 or 6. */
  family(e: number): number;
  /**
   * Copy the source (which = 0) or destination (which = 1) address of the tuple of
   * direction dir of entry e into out (u32 words, IPv4 in word 0).
   */
  tupleAddr(e: number, dir: number, which: number, out: Uint32Array): void;
  /** Source (which = 0) or destination (which = 1) port of the tuple of direction dir. */
  tuplePort(e: number, dir: number, which: number): number;
  /**
   * Create an expectation for a future connection of master e (nf_ct_expect_related):
   * protocol `proto`, exact source address `src` (null = any), source port `sport`
   * (-1 = any), destination `dst`:`dport`. Applies the helper's max_expected and
   * timeout (`policy`) and nf_conntrack_expect_max. Returns EXP_OK or the EXP_* refusal
   * (expect.ts: the kernel's errno; the helper then drops the packet, as the kernel does).
   * natDir >= 0: the expectation of a NATed master, its connection coming from direction
   * natDir and announced at port savedPort (exp->dir, exp->saved_proto, which
   * nf_nat_follow_master binds the new entry from).
   */
  expect(
    e: number,
    proto: number,
    src: Uint32Array | null,
    sport: number,
    dst: Uint32Array,
    dport: number,
    policy: { maxExpected: number; timeoutSec: number },
    now: number,
    natDir?: number,
    savedPort?: number,
  ): number;
  /** nf_ct_unexpect_related of the expectation the last successful expect() added. */
  unexpectLast(): void;
  /** Whether entry e is NATed (IPS_SRC_NAT or IPS_DST_NAT). */
  natted(e: number): boolean;
  /**
   * nf_nat_mangle_tcp_packet on the packet being helped (entry e, direction dir): replace
   * buf[matchOff, +matchLen) with text[0, textLen), moving what follows; the IP length, the
   * IPv4 header checksum and the TCP checksum updated, the sequence offset recorded
   * (nf_ct_seqadj_set) when the length changed, the view parsed again. False when it cannot
   * (a truncated copy, no room in the queue's slot, over 65535 bytes): the packet is dropped.
   */
  mangleTcp(e: number, dir: number, matchOff: number, matchLen: number, text: Uint8Array, textLen: number): boolean;
  /** Helper debug/diagnostic log (e.g. "partial matching of `PORT'"). */
  log(msg: string): void;
}

/**
 * A connection-tracking helper, like the kernel's struct nf_conntrack_helper.
 * Registered by name; attached to new entries by a raw-table `-j CT --helper NAME`.
 */
export interface ConntrackHelper {
  /** 'ftp' */
  readonly name: string;
  /** L4 protocol the helper is for (6 for FTP). */
  readonly protonum: number;
  /** Grow per-entry helper state to hold `capacity` entries. */
  resize(capacity: number): void;
  /**
   * Optional: called instead of resize() with the table's capacity, which then only bounds the
   * helper's own on-demand growth of its per-entry state (init / help).
   */
  reserve?(capacity: number): void;
  /** A new entry got this helper: reset its per-entry state. */
  init(e: number): void;
  /**
   * A packet of entry e was accepted (called at confirmation time, like the kernel
   * calls helpers from nf_confirm). dir 0/1, ctinfo IP_CT_*. Returns PKT_ACCEPT or
   * PKT_DROP (the packet is then dropped).
   */
  help(host: HelperHost, e: number, dir: number, ctinfo: number, pkt: PacketView, now: number): number;
  /** The longest life (seconds) under tun of an expectation this helper creates; -1 if it creates none. */
  expectTimeout(tun: TunableValues): number;
}
