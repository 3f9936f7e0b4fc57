# Shared by scripts/demo-local.sh and scripts/e2e-vm.sh: build what a VM needs, and run a controller
# inside the loopback-only namespace of scripts/in-netns.sh. Source it; it defines functions only.

# lab_phase NAME START [END]: prints how long the phase that began at START (date +%s.%N) took, until END or now.
lab_phase() { awk -v name="${LAB_NAME:-lab}" -v phase="$1" -v start="$2" -v now="${3:-$(date +%s.%N)}" \
  'BEGIN { printf "%s: %-28s %6.1f s\n", name, phase, now - start }'; }

# lab_build [desktop]: the CLI and the controller (`ionlab serve` runs ionlab-controller beside it), the agent bundle (release, static, stripped), the cached test image (and with
# `desktop` the desktop image) and the stand-in RustDesk package.
lab_build() {
  local s
  s=$(date +%s.%N); swift build --product ionlab >/dev/null && swift build --product ionlab-controller >/dev/null; lab_phase "build ionlab" "$s"
  s=$(date +%s.%N); agent-dist/build.sh >/dev/null; lab_phase "build agent bundle" "$s"
  s=$(date +%s.%N); scripts/build-test-image.sh >/dev/null; lab_phase "test image (build or cache)" "$s"
  if [[ ${1:-} == desktop ]]; then
    s=$(date +%s.%N); scripts/build-desktop-image.sh >/dev/null; lab_phase "desktop image (build or cache)" "$s"
  fi
  scripts/build-standin-rustdesk.sh >/dev/null
}

# lab_controller STATE PORT POOL [EXTRA]: `ionlab init` in STATE listening on 127.0.0.1:PORT, with the backend
# `local` (qemu:///system, pool POOL under /var/lib/libvirt/images) and any backends in the YAML list items
# EXTRA, then `ionlab serve` in the background.
# Sets LAB_IONLAB (the binary) and LAB_SERVE_PID; the controller's log is STATE/serve.log.
lab_controller() {
  local state=$1 port=$2 pool=$3 extra=${4:-}
  LAB_IONLAB=$(swift build --show-bin-path)/ionlab
  "$LAB_IONLAB" init --state-dir "$state" --listen "127.0.0.1:$port" >/dev/null
  sed -i '/^backends:/,$d' "$state/controller.yaml"
  cat >>"$state/controller.yaml" <<YAML
backends:
  - name: local
    uri: "qemu:///system"
    pool: $pool
    pool_path: /var/lib/libvirt/images/$pool
$extra
YAML
  # LAB_HTTP=HOST:PORT also serves /metrics there (serve --http).
  "$LAB_IONLAB" serve --state-dir "$state" ${LAB_HTTP:+--http "$LAB_HTTP"} >"$state/serve.log" 2>&1 &
  LAB_SERVE_PID=$!
  for _ in $(seq 100); do "$LAB_IONLAB" agents --state-dir "$state" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "lab: the controller did not start:" >&2
  cat "$state/serve.log" >&2
  return 1
}

# lab_stop: stops the controller started by lab_controller.
lab_stop() {
  if [[ -n ${LAB_SERVE_PID:-} ]]; then
    kill "$LAB_SERVE_PID" 2>/dev/null || true
    wait "$LAB_SERVE_PID" 2>/dev/null || true
    LAB_SERVE_PID=
  fi
}
