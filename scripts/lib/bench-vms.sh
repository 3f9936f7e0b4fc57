#!/usr/bin/env bash
# The real-VM rows of scripts/bench-targets.sh, inside the loopback-only namespace (scripts/in-netns.sh):
# `vm create` until ready, three times one after another (the median counts), the agent's idle RSS in the
# guest, and the 2-VM demo from `up` to verified. Writes them into the JSON file RESULTS (merged).
#   scripts/in-netns.sh scripts/lib/bench-vms.sh RESULTS
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/lab.sh
LAB_NAME=bench-vms
results=${1:?usage: bench-vms.sh RESULTS}
state=$(mktemp -d /tmp/ionlab-bench-vms.XXXXXX)
cleanup() {
  for vm in bv1 bv2 bv3; do IONLAB_STATE_DIR=$state "$LAB_IONLAB" vm destroy "$vm" >/dev/null 2>&1 || true; done
  IONLAB_STATE_DIR=$state "$LAB_IONLAB" down demo >/dev/null 2>&1 || true
  lab_stop
  rm -rf "$state"
}
trap cleanup EXIT
lab_controller "$state" 17943 ionlab-bench-vms
export IONLAB_STATE_DIR=$state
ionlab() { "$LAB_IONLAB" "$@"; }
# A controller that has run a while has probed its backends: let this one finish its probe first.
until ionlab events | grep -c "controller.started" >/dev/null; do sleep 0.2; done
sleep 15

creates=()
for vm in bv1 bv2 bv3; do
  s=$(date +%s.%N)
  ionlab vm create "$vm" --image bookworm-test --memory 512 --timeout 600 >/dev/null
  creates+=("$(echo "$(date +%s.%N) - $s" | bc)")
  lab_phase "vm create $vm until ready" "$s"
  if [[ $vm == bv1 ]]; then
    sleep 20  # idle: cloud-init done, the agent only heartbeating
    memory=$(ionlab exec "$vm" -- sh -c 'grep -E "^(VmRSS|RssAnon):" /proc/$(pidof ionlab-agent)/status')
    rss=$(awk '/^VmRSS:/ { print $2 }' <<<"$memory")
    anon=$(awk '/^RssAnon:/ { print $2 }' <<<"$memory")
  fi
  ionlab vm destroy "$vm" >/dev/null
done
s=$(date +%s.%N)
ionlab demo --parallel 2 >"$state/demo.txt" || { cat "$state/demo.txt"; exit 1; }
demo=$(echo "$(date +%s.%N) - $s" | bc)
up=$(ionlab events --fleet demo --json | python3 -c '
import json, sys
from datetime import datetime
events = [json.loads(line) for line in sys.stdin if line.strip()]
def at(kind):
    return datetime.fromisoformat(next(e["time"] for e in events if e["kind"] == kind).replace("Z", "+00:00"))
print((at("fleet.complete") - at("fleet.started")).total_seconds())')
lab_phase "demo (discovery, up, summary)" "$s"
python3 - "$results" "${creates[@]}" <<PY
import json, os, statistics, sys
path, creates = sys.argv[1], [float(value) for value in sys.argv[2:]]
results = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
results.update({"vm_create_seconds": creates, "vm_create_median_seconds": statistics.median(creates),
                "agent_rss_kb": float("$rss"), "agent_rss_anon_kb": float("$anon"), "demo_up_seconds": float("$up"), "demo_wall_seconds": float("$demo")})
json.dump(results, open(path, "w"), indent=1)
PY
