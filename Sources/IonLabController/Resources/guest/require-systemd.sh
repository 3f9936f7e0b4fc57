#!/bin/sh
# require-systemd.sh
# Result on fd 3 (stdout when fd 3 is not open): {"systemd":true}
# Fails with a clear reason, exit 127, unless systemd runs the machine: services, and the unit files
# installed for them, mean nothing without it.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit
command -v systemctl >/dev/null || { echo "systemd is not available on this machine (no systemctl)" >&2; exit 127; }
[ -d /run/systemd/system ] || { echo "systemd is not running on this machine (PID 1 is $(cat /proc/1/comm))" >&2; exit 127; }
echo '{"systemd":true}' >&3
