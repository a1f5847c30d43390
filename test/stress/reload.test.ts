/**
 * Stress variant of test/e2e/reload.test.ts: 100 reloads alternating good and bad rule files
 * (SIGHUP, control socket, CLI) under sustained traffic (npm run stress).
 */
process.env.NFQWALL_RELOADS = process.env.NFQWALL_RELOADS ?? '100';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../e2e/reload.test.ts');
