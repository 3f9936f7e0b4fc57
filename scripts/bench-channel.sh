#!/usr/bin/env bash
# The channel benchmark (DESIGN.md §7): ionlab exec and cp beside OpenSSH on loopback, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
for product in ionlab ionlab-agent ionlab-bench; do
  swift build -c release --static-swift-stdlib --product "$product"
done
exec "$(swift build -c release --static-swift-stdlib --show-bin-path)/ionlab-bench" channel "$@"
