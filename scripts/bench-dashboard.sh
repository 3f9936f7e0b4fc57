#!/usr/bin/env bash
# The dashboard benchmark: one controller with 1,000 VMs (libvirt test host) and 1,000 simulated agents,
# its page, /metrics and event stream measured from 20 open pages; release build, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
bench_exec dashboard "$@"
