#!/usr/bin/env bash
# The channel benchmark: ionlab exec and cp beside OpenSSH on loopback, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
bench_exec channel "$@"
