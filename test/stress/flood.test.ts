/**
 * Stress variant of test/e2e/flood.test.ts: the same lab floods at 40× nf_conntrack_max
 * new flows per flood (six floods, ≈ 61 000 crafted packets). npm run stress.
 */
process.env.NFQWALL_FLOOD_MULT = process.env.NFQWALL_FLOOD_MULT ?? '40';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../e2e/flood.test.ts');
