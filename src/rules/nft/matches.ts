/** The match modules only the nftables front end makes (not reachable with -m NAME). */
import type { MatchModule, TargetModule } from '../types';
import { nftCtHelper } from './ct-helper';
import { nftConcat } from './concat';
import { nftLimit } from './limit';
import { lookupMatch } from './lookup';

/** The target modules only the nftables front end makes (not reachable with -j NAME). */
export const NFT_TARGETS: Record<string, TargetModule> = {
  'nft-ct-helper': nftCtHelper,
};

export const NFT_MATCHES: Record<string, MatchModule> = {
  'nft-lookup': lookupMatch,
  'nft-limit': nftLimit,
  'nft-concat': nftConcat,
};
