#!/usr/bin/env bash
# The test suite: unit tests, libvirt-free channel tests with real `ionlab serve` and `ionlab-agent`
# processes over 127.0.0.1. Run from anywhere; needs the packages from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build
