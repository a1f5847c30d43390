#!/usr/bin/env bash
# The lab demo, set-up included: a client/gateway/server lab in network namespaces with
# nfqwall filtering on the gateway. Ctrl-C tears it down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/nfqwall.js lab "$@"
