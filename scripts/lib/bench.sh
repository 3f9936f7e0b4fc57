# Shared by the benchmark scripts (source it): bench_exec SUBCOMMAND [ARGS] installs what the benchmarks need,
# raises the open-file limit (each simulated agent or attacker is a socket in the bench and one in the
# controller, which inherits the limit), builds the release binaries and runs `ionlab-bench SUBCOMMAND ARGS`.
bench_exec() {
  scripts/install-deps.sh
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  local product
  for product in ionlab ionlab-controller ionlab-agent ionlab-bench; do
    swift build -c release --static-swift-stdlib --product "$product"
  done
  exec "$(swift build -c release --static-swift-stdlib --show-bin-path)/ionlab-bench" "$@"
}
