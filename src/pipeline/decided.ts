/** Where the verdict of a packet came from (Firewall.decidedBy: counters and replay). */
export const DECIDED_BY_RAW = 0;
export const DECIDED_BY_CONNTRACK = 1;
export const DECIDED_BY_FILTER = 2;
export const DECIDED_BY_HELPER = 3;
/** a nat chain's DROP, or NAT found no tuple / could not rewrite the packet */
export const DECIDED_BY_NAT = 4;
