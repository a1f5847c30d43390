/** The match modules only the nftables front end makes (not reachable with -m NAME). */
import type { MatchModule } from '../types';
import { nftConcat } from './concat';
import { nftLimit } from './limit';
import { lookupMatch } from './lookup';

export const NFT_MATCHES: Record<string, MatchModule> = {
  'nft-lookup': lookupMatch,
  'nft-limit': nftLimit,
  'nft-concat': nftConcat,
};
