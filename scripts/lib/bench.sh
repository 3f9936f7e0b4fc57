# Shared by the benchmark scripts (source it). bench_build installs what the benchmarks need, raises the
# open-file limit (each simulated agent or attacker is a socket in the bench and one in the controller, which
# inherits the limit) and builds the release binaries; bench_run SUBCOMMAND [ARGS] then runs
# `ionlab-bench SUBCOMMAND ARGS`, and bench_exec does both, replacing the shell.
bench_build() {
  scripts/install-deps.sh
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  local product
  for product in ionlab ionlab-controller ionlab-agent ionlab-bench; do
    swift build -c release --static-swift-stdlib --product "$product"
  done
}

bench_run() {
  "$(swift build -c release --static-swift-stdlib --show-bin-path)/ionlab-bench" "$@"
}

bench_exec() {
  bench_build
  exec "$(swift build -c release --static-swift-stdlib --show-bin-path)/ionlab-bench" "$@"
}
