#!/usr/bin/env bash
# The port forward benchmark: ionlab forward beside ssh -L on loopback, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
bench_exec forward "$@"
