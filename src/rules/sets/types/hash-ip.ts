/** hash:ip (ip_set_hash_ip.c): addresses, optionally masked to a netmask. */
import { hashType } from '../hash';

export const hashIp = hashType({ name: 'hash:ip', revision: 6, dims: ['ip'], netmask: true });
