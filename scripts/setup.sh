#!/usr/bin/env bash
# Installs everything nfqwall needs on a Debian machine with Node 20 (run as root):
# Debian packages, npm dependencies (npm ci), the native addon and the TypeScript build.
# Idempotent: what is already there is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential nftables ipset python3 pkg-config libnetfilter-queue-dev libmnl-dev libnfnetlink-dev
      iptables conntrack iproute2 procps kmod util-linux vsftpd lftp iperf3 tcpdump socat python3-scapy
      iputils-ping curl conntrackd keepalived)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  # Packages such as vsftpd, conntrackd and keepalived must not start services in the root namespace:
  # tests start their own.
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_created=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$policy_created" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
echo "setup: building the native addon and TypeScript"
npm run --silent build
