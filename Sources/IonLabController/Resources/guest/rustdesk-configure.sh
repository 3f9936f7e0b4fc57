#!/bin/sh
# rustdesk-configure.sh [ID_SERVER] [RELAY_SERVER] [KEY]  (the permanent password on stdin, one line)
# Result on fd 3 (stdout when fd 3 is not open): {"configured":true}
# The password comes on stdin so that it is in no argv the controller stores. RustDesk's CLI takes it only
# as an argument, so it shows in /proc while that one root command runs; nothing of ionlab's keeps it.
# Empty server arguments leave RustDesk's setting as it is.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit

main() {
  IFS= read -r password || true
  [ -n "$password" ] || { echo "no password on stdin" >&2; exit 1; }
  rustdesk --password "$password" >/dev/null </dev/null || { echo "rustdesk --password failed" >&2; exit 1; }
  unset password
  [ -z "${1:-}" ] || rustdesk --option custom-rendezvous-server "$1" </dev/null || exit 1
  [ -z "${2:-}" ] || rustdesk --option relay-server "$2" </dev/null || exit 1
  [ -z "${3:-}" ] || rustdesk --option key "$3" </dev/null || exit 1
  echo "configured"
}

main "$@" 3>&-
echo '{"configured":true}' >&3
