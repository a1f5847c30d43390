/** -j HL (IPv6 hop limit): libip6t_HL.c / xt_HL.c hl_tg, the same target as -j TTL (TTL.ts) on the hop limit. */
import { hopLimitTarget } from './TTL';

export const hlTarget = hopLimitTarget('HL', 6);
