/** enum ip_conntrack_info (include/uapi/linux/netfilter/nf_conntrack_common.h) */
export const IP_CT_ESTABLISHED = 0;
export const IP_CT_RELATED = 1;
export const IP_CT_NEW = 2;
export const IP_CT_ESTABLISHED_REPLY = 3;
export const IP_CT_RELATED_REPLY = 4;
export const IP_CT_UNTRACKED = 7;
/** nfqwall-only: the packet has no conntrack (INVALID). */
export const IP_CT_NONE = 8;

/** Direction of a tuple / packet in its entry. */
export const DIR_ORIGINAL = 0;
export const DIR_REPLY = 1;

/** ctstate bits as xt_conntrack sees them (XT_CONNTRACK_STATE_BIT etc.). */
export const CTSTATE_INVALID = 1 << 0;
export const CTSTATE_ESTABLISHED = 1 << 1;
export const CTSTATE_RELATED = 1 << 2;
export const CTSTATE_NEW = 1 << 3;
export const CTSTATE_SNAT = 0x100;
export const CTSTATE_DNAT = 0x200;
export const CTSTATE_UNTRACKED = 0x400;

/** ctinfo → ctstate bit (IP_CT_NONE → INVALID). */
export function ctstateBit(ctinfo: number): number {
  if (ctinfo === IP_CT_UNTRACKED) return CTSTATE_UNTRACKED;
  if (ctinfo === IP_CT_NONE) return CTSTATE_INVALID;
  return 1 << ((ctinfo % 3) + 1);
}

/** IPS_* status bits (include/uapi/linux/netfilter/nf_conntrack_common.h). */
export const IPS_EXPECTED = 1 << 0;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
/** both NAT kinds: the REPLY tuple is stored (ConnTable.nat), it is not the inverted ORIG tuple */
export const IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT;
export const IPS_SRC_NAT_DONE = 1 << 7;
export const IPS_DST_NAT_DONE = 1 << 8;
export const IPS_NAT_DONE_MASK = IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
export const IPS_DYING = 1 << 9;
export const IPS_FIXED_TIMEOUT = 1 << 10;
export const IPS_HELPER = 1 << 13;

/**
 * What a protocol tracker's packet() returns (the kernel's NF_ACCEPT / -NF_ACCEPT /
 * -NF_DROP / -NF_REPEAT, plus TCP's "ignored" which is accepted without touching
 * state or timeout).
 */
export const PKT_ACCEPT = 0;
export const PKT_INVALID = 1; // detach conntrack, stat invalid++, packet goes on as INVALID
export const PKT_DROP = 2; // as INVALID plus stat drop++ and verdict DROP
export const PKT_REPEAT = 3; // entry was killed: look up / create again
export const PKT_IGNORE = 4; // accepted with the entry, no state/timeout change
