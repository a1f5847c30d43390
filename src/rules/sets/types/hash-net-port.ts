/** hash:net,port (ip_set_hash_netport.c): network and protocol:port. */
import { hashType } from '../hash';

export const hashNetPort = hashType({ name: 'hash:net,port', revision: 8, dims: ['net', 'port'] });
