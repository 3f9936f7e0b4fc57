#!/usr/bin/env bash
# The scale benchmark (DESIGN.md §7): one controller, thousands of simulated agents on loopback, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Each simulated agent is a socket in the bench and one in the controller, which inherits this limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for product in ionlab ionlab-agent ionlab-bench; do
  swift build -c release --static-swift-stdlib --product "$product"
done
exec "$(swift build -c release --static-swift-stdlib --show-bin-path)/ionlab-bench" scale "$@"
