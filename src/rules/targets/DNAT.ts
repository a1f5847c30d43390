/** -j DNAT (libxt_NAT.c, xt_nat.c): the destination within --to-destination; nat PREROUTING and OUTPUT. */
import { natToTarget } from '../nat-action';

export const dnatTarget = natToTarget('DNAT', 'to-destination', ['PREROUTING', 'OUTPUT'], false);
