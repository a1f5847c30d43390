/** -m hl (IPv6 hop limit): libxt_hl.c / ip6t_hl.c, the same match as -m ttl (ttl.ts) on the hop limit. */
import { hopLimitMatch } from './ttl';

export const hlMatch = hopLimitMatch('hl', 6);
