/**
 * One parsed packet. A single PacketView is reused for every packet of a batch:
 * parsing writes numbers into it and allocates nothing. Addresses are 32-bit
 * words in network order read as unsigned big-endian integers (`>>> 0`):
 * IPv4 uses word 0 and leaves words 1..3 zero; IPv6 uses all four.
 */
export class PacketView {
  /** The buffer and the span of the IP packet in it (set by parsePacket). */
  buf: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** 0 = parsed fine; otherwise a Malformed.* code. Malformed packets are INVALID for conntrack. */
  malformed = 0;

  /** 4 or 6 (0 if not even the version nibble could be read). */
  ipVersion = 0;
  /** Total length per the IP header (IPv4 tot_len, IPv6 40 + payload_len), clipped to nothing. */
  ipTotalLen = 0;
  ttl = 0;
  tos = 0; // IPv4 TOS / IPv6 traffic class
  ipId = 0; // IPv4 identification (0 for IPv6 unless a fragment header)
  flowLabel = 0;
  /** IPv4: DF bit set */
  dontFragment = 0;
  /** Fragment offset in bytes (IPv4 or IPv6 fragment header); non-zero => not trackable. */
  fragOffset = 0;
  /** More-fragments flag. */
  moreFragments = 0;
  /** 1 when the packet is a fragment (IPv4 MF/offset, or IPv6 has a fragment header). */
  isFragment = 0;

  /** Layer-4 protocol number (IPv6: after skipping extension headers; 59 = no next header). */
  proto = 0;
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);

  /** Byte offset (relative to buf, not to off) of the L4 header, and bytes available from it to the end of the IP payload. */
  l4off = 0;
  l4len = 0;

  /** TCP/UDP/UDP-Lite/SCTP ports; 0 for other protocols. */
  sport = 0;
  dport = 0;

  /** TCP */
  tcpFlags = 0; // the 8 flag bits (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128)
  seq = 0; // unsigned 32-bit
  ack = 0; // unsigned 32-bit
  window = 0; // raw 16-bit window
  tcpHeaderLen = 0; // doff * 4
  /** Window-scale option value (capped at 14 like the kernel) or -1 if absent. */
  optWscale = -1;
  /** SACK-permitted option present. */
  optSackPerm = 0;
  /** MSS option value or 0. */
  optMss = 0;
  /** 1 if at least one SACK block was present; sackRight = highest right edge (modular max). */
  hasSack = 0;
  sackRight = 0;

  /** Upper-layer payload (TCP/UDP data; for others the bytes after the L4 header). Offset relative to buf. */
  payloadOff = 0;
  payloadLen = 0;

  /** UDP length field */
  udpLen = 0;

  /** ICMP / ICMPv6 */
  icmpType = 0;
  icmpCode = 0;
  icmpId = 0; // bytes 4-5 of the ICMP header, read for every type (as the kernel does)

  /** ICMP error: the embedded packet (1 when parsed). */
  hasInner = 0;
  /** 0 if the embedded packet was parsed fine, otherwise a Malformed.* code. */
  innerMalformed = 0;
  innerVersion = 0;
  innerProto = 0;
  readonly innerSrc = new Uint32Array(4);
  readonly innerDst = new Uint32Array(4);
  innerSport = 0;
  innerDport = 0;
  innerIcmpType = 0;
  innerIcmpCode = 0;
  innerIcmpId = 0;
  /** Inner packet is a non-first fragment. */
  innerFragOffset = 0;
}

const EMPTY = new Uint8Array(0);

/** Why a packet is malformed. Stable numbers: they appear in metrics and logs. */
export const Malformed = {
  NONE: 0,
  TOO_SHORT: 1, // shorter than a minimal IP header
  BAD_VERSION: 2, // version nibble not 4/6, or not the family the queue said
  BAD_IHL: 3, // IPv4 ihl < 5 or ihl*4 beyond the packet
  BAD_TOTAL_LEN: 4, // IP total length smaller than the header
  BAD_EXT_HEADER: 5, // IPv6 extension header truncated, too many, or a loop
  TRUNCATED_L4: 6, // L4 header cannot be read (ports / ICMP header missing)
  BAD_TCP_DOFF: 7, // TCP data offset < 5 or past the end
  BAD_UDP_LEN: 8, // UDP length < 8 or more than the bytes present
  BAD_TCP_OPTIONS: 9, // reserved; options are parsed tolerantly like the kernel
  BAD_INNER: 10, // ICMP error with an unreadable embedded packet
} as const;

export const MALFORMED_NAMES: readonly string[] = [
  'none',
  'too_short',
  'bad_version',
  'bad_ihl',
  'bad_total_len',
  'bad_ext_header',
  'truncated_l4',
  'bad_tcp_doff',
  'bad_udp_len',
  'bad_tcp_options',
  'bad_inner',
];

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;
