#!/usr/bin/env bash
# The main job on a fresh machine: the ionChannel demonstration (`ionlab demo`) on local VMs. It installs the
# packages, builds ionlab, its agent bundle, the test image and the STAND-IN RustDesk package (once), then,
# inside a loopback-only network namespace with its own libvirtd, runs `ionlab demo`: backends discovered,
# 2 VMs brought up in parallel, RustDesk installed and its IDs read, the FIXTURE portal built from source and
# started, all verified, the IDs shown. Then it takes the fleet down. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/lab.sh
LAB_NAME=demo

if [[ "${IONLAB_DEMO_INSIDE:-}" != 1 ]]; then
  scripts/install-deps.sh
  lab_build
  IONLAB_DEMO_INSIDE=1 exec scripts/in-netns.sh "$0"
fi

state=$(mktemp -d /tmp/ionlab-demo.XXXXXX)
cleanup() {
  "$LAB_IONLAB" down demo --state-dir "$state" >/dev/null 2>&1 || true
  lab_stop
  rm -rf "$state"
}
trap cleanup EXIT
lab_controller "$state" "${IONLAB_DEMO_PORT:-17443}" ionlab-demo
export IONLAB_STATE_DIR=$state
ionlab() { "$LAB_IONLAB" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "ionlab demo   (controller-config/fleets/demo.yaml)"
ionlab demo --parallel 2
step "ionlab facts --fleet demo"
ionlab facts --fleet demo
step "ionlab status demo"
ionlab status demo
step "ionlab down demo   (domains, volumes, seeds and console logs removed; certificates revoked)"
ionlab down demo
