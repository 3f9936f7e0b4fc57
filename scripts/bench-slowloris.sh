#!/usr/bin/env bash
# The unauthenticated-pressure benchmark: 100 enrolled (simulated) agents keep running commands while 1,000
# slow unauthenticated connections press on a release controller on loopback, reopened as they are dropped.
#   scripts/bench-slowloris.sh [--agents N] [--attackers N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for product in ionlab ionlab-agent ionlab-bench; do
  swift build -c release --static-swift-stdlib --product "$product"
done
exec "$(swift build -c release --static-swift-stdlib --show-bin-path)/ionlab-bench" slowloris "$@"
