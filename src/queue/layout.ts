/**
 * Layout of one batch as the native addon hands it to JavaScript.
 *
 * Packet bytes live in one shared Uint8Array (`batch.data`); per packet there is
 * one row of INDEX_STRIDE Uint32 words in `batch.index`. JavaScript answers by
 * writing one word per packet into `batch.verdicts` (and optionally a mark into
 * `batch.marks` with VERDICT_SET_MARK, or new packet bytes in place with
 * VERDICT_SET_PAYLOAD). Nothing here allocates per packet.
 */
export const INDEX_STRIDE = 16;

/** Word offsets inside a packet's index row. */
export const IX_ID = 0; // NFQUEUE packet id
export const IX_HOOK = 1; // NF_INET_* hook the packet was queued from
export const IX_FAMILY = 2; // nfgen_family: 2 (AF_INET) or 10 (AF_INET6)
export const IX_INDEV = 3; // input ifindex, 0 if none
export const IX_OUTDEV = 4; // output ifindex, 0 if none
export const IX_MARK = 5; // skb mark
export const IX_OFFSET = 6; // byte offset of the packet (IP header) in batch.data
export const IX_CAPLEN = 7; // bytes copied into batch.data
export const IX_ORIGLEN = 8; // length of the packet on the wire (>= caplen)
export const IX_FLAGS = 9; // PKTF_* bits
export const IX_QUEUE = 10; // queue number
export const IX_UID = 11; // NFQA_UID: fsuid of the sending socket's file (PKTF_UID_GID)
export const IX_GID = 12; // NFQA_GID: its fsgid
export const IX_HWADDR_HI = 13; // NFQA_HWADDR: bytes 0-3 of the link-layer source address (PKTF_HWADDR)
export const IX_HWADDR_LO = 14; // bytes 4-5 (low 16 bits)
/**
 * Bytes from IX_OFFSET a rewritten packet may occupy in batch.data (>= IX_CAPLEN): the rest of
 * its receive slot, at least 8 KiB minus the netlink headers beyond the copy range. A handler
 * that answers VERDICT_SET_PAYLOAD may write the new packet's length into IX_CAPLEN, up to this.
 */
export const IX_ROOM = 15;

/** IX_FLAGS bits */
export const PKTF_CSUM_NOT_READY = 1 << 0; // NFQA_SKB_CSUMNOTREADY: L4 checksum not computed yet (local/GSO)
export const PKTF_GSO = 1 << 1; // NFQA_SKB_GSO: a GSO super-packet
export const PKTF_TRUNCATED = 1 << 2; // caplen < origlen
/**
 * No NFQA_SKB_CSUM_NOTVERIFIED (nor CSUMNOTREADY): the kernel or the NIC verified the L4
 * checksum (skb_csum_unnecessary), so nf_ip_checksum would not look at it again. Never set
 * for packets that did not come from the queue (replay, tests): those are verified.
 */
export const PKTF_CSUM_VERIFIED = 1 << 3;
/** NFQA_UID/NFQA_GID present: a locally generated packet of a full socket with a file (nfqnl_put_sk_uidgid). */
export const PKTF_UID_GID = 1 << 4;
/** NFQA_HWADDR present with a 6-byte address: the Ethernet source of a received packet. */
export const PKTF_HWADDR = 1 << 5;

/** Netfilter hooks (include/uapi/linux/netfilter.h) */
export const NF_INET_PRE_ROUTING = 0;
export const NF_INET_LOCAL_IN = 1;
export const NF_INET_FORWARD = 2;
export const NF_INET_LOCAL_OUT = 3;
export const NF_INET_POST_ROUTING = 4;

/** Verdicts (include/uapi/linux/netfilter.h) */
export const NF_DROP = 0;
export const NF_ACCEPT = 1;
/** OR-ed into a verdict word: also set the packet mark from batch.marks[i]. */
export const VERDICT_SET_MARK = 1 << 16;
/**
 * OR-ed into an ACCEPT: the packet's bytes in batch.data from IX_OFFSET were rewritten; IX_CAPLEN
 * now says how many there are (the handler may have grown or shrunk the packet, within IX_ROOM
 * and 20..65531 bytes, with its IP total / payload length updated). The addon sends them back
 * (NFQA_PAYLOAD) and the kernel replaces the packet with them (nfqnl_mangle trims or extends the
 * skb, and marks it CHECKSUM_NONE: the handler writes complete checksums). A GSO packet may
 * change length too: the kernel segments the new one with the same gso_size and computes each
 * segment's checksum (tcp4/tcp6_gso_segment on a CHECKSUM_NONE skb). Refused (badVerdicts, the
 * error verdict) for a PKTF_TRUNCATED packet, which the kernel would cut to what we hold, and for
 * a length outside those bounds; ignored with DROP.
 */
export const VERDICT_SET_PAYLOAD = 1 << 17;
export const VERDICT_MASK = 0xffff;

export const AF_INET = 2;
export const AF_INET6 = 10;
