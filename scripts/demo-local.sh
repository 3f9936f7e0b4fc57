#!/usr/bin/env bash
# A tour of the channel on this machine: a controller and one agent over mutual TLS on 127.0.0.1.
# (VM provisioning arrives with the libvirt issue; until then the agent runs as a local process.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --product ionlab >/dev/null
swift build --product ionlab-agent >/dev/null
bin=$(swift build --show-bin-path)

work=$(mktemp -d /tmp/ionlab-demo.XXXXXX)
export IONLAB_STATE_DIR="$work/controller"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port=${IONLAB_DEMO_PORT:-17443}
step "ionlab init (a CA, the controller's certificate, its store)"
"$bin/ionlab" init --listen "127.0.0.1:$port"
"$bin/ionlab" serve >"$work/controller.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do "$bin/ionlab" agents >/dev/null 2>&1 && break; sleep 0.1; done
if ! kill -0 "${pids[0]}" 2>/dev/null; then cat "$work/controller.log"; exit 1; fi

step "ionlab token create local1 (a one-time token in a complete agent config)"
"$bin/ionlab" token create local1 --output "$work/local1.yaml"
"$bin/ionlab-agent" --config "$work/local1.yaml" --state-dir "$work/agent" >"$work/agent.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do "$bin/ionlab" agents 2>/dev/null | grep -q "local1.*connected" && break; sleep 0.1; done

step "ionlab agents"
"$bin/ionlab" agents

step "ionlab exec local1 -- uname -a"
"$bin/ionlab" exec local1 -- uname -a

step "ionlab exec local1 --timeout 1 -- sleep 30   (the whole process group is killed)"
"$bin/ionlab" exec local1 --timeout 1 -- sleep 30 || echo "exit status $?"

step "ionlab cp (sha256-verified, both ways)"
head -c 20M /dev/urandom >"$work/blob"
"$bin/ionlab" cp "$work/blob" "local1:$work/blob.remote"
"$bin/ionlab" cp "local1:$work/blob.remote" "$work/blob.back"
sha256sum "$work/blob" "$work/blob.back" | awk '{print $1}' | uniq -c

step "ionlab events"
"$bin/ionlab" events
