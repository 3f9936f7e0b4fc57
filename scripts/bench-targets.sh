#!/usr/bin/env bash
# Every row of the speed and size table (docs/targets.md) from one run, each beside its goal and its anchor:
# the channel benchmark (CLI and channel exec, transfers, against OpenSSH), the scale benchmark at 10,000
# agents (memory per agent, fan-out to all of them), the agent bundle's size, and the real VMs (`vm create`
# until ready three times, the agent's idle RSS, the 2-VM demo) in the loopback-only namespace. About
# 7 minutes on the 2-core machine once the binaries are built.
#   scripts/bench-targets.sh [RESULTS.json]     (as root; the measurements are kept in RESULTS.json)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
source scripts/lib/lab.sh
results=${1:-$(mktemp /tmp/ionlab-targets.XXXXXX.json)}
: >"$results"
bench_build
bench_run channel --results "$results"
bench_run scale --agents 10000 --fanout 10000 --runs 3 --results "$results"
lab_build
scripts/in-netns.sh scripts/lib/bench-vms.sh "$results"
python3 scripts/lib/targets_table.py "$results" agent-dist/out/ionlab-agent
echo "measurements: $results"
