#!/usr/bin/env bash
# The test suite, as root on a machine prepared by scripts/install-deps.sh:
#  1. swift test: unit tests, libvirt logic on test:///default, and the channel with real `ionlab serve` and
#     `ionlab-agent` processes over 127.0.0.1. Each integration test has a time limit, and the whole run is
#     capped, so a hang fails instead of stalling CI. The dashboard's browser tests run after the others.
#  2. scripts/test-guest-scripts.sh: shellcheck on the guest-side scripts, and each script run on its own
#     against stubbed system commands; scripts/check-architecture.py: docs/ARCHITECTURE.md's table of targets
#     against Package.swift; scripts/check-completions.sh: the shell completions, used in bash, zsh and fish;
#     scripts/man-pages.sh --check: docs/man against what the commands say; scripts/check-json-docs.py: every
#     --json output described in docs/json.md.
#  3. scripts/fuzz.sh: libFuzzer on the frame decoder and multiplexer, the message decoder and the tree writer,
#     briefly ($IONLAB_FUZZ_SECONDS each, 15 by default). The corpus is also replayed by `swift test`.
#  4. scripts/e2e-vm.sh: a real TCG VM provisioned through libvirt, its agent injected by cloud-init, inside a
#     loopback-only network namespace. IONLAB_SKIP_VM=1 skips it (for quick runs; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
timeout --kill-after=30 "${IONLAB_TEST_TIMEOUT:-1800}" swift test --skip-build --skip DashboardTests
# The dashboard's tests on their own: a headless Chromium takes most of the 2 cores for its 15 s, and beside
# the parallel suites it starved their controllers of the CPU to start within their limits.
timeout --kill-after=30 600 swift test --skip-build --filter DashboardTests
# The guest images (cached by their inputs) build in the background from here: debootstrap waits mostly on the
# archive and the disk, beside the checks, the fuzz build and the agent's release build, and not beside the
# suites above, whose time limits a busy machine could break. The real-VM test waits for them.
images_log=.build/images.log
if [[ "${IONLAB_SKIP_VM:-}" != 1 ]]; then
  { scripts/build-test-image.sh && scripts/build-desktop-image.sh; } >"$images_log" 2>&1 &
  images_pid=$!
  # A run that fails early still lets them finish, so the next run does not build them beside it.
  trap 'wait "$images_pid" 2>/dev/null || true' EXIT
fi
timeout --kill-after=30 300 scripts/test-guest-scripts.sh
scripts/check-architecture.py
timeout --kill-after=30 120 scripts/check-completions.sh
timeout --kill-after=30 600 scripts/man-pages.sh --check
scripts/check-json-docs.py
timeout --kill-after=30 900 scripts/fuzz.sh "${IONLAB_FUZZ_SECONDS:-15}"
if [[ "${IONLAB_SKIP_VM:-}" == 1 ]]; then
  echo "test: IONLAB_SKIP_VM=1: the real-VM end-to-end test was skipped"
else
  agent-dist/build.sh >/dev/null  # the agent's release build, also beside the images
  wait "$images_pid" || { echo "test: the guest images did not build; the end of $images_log:" >&2; tail -n 30 "$images_log" >&2; exit 1; }
  timeout --kill-after=30 2700 scripts/e2e-vm.sh
fi
