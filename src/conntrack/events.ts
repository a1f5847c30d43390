/**
 * What the table tells a listener about its confirmed entries, as the kernel's conntrack
 * events tell ctnetlink's listeners (nf_conntrack_ecache.c: IPCT_NEW when an entry is
 * confirmed, IPCT_PROTOINFO / IPCT_STATUS when its protocol state or status changes,
 * IPCT_DESTROY when it goes). State sync (src/sync/) listens. The calls come from the
 * per-packet path: a listener records what it needs and returns, without allocating or I/O.
 */
export interface ConntrackEvents {
  /** entry e was confirmed (by its first accepted packet) or imported */
  created(e: number): void;
  /** entry e's tracker state or its SEEN_REPLY / ASSURED bits changed */
  changed(e: number): void;
  /** confirmed entry e is about to be freed (still readable) */
  destroyed(e: number): void;
}
