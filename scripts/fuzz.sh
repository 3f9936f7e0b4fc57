#!/usr/bin/env bash
# Fuzzes what a hostile peer feeds ionlab, with libFuzzer (swiftc -sanitize=fuzzer): the frame decoder and
# multiplexer, the message decoder with its field checks, and the tree writer. Each target runs for SECONDS
# (default 60) from the corpus in Tests/FuzzCorpus and prints its executions per second and coverage. A crash
# or a broken invariant fails the run and leaves the input in .build/fuzz/crashes; replay it with
# `.build/debug/ionlab-fuzz replay TARGET FILE`, fix, and add it to Tests/FuzzCorpus/TARGET.
#   scripts/fuzz.sh [SECONDS]      (IONLAB_FUZZ_KEEP=1 copies the inputs a run found into Tests/FuzzCorpus)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=.build/fuzz
flags=(-c release --build-path "$build" -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING -Xswiftc -parse-as-library)
s=$(date +%s)
swift build "${flags[@]}" --product ionlab-fuzz >"$build.build.log" 2>&1 || { tail -n 30 "$build.build.log" >&2; exit 1; }
echo "fuzz: built ionlab-fuzz with libFuzzer in $(( $(date +%s) - s )) s"
binary=$(swift build "${flags[@]}" --show-bin-path)/ionlab-fuzz
mkdir -p "$build/crashes"
for target in frames messages tree; do
  work=$build/corpus/$target
  mkdir -p "$work"
  for seed in Tests/FuzzCorpus/$target/*; do [[ -e $work/${seed##*/} ]] || cp "$seed" "$work/"; done
  log=$build/$target.log
  if ! IONLAB_FUZZ_TARGET=$target "$binary" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$build/crashes/$target-" "$work" >"$log" 2>&1; then
    echo "fuzz: $target FAILED; the end of its log ($log):" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  runs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
  corpus=$(find "$work" -type f | wc -l)
  printf 'fuzz: %-9s %9s runs in %ss, %6s exec/s, %s, corpus %s\n' "$target" "$runs" "$seconds" "$rate" "$cov" "$corpus"
  if [[ "${IONLAB_FUZZ_KEEP:-}" == 1 ]]; then
    for input in "$work"/*; do [[ -e Tests/FuzzCorpus/$target/${input##*/} ]] || cp "$input" Tests/FuzzCorpus/$target/; done
  fi
done
