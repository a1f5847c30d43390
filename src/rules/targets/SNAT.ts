/** -j SNAT (libxt_NAT.c, xt_nat.c): the source within --to-source; nat POSTROUTING and INPUT. */
import { natToTarget } from '../nat-action';

export const snatTarget = natToTarget('SNAT', 'to-source', ['POSTROUTING', 'INPUT'], true);
