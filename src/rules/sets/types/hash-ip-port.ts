/** hash:ip,port (ip_set_hash_ipport.c): address and protocol:port. */
import { hashType } from '../hash';

export const hashIpPort = hashType({ name: 'hash:ip,port', revision: 7, dims: ['ip', 'port'] });
