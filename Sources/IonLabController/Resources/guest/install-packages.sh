#!/bin/sh
# install-packages.sh NAME…  (as apt takes them: name, name:arch, name=version, name/release)
# Result on fd 3 (stdout when fd 3 is not open): {"installed":[{"name":"curl","version":"7.88.1-10"},…]}
# Waits for cloud-init first (its first-boot apt runs would hold the dpkg lock), then waits for the lock
# rather than failing. Commands run with fd 3 closed, so no daemon a package starts keeps the result pipe open.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit

main() {
  [ $# -gt 0 ] || { echo "usage: install-packages.sh NAME…" >&2; exit 2; }
  if command -v cloud-init >/dev/null; then cloud-init status --wait >/dev/null 2>&1 || true; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends -- "$@" || exit
  # dpkg knows installed packages by name (and architecture), without apt's =version or /release.
  for name do
    shift
    set -- "$@" "${name%%[=/]*}"
  done
  # shellcheck disable=SC2016 # ${Package} and ${Version} are dpkg-query's fields, not the shell's
  list=$(dpkg-query -W -f='${Package}\t${Version}\n' -- "$@") || exit
  tab=$(printf '\t')
  items=
  while IFS=$tab read -r name version; do
    [ -n "$name" ] || continue
    echo "installed $name $version"
    items="$items${items:+,}{\"name\":$(ionlab_json "$name"),\"version\":$(ionlab_json "$version")}"
  done <<LIST
$list
LIST
  result="{\"installed\":[$items]}"
}

main "$@" 3>&-
printf '%s\n' "$result" >&3
