#!/usr/bin/env bash
# The whole test suite, set-up included: Debian packages, npm ci, native build, then
# unit and end-to-end tests (network namespaces; needs root). Ends with node's test summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent lint
exec node scripts/run-tests.js "$@"
