/** hash:net (ip_set_hash_net.c): networks of any prefix length, most specific first; nomatch elements carve exceptions. */
import { hashType } from '../hash';

export const hashNet = hashType({ name: 'hash:net', revision: 7, dims: ['net'] });
