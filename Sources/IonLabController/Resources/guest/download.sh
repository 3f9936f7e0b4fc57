#!/bin/sh
# download.sh URL PATH [SHA256]
# Result on fd 3 (stdout when fd 3 is not open): {"path":"…","bytes":N,"sha256":"<hex of the file>"}
# Downloads with whatever the VM has (curl, wget, python3). With SHA256 (hex, either case), a file that does
# not match is removed and the script fails; so is a partial download.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit

main() {
  if [ $# -lt 2 ] || [ $# -gt 3 ] || [ -z "$1" ] || [ -z "$2" ]; then echo "usage: download.sh URL PATH [SHA256]" >&2; exit 2; fi
  url=$1 path=$2 expected=$(printf '%s' "${3:-}" | tr 'A-F' 'a-f')
  mkdir -p -- "$(dirname -- "$path")" || exit 1
  if command -v curl >/dev/null; then curl -fsSL --retry 3 -o "$path" -- "$url"
  elif command -v wget >/dev/null; then wget -q -O "$path" -- "$url"
  elif command -v python3 >/dev/null; then
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" "$path"
  else echo "cannot download $url: the machine has no curl, wget or python3" >&2; exit 1
  fi || { echo "cannot download $url" >&2; rm -f -- "$path"; exit 1; }
  # From stdin: sha256sum escapes a file name holding a backslash or newline, and its line with it.
  actual=$(sha256sum <"$path") || exit 1
  actual=${actual%% *}
  if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
    echo "sha256 of $url is $actual, expected $expected" >&2
    rm -f -- "$path"
    exit 1
  fi
  bytes=$(wc -c <"$path") || exit 1
  bytes=$((bytes))
  echo "downloaded $url ($bytes bytes)"
  result="{\"path\":$(ionlab_json "$path"),\"bytes\":$bytes,\"sha256\":\"$actual\"}"
}

main "$@" 3>&-
printf '%s\n' "$result" >&3
