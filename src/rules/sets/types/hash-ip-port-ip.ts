/** hash:ip,port,ip (ip_set_hash_ipportip.c): address, protocol:port and a second address. */
import { hashType } from '../hash';

export const hashIpPortIp = hashType({ name: 'hash:ip,port,ip', revision: 6, dims: ['ip', 'port', 'ip'] });
