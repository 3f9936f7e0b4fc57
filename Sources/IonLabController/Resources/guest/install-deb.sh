#!/bin/sh
# install-deb.sh PATH  (a .deb already in the VM; apt installs its dependencies too)
# Result on fd 3 (stdout when fd 3 is not open): {"installed":[{"name":"hello","version":"1.0-1"}]}
# Waits for cloud-init first (its first-boot apt runs would hold the dpkg lock), then waits for the lock
# rather than failing. Commands run with fd 3 closed, so no daemon a package starts keeps the result pipe open.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit

main() {
  if [ $# -ne 1 ] || [ -z "$1" ]; then echo "usage: install-deb.sh PATH" >&2; exit 2; fi
  [ -f "$1" ] || { echo "no package file at $1" >&2; exit 1; }
  # apt takes an argument as a file only when it holds a slash.
  case $1 in */*) deb=$1 ;; *) deb=./$1 ;; esac
  if command -v cloud-init >/dev/null; then cloud-init status --wait >/dev/null 2>&1 || true; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends -- "$deb" || exit
  # shellcheck disable=SC2016 # ${Package} and ${Version} are dpkg-deb's fields, not the shell's
  line=$(dpkg-deb -W --showformat='${Package}\t${Version}\n' -- "$deb") || exit
  tab=$(printf '\t')
  IFS=$tab read -r name version <<LINE
$line
LINE
  echo "installed $name $version"
  result="{\"installed\":[{\"name\":$(ionlab_json "$name"),\"version\":$(ionlab_json "$version")}]}"
}

main "$@" 3>&-
printf '%s\n' "$result" >&3
