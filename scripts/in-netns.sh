#!/usr/bin/env bash
# Runs a command inside a fresh network namespace that holds only loopback, with virtlogd and libvirtd
# started inside it. Guests under QEMU user-mode networking reach the namespace's own
# 127.0.0.1 as 10.0.2.2, and nothing can leave the namespace. The daemons are stopped, by PID, on exit.
#   scripts/in-netns.sh ionlab backends
set -euo pipefail
if [[ "${IONLAB_IN_NETNS:-}" != 1 ]]; then
  exec unshare --net env IONLAB_IN_NETNS=1 "$0" "$@"
fi
fail() { echo "in-netns: $*" >&2; exit 1; }
[[ $(ip -o link show | wc -l) -eq 1 ]] || fail "expected a namespace holding only lo"
ip link set lo up

# libvirt probes /dev/kvm as its qemu user; 0600 makes every define take about 60 s.
if [[ -c /dev/kvm ]]; then chgrp kvm /dev/kvm && chmod 0660 /dev/kvm; fi
# Never start libvirt's NAT network: no bridges, here or anywhere.
rm -f /etc/libvirt/qemu/networks/autostart/default.xml

if pgrep -x libvirtd >/dev/null || pgrep -x virtqemud >/dev/null; then
  fail "a libvirt daemon is already running and owns /run/libvirt; stop it first (it must run inside this namespace)"
fi
pids=()
# The domains go first: every one belongs to this namespace's libvirtd (none other runs, checked above), and
# their QEMU processes would outlive the daemon (a timed-out real-VM test once left three desktops running).
cleanup() {
  local domain
  if [[ -S /run/libvirt/libvirt-sock ]]; then
    for domain in $(virsh -q -c qemu:///system list --name 2>/dev/null); do
      virsh -q -c qemu:///system destroy "$domain" >/dev/null 2>&1 || true
    done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
}
trap cleanup EXIT
run_dir=$(mktemp -d /tmp/ionlab-netns.XXXXXX)
pgrep -x virtlogd >/dev/null || { virtlogd --daemon --pid-file "$run_dir/virtlogd.pid"; sleep 0.2; pids+=("$(cat "$run_dir/virtlogd.pid")"); }
libvirtd --daemon --pid-file "$run_dir/libvirtd.pid"
for _ in $(seq 100); do [[ -S /run/libvirt/libvirt-sock && -s "$run_dir/libvirtd.pid" ]] && break; sleep 0.1; done
[[ -s "$run_dir/libvirtd.pid" ]] || fail "libvirtd did not start"
pids=("$(cat "$run_dir/libvirtd.pid")" "${pids[@]}")
"$@"
