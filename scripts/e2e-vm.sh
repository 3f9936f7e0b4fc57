#!/usr/bin/env bash
# The real-VM end-to-end test (DESIGN.md §6 tier 4): a TCG guest built by scripts/build-test-image.sh gets the
# agent through cloud-init and is driven through it, with no SSH. libvirtd, the controller and the guest run
# in a network namespace that holds only loopback (scripts/in-netns.sh). Prints the wall time of each phase;
# on failure, the tail of the serial console.
#   scripts/e2e-vm.sh            (as root; needs scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/lab.sh
LAB_NAME=e2e

if [[ "${IONLAB_E2E_INSIDE:-}" != 1 ]]; then
  t0=$(date +%s.%N)
  lab_build
  IONLAB_E2E_INSIDE=1 scripts/in-netns.sh "$0"
  lab_phase "total" "$t0"
  exit 0
fi

# Inside the namespace, with libvirtd running.
state=$(mktemp -d /tmp/ionlab-e2e.XXXXXX)
vm=vm1
pool=ionlab-e2e
fail() {
  echo "e2e: FAILED: $*" >&2
  if [[ -f $state/console/$vm.log ]]; then
    echo "e2e: serial console of $vm (last 40 lines):" >&2
    tail -n 40 "$state/console/$vm.log" >&2
  fi
  echo "e2e: controller log (last 20 lines):" >&2
  tail -n 20 "$state/serve.log" >&2 || true
  exit 1
}
cleanup() {
  IONLAB_STATE_DIR=$state "$LAB_IONLAB" vm destroy "$vm" >/dev/null 2>&1 || true
  lab_stop
  rm -rf "$state"
}
trap cleanup EXIT
lab_controller "$state" 17443 "$pool" '  - name: test
    uri: "test:///default"
    pool: default-pool'
export IONLAB_STATE_DIR=$state
ionlab() { "$LAB_IONLAB" "$@"; }

s=$(date +%s.%N)
ionlab backends --json >"$state/backends.json" || fail "ionlab backends: $(cat "$state/backends.json")"
grep -q '"type":"qemu","works":true' "$state/backends.json" || fail "TCG does not work: $(cat "$state/backends.json")"
grep -q '"uri":"test:\\/\\/\\/default"' "$state/backends.json" || fail "no test:///default entry: $(cat "$state/backends.json")"
ionlab backends
lab_phase "discovery" "$s"

s=$(date +%s.%N)
ionlab vm create "$vm" --image bookworm-test --memory 512 --timeout 600 || fail "vm create"
lab_phase "vm create until ready" "$s"
ionlab events >"$state/events.txt"
for kind in vm.defined vm.started vm.kernel-up vm.cloud-init vm.agent-installed agent.enrolled vm.ready; do
  grep -q "  $kind  $vm  " "$state/events.txt" || fail "no $kind event for $vm: $(cat "$state/events.txt")"
done

s=$(date +%s.%N)
release=$(ionlab exec "$vm" -- cat /etc/os-release) || fail "exec cat /etc/os-release"
grep -q '^ID=debian$' <<<"$release" || fail "not Debian's os-release: $release"
grep -q 'VERSION_CODENAME=bookworm' <<<"$release" || fail "not bookworm: $release"
lab_phase "exec cat /etc/os-release" "$s"
ionlab logs "$vm" --console >"$state/console.txt" || fail "ionlab logs --console"
grep -q "Linux version" "$state/console.txt" || fail "ionlab logs --console shows no kernel banner"
echo "e2e: agent binary $(stat -c %s agent-dist/out/ionlab-agent) bytes; in the guest:" \
  "$(ionlab exec "$vm" -- sh -c 'grep -E "VmRSS" /proc/$(pidof ionlab-agent)/status' | tr -s ' \t' ' ')"

s=$(date +%s.%N)
head -c 8M /dev/urandom >"$state/payload.bin"
ionlab cp "$state/payload.bin" "$vm:/root/payload.bin" >/dev/null || fail "cp in"
ionlab cp "$vm:/root/payload.bin" "$state/payload.back" >/dev/null || fail "cp back"
remote=$(ionlab exec "$vm" -- sha256sum /root/payload.bin | cut -d' ' -f1)
sent=$(sha256sum <"$state/payload.bin" | cut -d' ' -f1)
back=$(sha256sum <"$state/payload.back" | cut -d' ' -f1)
[[ $remote == "$sent" && $back == "$sent" ]] || fail "sha256 mismatch: sent $sent, in guest $remote, back $back"
lab_phase "cp 8 MiB in and back" "$s"

s=$(date +%s.%N)
ionlab vm destroy "$vm" || fail "vm destroy"
virsh -q -c qemu:///system list --all --name | grep -qx "$vm" && fail "domain $vm is still defined"
leftover=$(virsh -q -c qemu:///system vol-list "$pool" | grep -F "$vm" || true)
[[ -z $leftover ]] || fail "volumes left behind: $leftover"
ls "/var/lib/libvirt/images/$pool" | grep -F "$vm" && fail "files left in the pool directory"
[[ ! -e $state/console/$vm.log ]] || fail "console log left behind"
ionlab agents | grep -q "^$vm .*revoked" || fail "agent $vm not revoked: $(ionlab agents)"
[[ -z $(ionlab vm list --json | tr -d '[]') ]] || fail "vm list still shows: $(ionlab vm list)"
lab_phase "vm destroy and checks" "$s"
echo "e2e: PASS"
