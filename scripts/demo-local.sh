#!/usr/bin/env bash
# The main job on a fresh machine: install the packages, build ionlab, its agent bundle and the test image
# (once), then, inside a loopback-only network namespace with its own libvirtd, create a VM whose agent
# connects back over mutual TLS, run commands in it through the agent, and destroy it. Run as root.
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
  "$LAB_IONLAB" vm destroy demo1 --state-dir "$state" >/dev/null 2>&1 || true
  lab_stop
  rm -rf "$state"
}
trap cleanup EXIT
lab_controller "$state" "${IONLAB_DEMO_PORT:-17443}" ionlab-demo
export IONLAB_STATE_DIR=$state
ionlab() { "$LAB_IONLAB" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "ionlab backends   (kvm or TCG: verified by booting a probe guest)"
ionlab backends
step "ionlab vm create demo1 --image bookworm-test   (overlay, seed with the agent, domain; waits for the agent)"
ionlab vm create demo1 --image bookworm-test --memory 512
step "ionlab agents"
ionlab agents
step "ionlab exec demo1 -- sh -c 'uname -a; grep PRETTY /etc/os-release; systemctl is-active ionlab-agent'"
ionlab exec demo1 -- sh -c 'uname -a; grep PRETTY /etc/os-release; systemctl is-active ionlab-agent'
step "ionlab vm list"
ionlab vm list
step "ionlab vm destroy demo1   (domain, volumes, seed and console log removed; certificate revoked)"
ionlab vm destroy demo1
