#!/usr/bin/env bash
# The test suite: unit tests, libvirt-free channel tests with real `ionlab serve` and `ionlab-agent`
# processes over 127.0.0.1. Run from anywhere; needs the packages from scripts/install-deps.sh.
# Each integration test has a time limit; the whole run is capped so a hang fails instead of stalling CI.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
timeout --kill-after=30 "${IONLAB_TEST_TIMEOUT:-1800}" swift test --skip-build
