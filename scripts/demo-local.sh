#!/usr/bin/env bash
# The main job on a fresh machine: the ionChannel demonstration on local VMs, the desktop one by default.
#   scripts/demo-local.sh              # `ionlab demo --desktop`: 2 Wayland desktops (sway), each with RustDesk (the
#                                      # STAND-IN package), a portal backend built from source and run as the desktop
#                                      # user's service (the FIXTURE), the portal in use (ScreenCast frames against the
#                                      # hypervisor's screen, a marker typed through RemoteDesktop and read by OCR),
#                                      # and a remote-desktop session from outside
#   scripts/demo-local.sh --headless   # `ionlab demo`: 2 headless VMs, RustDesk and the FIXTURE portal (a TCP service)
# It installs the packages, builds ionlab, its agent bundle, the guest image(s) and the STAND-IN RustDesk package
# (once), then, inside a loopback-only network namespace with its own libvirtd, runs the demo, names the pictures
# it kept and writes the fleet's report, one self-contained HTML page, into ${IONLAB_DEMO_OUT:-./demo-output}.
# Then it takes the fleet down. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/lab.sh
LAB_NAME=demo

mode=desktop
for argument in "$@"; do
  case $argument in
    --headless) mode=headless ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo-local: unknown argument $argument (usage: scripts/demo-local.sh [--headless])" >&2; exit 64 ;;
  esac
done
fleet=desktop demo=(--desktop)
if [[ $mode == headless ]]; then fleet=demo demo=(); fi
out=$(mkdir -p "${IONLAB_DEMO_OUT:-demo-output}" && cd "${IONLAB_DEMO_OUT:-demo-output}" && pwd)

if [[ "${IONLAB_DEMO_INSIDE:-}" != 1 ]]; then
  scripts/install-deps.sh
  if [[ $mode == desktop ]]; then lab_build desktop; else lab_build; fi
  IONLAB_DEMO_INSIDE=1 IONLAB_DEMO_OUT=$out exec scripts/in-netns.sh "$0" "$@"
fi

state=$(mktemp -d /tmp/ionlab-demo.XXXXXX)
cleanup() {
  "$LAB_IONLAB" down "$fleet" --state-dir "$state" >/dev/null 2>&1 || true
  lab_stop
  rm -rf "$state"
}
trap cleanup EXIT
lab_controller "$state" "${IONLAB_DEMO_PORT:-17443}" ionlab-demo
export IONLAB_STATE_DIR=$state
ionlab() { "$LAB_IONLAB" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

status=0
step "ionlab demo ${demo[*]}   (controller-config/fleets/$fleet.yaml)"
ionlab demo "${demo[@]}" --parallel 2 || status=$?
step "ionlab facts --fleet $fleet"
ionlab facts --fleet "$fleet"
step "ionlab report $fleet -o $out/$fleet-report.html   (per VM its timeline, verdicts and pictures, in one page)"
ionlab report "$fleet" -o "$out/$fleet-report.html"
if [[ -d $state/pictures ]]; then
  rm -rf "$out/pictures"
  cp -r "$state/pictures" "$out/pictures"
  step "the pictures, kept in $out/pictures"
  find "$out/pictures" -name '*.png' | LC_ALL=C sort
fi
step "ionlab down $fleet   (domains, volumes, seeds and console logs removed; certificates revoked)"
ionlab down "$fleet"
echo
echo "demo-local: open $out/$fleet-report.html in a browser"
exit "$status"
