#!/bin/sh
# rustdesk-id.sh
# Result on fd 3 (stdout when fd 3 is not open): {"id":"123456789","version":"1.2.3"}
# RustDesk has no ID until its service has registered with the rendezvous server, so this asks again every
# second, for up to 120 s, before failing.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit

main() {
  id=
  for _ in $(seq 120); do
    id=$(rustdesk --get-id 2>/dev/null </dev/null | tail -n 1)
    case $id in
      '' | *[!0-9]*) sleep 1 ;;
      *)
        version=$(rustdesk --version 2>/dev/null </dev/null | tail -n 1)
        echo "RustDesk $version, ID $id"
        result="{\"id\":\"$id\",\"version\":$(ionlab_json "$version")}"
        return 0
        ;;
    esac
  done
  echo "rustdesk --get-id gave no ID within 120 s (last answer: '$id')" >&2
  exit 1
}

main "$@" 3>&-
printf '%s\n' "$result" >&3
