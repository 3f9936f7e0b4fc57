#!/usr/bin/env bash
# The real-VM end-to-end test (DESIGN.md §6 tier 4): a TCG guest built by scripts/build-test-image.sh gets the
# agent through cloud-init and is driven through it, with no SSH. libvirtd, the controller and the guest run
# in a network namespace that holds only loopback (scripts/in-netns.sh). Prints the wall time of each phase;
# on failure, the tail of the serial console.
#   scripts/e2e-vm.sh            (as root; needs scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [[ "${IONLAB_E2E_INSIDE:-}" != 1 ]]; then
  t0=$(date +%s.%N)
  phase() { printf 'e2e: %-28s %6.1f s\n' "$1" "$(echo "$(date +%s.%N) - $2" | bc)"; }
  s=$(date +%s.%N); swift build --product ionlab >/dev/null; phase "build ionlab (debug)" "$s"
  s=$(date +%s.%N); agent-dist/build.sh >/dev/null; phase "build agent bundle (release)" "$s"
  s=$(date +%s.%N); scripts/build-test-image.sh >/dev/null; phase "test image (build or cache)" "$s"
  IONLAB_E2E_INSIDE=1 scripts/in-netns.sh "$0"
  phase "total" "$t0"
  exit 0
fi

# Inside the namespace, with libvirtd running.
ionlab=$(swift build --show-bin-path)/ionlab
state=$(mktemp -d /tmp/ionlab-e2e.XXXXXX)
port=17443
vm=vm1
serve_pid=
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
  "$ionlab" vm destroy "$vm" --state-dir "$state" >/dev/null 2>&1 || true
  [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT
phase() { printf 'e2e: %-28s %6.1f s\n' "$1" "$(echo "$(date +%s.%N) - $2" | bc)"; }

"$ionlab" init --state-dir "$state" --listen "127.0.0.1:$port" >/dev/null
sed -i "/^backends:/,\$d" "$state/controller.yaml"
cat >>"$state/controller.yaml" <<YAML
backends:
  - name: local
    uri: "qemu:///system"
    pool: ionlab-e2e
    pool_path: /var/lib/libvirt/images/ionlab-e2e
YAML
"$ionlab" serve --state-dir "$state" >"$state/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do "$ionlab" agents --state-dir "$state" >/dev/null 2>&1 && break; sleep 0.1; done

s=$(date +%s.%N)
"$ionlab" backends --state-dir "$state" --json >"$state/backends.json" || fail "ionlab backends"
grep -q '"type":"qemu","works":true' "$state/backends.json" || grep -q '"works":true' "$state/backends.json" || fail "no working domain type: $(cat "$state/backends.json")"
phase "discovery" "$s"

s=$(date +%s.%N)
"$ionlab" vm create "$vm" --image bookworm-test --memory 512 --state-dir "$state" --timeout 600 || fail "vm create"
phase "vm create until ready" "$s"

s=$(date +%s.%N)
release=$("$ionlab" exec "$vm" --state-dir "$state" -- cat /etc/os-release) || fail "exec cat /etc/os-release"
grep -q '^ID=debian$' <<<"$release" || fail "not Debian's os-release: $release"
grep -q 'VERSION_CODENAME=bookworm' <<<"$release" || fail "not bookworm: $release"
phase "exec cat /etc/os-release" "$s"

s=$(date +%s.%N)
head -c 8M /dev/urandom >"$state/payload.bin"
"$ionlab" cp "$state/payload.bin" "$vm:/root/payload.bin" --state-dir "$state" >/dev/null || fail "cp in"
"$ionlab" cp "$vm:/root/payload.bin" "$state/payload.back" --state-dir "$state" >/dev/null || fail "cp back"
remote=$("$ionlab" exec "$vm" --state-dir "$state" -- sha256sum /root/payload.bin | cut -d' ' -f1)
local_sum=$(sha256sum <"$state/payload.bin" | cut -d' ' -f1)
back_sum=$(sha256sum <"$state/payload.back" | cut -d' ' -f1)
[[ $remote == "$local_sum" && $back_sum == "$local_sum" ]] || fail "sha256 mismatch: sent $local_sum, in guest $remote, back $back_sum"
phase "cp 8 MiB in and back" "$s"

s=$(date +%s.%N)
"$ionlab" vm destroy "$vm" --state-dir "$state" || fail "vm destroy"
virsh -q -c qemu:///system list --all --name | grep -qx "$vm" && fail "domain $vm is still defined"
leftover=$(virsh -q -c qemu:///system vol-list ionlab-e2e | grep -F "$vm" || true)
[[ -z $leftover ]] || fail "volumes left behind: $leftover"
[[ ! -e $state/console/$vm.log ]] || fail "console log left behind"
ls /var/lib/libvirt/images/ionlab-e2e | grep -F "$vm" && fail "files left in the pool directory"
"$ionlab" agents --state-dir "$state" | grep -q "^$vm .*revoked" || fail "agent $vm not revoked: $("$ionlab" agents --state-dir "$state")"
phase "vm destroy and checks" "$s"
echo "e2e: PASS"
