/** hash:ip,port,net (ip_set_hash_ipportnet.c): address, protocol:port and a network. */
import { hashType } from '../hash';

export const hashIpPortNet = hashType({ name: 'hash:ip,port,net', revision: 8, dims: ['ip', 'port', 'net'] });
