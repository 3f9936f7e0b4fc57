#!/usr/bin/env bash
# The unauthenticated-pressure benchmark: 100 enrolled (simulated) agents keep running commands while 1,000
# slow unauthenticated connections press on a release controller on loopback, reopened as they are dropped.
#   scripts/bench-slowloris.sh [--agents N] [--attackers N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
bench_exec slowloris "$@"
