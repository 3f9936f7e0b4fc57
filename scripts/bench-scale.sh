#!/usr/bin/env bash
# The scale benchmark: one controller, thousands of simulated agents on loopback, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
bench_exec scale "$@"
