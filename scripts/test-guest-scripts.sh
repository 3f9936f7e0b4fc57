#!/usr/bin/env bash
# Tests the guest scripts (Sources/IonLabController/Resources/guest/*.sh) without a VM: shellcheck -x on each
# script and on the lib.sh they share (no finding allowed), then each case twice against stub commands: run the
# way the controller runs it (`sh -c "LIB<newline>SCRIPT" ionlab-NAME ARG…`, bash for verify.sh, its result
# read from fd 3), and run by hand (`sh DIR/SCRIPT ARG…`, which sources DIR/lib.sh). Both run in a working
# directory holding a lib.sh that fails loudly, so neither may read lib.sh from there. The scripts see a PATH
# holding only the stubs (apt-get, systemctl, loginctl, runuser, curl, busctl, rustdesk…, which record their
# calls and answer from files) and links to a few harmless real tools, so no real package manager, service
# manager or network is reachable; and they run in a private mount namespace with an empty tmpfs on /run, so
# the sockets and directories they look for there are the test's. Prints a line per case and a count; exits 1
# if any failed.
#   scripts/test-guest-scripts.sh      (as root, or with unprivileged user namespaces)
# shellcheck disable=SC2016 # the stubs and probes are text for other shells, expanded there
set -euo pipefail
cd "$(dirname "$0")/.."
guest=$PWD/Sources/IonLabController/Resources/guest

# IONLAB_GUEST_TEST_NS holds the mount namespace the test was started in; /run is replaced only in another.
if [[ -z "${IONLAB_GUEST_TEST_NS:-}" ]]; then
  if ! command -v shellcheck >/dev/null; then
    echo "test-guest-scripts: installing shellcheck"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends shellcheck >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
  fi
  namespace=(--mount --propagation private)
  ((EUID == 0)) || namespace+=(--map-root-user)
  exec unshare "${namespace[@]}" env IONLAB_GUEST_TEST_NS="$(readlink /proc/self/ns/mnt)" "$0" "$@"
fi
if [[ $(readlink /proc/self/ns/mnt) == "$IONLAB_GUEST_TEST_NS" ]]; then
  echo "test-guest-scripts: not in a mount namespace of its own; refusing to mount over /run" >&2
  exit 1
fi
# Inside the namespace: /run is the test's own from here on.
mount -t tmpfs ionlab-guest-test /run

tmp=$(mktemp -d /tmp/ionlab-guest-test.XXXXXX)
background=()
cleanup() {
  local pid
  for pid in "${background[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
tools=$tmp/tools # links to the real commands the scripts may run: none changes the machine
stubs=$tmp/stubs
extra=$tmp/extra # per case: the download tools the case offers
state=$tmp/state # what the stubs answer, and their record of calls
out=$tmp/out
cwd=$tmp/cwd # the scripts' working directory: its lib.sh must never be read
mkdir -p "$tools" "$stubs" "$out" "$tmp/home"
for tool in sh bash awk cat cp cut dirname env grep head iconv mkdir rm seq sha256sum tail timeout tr wc; do
  ln -s "$(command -v "$tool")" "$tools/$tool"
done
real_sh=$(command -v sh)
real_bash=$(command -v bash)

# Every stub records its call ("NAME ARG…" in $STUB_STATE/calls) and whether it inherited fd 3 (the scripts
# must keep the result pipe from their children).
stub() {
  {
    printf '#!/bin/sh\n'
    printf 'printf "%%s\\n" "${0##*/} $*" >>"$STUB_STATE/calls"\n'
    printf '[ ! -e /proc/$$/fd/3 ] || echo "${0##*/} $*" >>"$STUB_STATE/leaks"\n'
    cat
  } >"$2/$1"
  chmod +x "$2/$1"
}

stub cloud-init "$stubs" <<'EOF'
exit 0
EOF
stub apt-get "$stubs" <<'EOF'
echo "apt-get saw DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >>"$STUB_STATE/calls"
[ ! -e "$STUB_STATE/apt-get.fails" ] || { echo "E: Unable to locate package nosuch" >&2; exit 100; }
echo "Setting up $*"
EOF
stub dpkg-query "$stubs" <<'EOF'
[ "$1 $2" = '-W -f=${Package}\t${Version}\n' ] || { echo "dpkg-query stub: unexpected format: $*" >&2; exit 2; }
shift 2; [ "$1" = -- ] && shift
status=0
for name do
  if [ -f "$STUB_STATE/installed/$name" ]; then printf '%s\t%s\n' "${name%%:*}" "$(cat "$STUB_STATE/installed/$name")"
  else echo "dpkg-query: no packages found matching $name" >&2; status=1; fi
done
exit $status
EOF
stub dpkg-deb "$stubs" <<'EOF'
[ "$1 $2 $3" = '-W --showformat=${Package}\t${Version}\n --' ] || { echo "dpkg-deb stub: unexpected: $*" >&2; exit 2; }
cat -- "$4"
EOF
stub id "$stubs" <<'EOF'
case "$1 $2" in
  "-u --")
    [ -f "$STUB_STATE/users/$3" ] || { echo "id: '$3': no such user" >&2; exit 1; }
    cat "$STUB_STATE/users/$3" ;;
  "-nu --")
    for user in "$STUB_STATE"/users/*; do
      [ "$(cat "$user" 2>/dev/null)" != "$3" ] || { echo "${user##*/}"; exit 0; }
    done
    echo "id: '$3': no such user" >&2; exit 1 ;;
  *) echo "id stub: unexpected: $*" >&2; exit 2 ;;
esac
EOF
# wayland-info answers unless $STUB_STATE/wayland.dead exists; it records the display it was given.
stub wayland-info "$stubs" <<'EOF'
echo "wayland-info saw XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR WAYLAND_DISPLAY=$WAYLAND_DISPLAY" >>"$STUB_STATE/calls"
[ ! -e "$STUB_STATE/wayland.dead" ] || { echo "failed to create display: Connection refused" >&2; exit 1; }
echo "interface: 'wl_compositor'"
EOF
stub loginctl "$stubs" <<'EOF'
exit 0
EOF
stub runuser "$stubs" <<'EOF'
[ "$1" = -u ] && [ "$3" = -- ] || { echo "runuser stub: unexpected: $*" >&2; exit 2; }
shift 3
exec "$@"
EOF
stub systemctl "$stubs" <<'EOF'
[ -z "${XDG_RUNTIME_DIR:-}" ] || echo "systemctl saw XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR" >>"$STUB_STATE/calls"
[ "$1" != --user ] || shift
verb=$1
for unit do :; done
case $verb in
  daemon-reload) exit 0 ;;
  start | restart | stop | enable)
    [ ! -e "$STUB_STATE/systemctl.fails" ] || { echo "Job for $unit failed because the control process exited with error code." >&2; exit 1; }
    ;;
  status)
    printf '× %s - Hello\n     Active: failed (Result: exit-code)\nhello[4242]: boom: cannot bind\n' "$unit"
    exit 3 ;;
  show)
    if [ -f "$STUB_STATE/show" ]; then cat "$STUB_STATE/show"; else printf 'MainPID=4242\nActiveState=active\nSubState=running\n'; fi ;;
  is-active)
    if [ -f "$STUB_STATE/active/$unit" ]; then cat "$STUB_STATE/active/$unit"; else echo inactive; fi
    [ "$(cat "$STUB_STATE/active/$unit" 2>/dev/null)" = active ] || exit 3 ;;
  *) echo "systemctl stub: unexpected: $*" >&2; exit 2 ;;
esac
EOF
# busctl answers from $STUB_STATE/bus: lines "ADDRESS NAME PATH INTERFACE". Any call that could start a service
# without --auto-start=no is recorded as a violation.
stub busctl "$stubs" <<'EOF'
address= autostart=yes
while [ $# -gt 0 ]; do
  case $1 in
    --address=*) address=${1#--address=} ;;
    --auto-start=no) autostart=no ;;
    --acquired | --no-legend) ;;
    --) ;;
    -*) echo "busctl stub: unexpected option $1" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
verb=$1; shift
[ "$1" != -- ] || shift
[ "$verb" = list ] || [ "$autostart" = no ] || echo "busctl $verb $* without --auto-start=no" >>"$STUB_STATE/violations"
touch "$STUB_STATE/bus"
case $verb in
  status) awk -v a="$address" -v n="$1" '$1 == a && $2 == n { hit = 1 } END { exit !hit }' "$STUB_STATE/bus" ;;
  list)
    echo ":1.5 4242 hello root :1.5 user@1000.service - -"
    awk -v a="$address" '$1 == a { print $2, "4242 hello root :1.5 user@1000.service - -" }' "$STUB_STATE/bus" ;;
  introspect)
    awk -v a="$address" -v n="$1" -v p="$2" '$1 == a && $2 == n && $3 == p { hit = 1; print $4, "interface", "-", "-", "-" }
      END { if (!hit) exit 1; print "org.freedesktop.DBus.Peer interface - - -"; print ".Ping method - - -" }' "$STUB_STATE/bus" ;;
  *) echo "busctl stub: unexpected verb $verb" >&2; exit 2 ;;
esac
EOF
# rustdesk: --get-id answers once it has been asked $STUB_STATE/rustdesk.after times (log lines first, as the real
# one may print them).
stub rustdesk "$stubs" <<'EOF'
case $1 in
  --get-id)
    echo x >>"$STUB_STATE/rustdesk.asked"
    echo "[2024-01-01 INFO] starting"
    [ "$(wc -l <"$STUB_STATE/rustdesk.asked")" -lt "$(cat "$STUB_STATE/rustdesk.after" 2>/dev/null || echo 1)" ] || cat "$STUB_STATE/rustdesk.id" 2>/dev/null ;;
  --version) cat "$STUB_STATE/rustdesk.version" ;;
  --password) [ ! -e "$STUB_STATE/rustdesk.fails" ] || { echo "Administrative privileges required" >&2; exit 1; }; echo "Done!" ;;
  --option) ;;
  *) echo "rustdesk stub: unexpected: $*" >&2; exit 2 ;;
esac
EOF
stub sleep "$stubs" <<'EOF'
exit 0
EOF
# The download tools "fetch" from $STUB_STATE/remote/BASENAME; a missing one leaves a partial file and fails.
fetcher='url=$1 path=$2
if [ -f "$STUB_STATE/remote/${url##*/}" ]; then cp -- "$STUB_STATE/remote/${url##*/}" "$path"
else echo partial >"$path"; echo "404 Not Found: $url" >&2; exit 22; fi'
mkdir -p "$tmp/curl" "$tmp/wget" "$tmp/python3"
stub curl "$tmp/curl" <<EOF
[ "\$1 \$2 \$3 \$4" = "-fsSL --retry 3 -o" ] && [ "\$6" = -- ] || { echo "curl stub: unexpected: \$*" >&2; exit 2; }
set -- "\$7" "\$5"
$fetcher
EOF
stub wget "$tmp/wget" <<EOF
[ "\$1 \$2" = "-q -O" ] && [ "\$4" = -- ] || { echo "wget stub: unexpected: \$*" >&2; exit 2; }
set -- "\$5" "\$3"
$fetcher
EOF
stub python3 "$tmp/python3" <<EOF
[ "\$1" = -c ] || { echo "python3 stub: unexpected: \$*" >&2; exit 2; }
set -- "\$3" "\$4"
$fetcher
EOF

# A process with a name of its own for the process probe, and a TCP listener for the port probe.
ln -s "$(command -v sleep)" "$tmp/ionlab-probed"
"$tmp/ionlab-probed" 600 &
background+=("$!")
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(600)' "$tmp/port" &
background+=("$!")
closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for _ in $(seq 100); do [[ -s $tmp/port ]] && break; sleep 0.05; done
open_port=$(<"$tmp/port")

# Makes a Unix socket at each path, as the D-Bus sockets are.
sockets() {
  local path
  for path do mkdir -p "$(dirname "$path")"; done
  python3 -c 'import socket, sys; [socket.socket(socket.AF_UNIX).bind(p) for p in sys.argv[1:]]' "$@"
}

# A fresh state for each case: systemd running, nothing installed, no buses.
reset() {
  rm -rf "$state" "$out" "${extra:?}" "$cwd" /run/*
  mkdir -p "$state"/{installed,users,active,remote} "$out" "$extra" "$cwd" /run/systemd/system
  printf 'echo "lib.sh read from the working directory" >&2; exit 99\n' >"$cwd/lib.sh"
  : >"$state/calls"
  : >"$tmp/stdin"
}

# How `run` runs a script: "controller" (`sh -c "LIB<newline>SCRIPT" ionlab-NAME ARG…`, as GuestScript.argv()
# builds it) or "hand" (`sh DIR/SCRIPT ARG…`). check_both sets it.
mode=controller

# run [VAR=VALUE…] SCRIPT ARG…: runs SCRIPT in $mode from $cwd, with the result pipe on fd 3. Sets $status;
# leaves stdout, stderr and fd 3 in $out.
run() { run_with 3>"$out/fd3" "$@"; }

# run_without_fd3 [VAR=VALUE…] SCRIPT ARG…: the same with fd 3 not open, so the result comes on stdout.
run_without_fd3() {
  run_with 3>&- "$@"
  : >"$out/fd3"
}

run_with() {
  local vars=()
  while [[ $1 == *=* ]]; do vars+=("$1"); shift; done
  local script=$1 shell=$real_sh
  shift
  [[ $script == verify.sh ]] && shell=$real_bash
  local invocation=("$shell" "$guest/$script")
  [[ $mode == hand ]] || invocation=("$shell" -c "$(<"$guest/lib.sh")"$'\n'"$(<"$guest/$script")" "ionlab-${script%.sh}")
  status=0
  (cd "$cwd" && exec env -i PATH="$extra:$stubs:$tools" STUB_STATE="$state" HOME="$tmp/home" "${vars[@]}" \
    "${invocation[@]}" "$@" <"$tmp/stdin" >"$out/stdout" 2>"$out/stderr") || status=$?
}

show() {
  echo "exit status: $status"
  echo "stdout: $(head -c 3000 "$out/stdout")"
  echo "stderr: $(head -c 3000 "$out/stderr")"
  echo "fd 3: $(head -c 3000 "$out/fd3")"
  echo "calls: $(cat "$state/calls")"
}
expect_status() { [[ $status == "$1" ]] || { echo "exit status $status, expected $1"; show; return 1; }; }
# expect_fd3 LINE: fd 3 holds exactly LINE and a newline, and LINE is one JSON object.
expect_fd3() {
  [[ "$(cat "$out/fd3"; echo .)" == "$1"$'\n.' ]] || { echo "fd 3 is not: $1"; show; return 1; }
  json_ok "$out/fd3"
}
# json_ok FILE [PYTHON]: FILE is one line of JSON, and PYTHON (given v, the value, and a, the arguments after
# it) is true of it.
json_ok() {
  local file=$1 test=${2:-True}
  shift 2 || shift
  python3 -c '
import json, sys
raw = open(sys.argv[1], "rb").read()
assert raw.endswith(b"\n") and raw.count(b"\n") == 1, f"not one line: {raw!r}"
v = json.loads(raw.decode("utf-8"))
a = sys.argv[3:]
assert isinstance(v, dict), f"not an object: {v!r}"
assert eval(sys.argv[2]), f"{sys.argv[2]} is false of {v!r}"
' "$file" "$test" "$@" || { show; return 1; }
}
expect_no_fd3() { [[ ! -s $out/fd3 ]] || { echo "fd 3 holds something"; show; return 1; }; }
expect_stderr() { grep -qF -- "$1" "$out/stderr" || { echo "stderr lacks: $1"; show; return 1; }; }
expect_stdout() { grep -qF -- "$1" "$out/stdout" || { echo "stdout lacks: $1"; show; return 1; }; }
expect_call() { grep -qxF -- "$1" "$state/calls" || { echo "no call: $1"; show; return 1; }; }
expect_no_call() { ! grep -q -- "^$1" "$state/calls" || { echo "unexpected call: $1"; show; return 1; }; }
# expect_calls LINE…: exactly these calls, in this order.
expect_calls() {
  [[ "$(cat "$state/calls")" == "$(printf '%s\n' "$@")" ]] || { echo "calls differ from:"; printf '  %s\n' "$@"; show; return 1; }
}
expect_one_line_stderr() {
  [[ $(wc -l <"$out/stderr") == 1 ]] || { echo "stderr is not one line"; show; return 1; }
}

cases=0
failures=0
# end_case_daemons N: ends the daemons a case started (a private bus, a portal), those after the first N of
# `background`; the file's own, started before the first case, stay for the next.
end_case_daemons() {
  local pid
  for pid in "${background[@]:$1}"; do kill "$pid" 2>/dev/null || true; done
}

# check NAME FUNCTION ARG…: runs one case in a subshell; any failed expectation fails it. Every case also
# checks that no stub inherited fd 3 and that busctl was never asked in a way that could start a service.
check() {
  local name=$1 rc
  shift
  cases=$((cases + 1))
  reset
  set +e
  (
    set -e
    # shellcheck disable=SC2064 # the count of the file's own daemons, taken now
    trap "end_case_daemons ${#background[@]}" EXIT
    "$@"
    if [[ -s $state/leaks ]]; then echo "fd 3 leaked to: $(cat "$state/leaks")"; exit 1; fi
    if [[ -s $state/violations ]]; then echo "D-Bus auto-start possible: $(cat "$state/violations")"; exit 1; fi
  ) >"$tmp/case.log" 2>&1
  rc=$?
  set -e
  if ((rc == 0)); then
    echo "ok    $name"
  else
    failures=$((failures + 1))
    echo "FAIL  $name"
    sed 's/^/      /' "$tmp/case.log"
  fi
}

# check_both NAME FUNCTION ARG…: the case run as the controller runs the script, then by hand.
check_both() {
  local name=$1
  shift
  mode=controller
  check "$name" "$@"
  mode=hand
  check "$name [by hand]" "$@"
  mode=controller
}

# --- shellcheck and lib.sh -----------------------------------------------------------------------------------

# -x: each script's `. lib.sh` is followed (its directive names lib.sh beside the script).
shellcheck_file() { shellcheck -x "$1"; }
[[ -f $guest/lib.sh ]] || { echo "test-guest-scripts: no $guest/lib.sh" >&2; exit 1; }
for file in "$guest"/*.sh "$0"; do check "shellcheck ${file#"$guest"/}" shellcheck_file "$file"; done

# Only lib.sh defines a JSON function, the escaper and the fd-3 fallback; every script takes them from it.
lib_only() {
  local file name
  grep -qx 'ionlab_json() {' "$guest/lib.sh" || { echo "lib.sh does not define ionlab_json"; return 1; }
  for file in "$guest"/*.sh; do
    name=${file#"$guest"/}
    [[ $name != lib.sh ]] || continue
    if grep -nEi '^[[:space:]]*(function[[:space:]]+[[:alnum:]_]*json|[[:alnum:]_]*json[[:alnum:]_]*[[:space:]]*\(\))' "$file"; then
      echo "$name defines a JSON function of its own: only lib.sh may"
      return 1
    fi
    if grep -nE 'JSON_TEXT|ENVIRON\[|exec 3>&1' "$file"; then
      echo "$name repeats what lib.sh holds (the JSON escaper or the fd-3 fallback)"
      return 1
    fi
    if ! grep -qxF '# shellcheck source-path=SCRIPTDIR source=lib.sh' "$file" \
      || ! grep -qxF 'command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit' "$file"; then
      echo "$name does not source lib.sh from beside itself"
      return 1
    fi
  done
}
check "only lib.sh defines a JSON function (and the fd-3 fallback); every script sources it" lib_only

stubs_see_fd3() {
  env STUB_STATE="$state" "$stubs/loginctl" 3>/dev/null
  [[ -s $state/leaks ]] || { echo "a stub given fd 3 did not notice"; return 1; }
  rm "$state/leaks"
}
check "stubs notice an inherited fd 3 (self-test)" stubs_see_fd3

# run_from DIR SHELL ARG…: SHELL ARG… run from DIR, as a person runs a script there, with the result pipe on fd 3.
run_from() {
  local dir=$1
  shift
  status=0
  (cd "$dir" && exec env -i PATH="$extra:$stubs:$tools" STUB_STATE="$state" HOME="$tmp/home" "$@" \
    <"$tmp/stdin" >"$out/stdout" 2>"$out/stderr" 3>"$out/fd3") || status=$?
}

by_hand_relative() {
  echo 7.88.1-10 >"$state/installed/curl"
  run_from "$guest" "$real_sh" install-packages.sh curl
  expect_status 0
  expect_fd3 '{"installed":[{"name":"curl","version":"7.88.1-10"}]}'
  run_from "$guest" "$real_bash" verify.sh command ok 1 true
  expect_status 0
  expect_fd3 '{"probes":[{"label":"ok","passed":true,"detail":"exit 0"}]}'
}
check "by hand from the scripts' directory (sh install-packages.sh …, bash verify.sh …): lib.sh is ./lib.sh" by_hand_relative

by_hand_reads_beside() {
  cp "$guest/install-packages.sh" "$cwd/"
  run_from "$cwd" "$real_sh" install-packages.sh curl
  expect_status 99
  expect_stderr "lib.sh read from the working directory"
  expect_no_call apt-get
}
check "by hand, a script reads the lib.sh beside it (here the working directory's, which fails: self-test)" by_hand_reads_beside

without_lib() {
  mkdir "$tmp/alone"
  cp "$guest/install-packages.sh" "$guest/verify.sh" "$tmp/alone/"
  run_from "$cwd" "$real_sh" "$tmp/alone/install-packages.sh" curl
  [[ $status != 0 ]] || { echo "install-packages.sh ran without lib.sh"; show; return 1; }
  expect_stderr "lib.sh"
  expect_no_call apt-get
  expect_no_fd3
  run_from "$cwd" "$real_bash" "$tmp/alone/verify.sh" command ok 1 true
  [[ $status != 0 ]] || { echo "verify.sh ran without lib.sh"; show; return 1; }
  expect_stderr "lib.sh"
  [[ ! -s $out/stdout ]] || { echo "verify.sh probed without lib.sh"; show; return 1; }
  expect_no_fd3
}
check "by hand without lib.sh beside it, a script stops before doing anything (sh and bash)" without_lib

# --- install-packages.sh -------------------------------------------------------------------------------------

install_names() {
  echo 7.88.1-10 >"$state/installed/curl"
  echo 1.6-2.1 >"$state/installed/jq"
  echo 2.36-9+deb12u4 >"$state/installed/libc6:amd64"
  run install-packages.sh curl jq=1.6-2.1 libc6:amd64/bookworm
  expect_status 0
  expect_fd3 '{"installed":[{"name":"curl","version":"7.88.1-10"},{"name":"jq","version":"1.6-2.1"},{"name":"libc6","version":"2.36-9+deb12u4"}]}'
  expect_calls "cloud-init status --wait" \
    "apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends -- curl jq=1.6-2.1 libc6:amd64/bookworm" \
    "apt-get saw DEBIAN_FRONTEND=noninteractive" \
    'dpkg-query -W -f=${Package}\t${Version}\n -- curl jq libc6:amd64'
  expect_stdout "installed jq 1.6-2.1"
}
check_both "install-packages: apt-get install, then name and version from dpkg-query" install_names

install_names_fails() {
  touch "$state/apt-get.fails"
  run install-packages.sh nosuch
  expect_status 100
  expect_stderr "Unable to locate package nosuch"
  expect_no_fd3
  expect_no_call dpkg-query
}
check_both "install-packages: apt-get's failure is the script's, nothing on fd 3" install_names_fails

install_names_usage() {
  run install-packages.sh
  expect_status 2
  expect_no_fd3
  expect_no_call apt-get
}
check_both "install-packages: no name is a usage error (exit 2)" install_names_usage

# --- install-deb.sh ---------------------------------------------------------------------------------------

install_deb() {
  mkdir -p "$tmp/cache"
  printf 'hello\t2.10-3\n' >"$tmp/cache/hello_2.10-3_amd64.deb"
  run install-deb.sh "$tmp/cache/hello_2.10-3_amd64.deb"
  expect_status 0
  expect_fd3 '{"installed":[{"name":"hello","version":"2.10-3"}]}'
  expect_call "apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends -- $tmp/cache/hello_2.10-3_amd64.deb"
  expect_call "cloud-init status --wait"
}
check_both "install-deb: apt-get install PATH, then name and version from dpkg-deb" install_deb

install_deb_relative() {
  printf 'hello\t2.10-3\n' >"$cwd/hello.deb"
  run install-deb.sh hello.deb
  expect_status 0
  expect_call "apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends -- ./hello.deb"
  expect_fd3 '{"installed":[{"name":"hello","version":"2.10-3"}]}'
}
check_both "install-deb: a relative path is given to apt as ./PATH (else apt reads it as a name)" install_deb_relative

install_deb_missing() {
  run install-deb.sh /nonexistent/x.deb
  expect_status 1
  expect_stderr "no package file at /nonexistent/x.deb"
  expect_no_fd3
  expect_no_call apt-get
}
check_both "install-deb: a missing file fails before apt-get" install_deb_missing

# --- download.sh --------------------------------------------------------------------------------------------

remote_file() { printf 'pretend deb\n\0\1\2 payload\n' >"$state/remote/$1"; }
sha_of() { sha256sum <"$1" | cut -d' ' -f1; }

download_curl() {
  remote_file hello.deb
  ln -s "$tmp/curl/curl" "$extra/curl"
  local sum
  sum=$(sha_of "$state/remote/hello.deb")
  run download.sh https://example.test/pool/hello.deb "$tmp/dl/sub/hello.deb" "${sum^^}"
  expect_status 0
  expect_fd3 "{\"path\":\"$tmp/dl/sub/hello.deb\",\"bytes\":24,\"sha256\":\"$sum\"}"
  expect_call "curl -fsSL --retry 3 -o $tmp/dl/sub/hello.deb -- https://example.test/pool/hello.deb"
  cmp -s "$state/remote/hello.deb" "$tmp/dl/sub/hello.deb"
  expect_stdout "downloaded https://example.test/pool/hello.deb (24 bytes)"
}
check_both "download: curl, sha256 checked (given in upper case), path/bytes/sha256 on fd 3" download_curl

download_mismatch() {
  remote_file hello.deb
  ln -s "$tmp/curl/curl" "$extra/curl"
  local wrong=0000000000000000000000000000000000000000000000000000000000000000
  run download.sh https://example.test/hello.deb "$tmp/dl/hello.deb" "$wrong"
  expect_status 1
  expect_stderr "sha256 of https://example.test/hello.deb is $(sha_of "$state/remote/hello.deb"), expected $wrong"
  [[ ! -e $tmp/dl/hello.deb ]] || { echo "the mismatching file was kept"; return 1; }
  expect_no_fd3
}
check_both "download: a sha256 mismatch removes the file and fails" download_mismatch

download_fails() {
  ln -s "$tmp/curl/curl" "$extra/curl"
  run download.sh https://example.test/missing.deb "$tmp/dl/missing.deb"
  expect_status 1
  expect_stderr "cannot download https://example.test/missing.deb"
  [[ ! -e $tmp/dl/missing.deb ]] || { echo "the partial file was kept"; return 1; }
  expect_no_fd3
}
check_both "download: a failed download removes the partial file and fails" download_fails

download_wget() {
  remote_file a.deb
  ln -s "$tmp/wget/wget" "$extra/wget"
  run download.sh https://example.test/a.deb "$tmp/dl/a.deb"
  expect_status 0
  expect_fd3 "{\"path\":\"$tmp/dl/a.deb\",\"bytes\":24,\"sha256\":\"$(sha_of "$state/remote/a.deb")\"}"
  expect_call "wget -q -O $tmp/dl/a.deb -- https://example.test/a.deb"
}
check_both "download: wget when there is no curl" download_wget

download_python() {
  remote_file a.deb
  ln -s "$tmp/python3/python3" "$extra/python3"
  run download.sh https://example.test/a.deb "$tmp/dl/a.deb"
  expect_status 0
  expect_fd3 "{\"path\":\"$tmp/dl/a.deb\",\"bytes\":24,\"sha256\":\"$(sha_of "$state/remote/a.deb")\"}"
  grep -q "^python3 -c .*urlretrieve.* https://example.test/a.deb $tmp/dl/a.deb\$" "$state/calls" || { show; return 1; }
}
check_both "download: python3 when there is neither curl nor wget" download_python

download_nothing() {
  run download.sh https://example.test/a.deb "$tmp/dl/a.deb"
  expect_status 1
  expect_stderr "the machine has no curl, wget or python3"
  expect_no_fd3
}
check_both "download: no tool at all fails clearly" download_nothing

download_nasty_path() {
  remote_file a.deb
  ln -s "$tmp/curl/curl" "$extra/curl"
  local path
  path="$tmp/dl/quote\" back\\slash	tab"$'\n'"newline Grüße ✓.deb"
  run download.sh https://example.test/a.deb "$path"
  expect_status 0
  json_ok "$out/fd3" 'v == {"path": a[0], "bytes": 24, "sha256": a[1]}' "$path" "$(sha_of "$state/remote/a.deb")"
}
check_both "download: a path with quote, backslash, tab, newline and UTF-8 round-trips through the JSON" download_nasty_path

download_by_hand() {
  remote_file a.deb
  ln -s "$tmp/curl/curl" "$extra/curl"
  run_without_fd3 download.sh https://example.test/a.deb "$tmp/dl/a.deb"
  expect_status 0
  [[ $(tail -n 1 "$out/stdout") == "{\"path\":\"$tmp/dl/a.deb\",\"bytes\":24,\"sha256\":\"$(sha_of "$state/remote/a.deb")\"}" ]] \
    || { echo "the last stdout line is not the result"; show; return 1; }
}
check_both "download: without fd 3, the result is the last line on stdout" download_by_hand

# --- require-systemd.sh -----------------------------------------------------------------------------------

require_systemd() {
  run require-systemd.sh
  expect_status 0
  expect_fd3 '{"systemd":true}'
}
check_both "require-systemd: systemd running" require_systemd

require_systemd_missing() {
  local stubs=$tmp/stubs-without-systemctl
  rm -rf "$stubs" && cp -a "$tmp/stubs" "$stubs" && rm "$stubs/systemctl"
  run require-systemd.sh
  expect_status 127
  expect_stderr "systemd is not available on this machine (no systemctl)"
  expect_no_fd3
}
check_both "require-systemd: no systemctl, exit 127" require_systemd_missing

require_systemd_not_running() {
  rmdir /run/systemd/system
  run require-systemd.sh
  expect_status 127
  expect_stderr "systemd is not running on this machine (PID 1 is $(cat /proc/1/comm))"
  expect_no_fd3
}
check_both "require-systemd: systemd not running, exit 127 naming PID 1" require_systemd_not_running

# --- service.sh -----------------------------------------------------------------------------------------------

service_start() {
  run service.sh hello.service started 0 ''
  expect_status 0
  expect_fd3 '{"unit":"hello.service","activeState":"active","subState":"running","mainPID":4242}'
  expect_calls "systemctl start -- hello.service" "systemctl show -p ActiveState -p SubState -p MainPID -- hello.service"
  expect_stdout "hello.service: active/running, main PID 4242"
}
check_both "service: started, system manager, no reload" service_start

service_enable_reload() {
  printf 'ActiveState=inactive\nSubState=dead\nMainPID=0\n' >"$state/show"
  run service.sh hello.service enabled 1
  expect_status 0
  expect_fd3 '{"unit":"hello.service","activeState":"inactive","subState":"dead","mainPID":0}'
  expect_calls "systemctl daemon-reload" "systemctl enable --now -- hello.service" \
    "systemctl show -p ActiveState -p SubState -p MainPID -- hello.service"
}
check_both "service: enabled = daemon-reload, then enable --now" service_enable_reload

service_fails() {
  touch "$state/systemctl.fails"
  run service.sh hello.service restarted 0
  expect_status 1
  expect_stderr "Job for hello.service failed"
  expect_stderr "Active: failed (Result: exit-code)"
  expect_stderr "hello[4242]: boom: cannot bind"
  expect_call "systemctl status --no-pager -n 20 -- hello.service"
  expect_no_fd3
}
check_both "service: a failing restart puts status and log lines on stderr, exit 1" service_fails

service_user() {
  echo 1000 >"$state/users/alice"
  sockets /run/dbus/system_bus_socket /run/user/1000/bus
  run service.sh hello.service stopped 1 alice
  expect_status 0
  expect_fd3 '{"unit":"hello.service","activeState":"active","subState":"running","mainPID":4242}'
  expect_calls "id -u -- alice" "loginctl enable-linger -- alice" \
    "runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user daemon-reload" \
    "systemctl --user daemon-reload" "systemctl saw XDG_RUNTIME_DIR=/run/user/1000" \
    "runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user stop -- hello.service" \
    "systemctl --user stop -- hello.service" "systemctl saw XDG_RUNTIME_DIR=/run/user/1000" \
    "runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user show -p ActiveState -p SubState -p MainPID -- hello.service" \
    "systemctl --user show -p ActiveState -p SubState -p MainPID -- hello.service" "systemctl saw XDG_RUNTIME_DIR=/run/user/1000"
  expect_stdout "(user alice)"
}
check_both "service: a user's manager, lingering, through runuser" service_user

service_user_no_system_bus() {
  echo 1000 >"$state/users/alice"
  run service.sh hello.service started 0 alice
  expect_status 1
  expect_stderr "user services need D-Bus in the image (dbus, dbus-user-session): there is no system bus"
  expect_no_call loginctl
  expect_no_fd3
}
check_both "service: a user service without a system bus fails clearly" service_user_no_system_bus

service_user_no_session_bus() {
  echo 1000 >"$state/users/alice"
  sockets /run/dbus/system_bus_socket
  run service.sh hello.service started 0 alice
  expect_status 1
  expect_stderr "alice has no session bus (/run/user/1000/bus): user services need dbus-user-session in the image"
  expect_no_call systemctl
  expect_no_fd3
}
check_both "service: a user without a session bus fails clearly" service_user_no_session_bus

service_no_such_user() {
  run service.sh hello.service started 0 bob
  expect_status 1
  expect_stderr "'bob': no such user"
  expect_no_fd3
}
check_both "service: an unknown user fails" service_no_such_user

service_usage() {
  run service.sh hello.service running 0
  expect_status 2
  expect_stderr "unknown state 'running'"
  expect_one_line_stderr
  run service.sh hello.service started yes
  expect_status 2
  expect_stderr "RELOAD is 1 or 0, found 'yes'"
  run service.sh hello.service started
  expect_status 2
  run service.sh '' started 0
  expect_status 2
  expect_no_call systemctl
  expect_no_fd3
}
check_both "service: bad state, reload, arity or name is a usage error (exit 2)" service_usage

service_no_systemd() {
  rmdir /run/systemd/system
  run service.sh hello.service started 0
  expect_status 127
  expect_stderr "systemd is not running on this machine"
  expect_no_call systemctl
}
check_both "service: without systemd, exit 127" service_no_systemd

service_escaped_name() {
  run service.sh 'foo\x2dbar.service' started 0
  expect_status 0
  expect_fd3 '{"unit":"foo\\x2dbar.service","activeState":"active","subState":"running","mainPID":4242}'
}
check_both "service: a unit name with a backslash (systemd-escape) is escaped" service_escaped_name

# --- verify.sh -----------------------------------------------------------------------------------------------

verify_all_pass() {
  echo active >"$state/active/rustdesk.service"
  echo active >"$state/active/hello.service"
  echo 1000 >"$state/users/alice"
  echo 123456789 >"$state/rustdesk.id"
  sockets /run/dbus/system_bus_socket /run/user/1000/bus
  {
    echo "unix:path=/run/dbus/system_bus_socket org.freedesktop.NetworkManager / -"
    echo "unix:path=/run/user/1000/bus org.example.Hello /org/example/Hello org.example.Hello1"
  } >"$state/bus"
  run verify.sh \
    unit "unit rustdesk" 1 rustdesk.service \
    unit "unit hello of alice" 2 hello.service alice \
    process "process ionlab-probed" 1 ionlab-probed \
    port "port $open_port" 1 "$open_port" \
    command "command sh -c … -- x" 6 sh -c 'test "$1" = -- && test "$2" = "two words"' sh -- "two words" \
    dbus-name "D-Bus org.freedesktop.NetworkManager" 1 org.freedesktop.NetworkManager \
    dbus-interface "D-Bus org.example.Hello1" 2 /org/example/Hello org.example.Hello1 \
    rustdesk-id "RustDesk ID" 0
  expect_status 0
  local pid
  pid=$(sed -n 's/^PASS\tprocess ionlab-probed\tpid //p' "$out/stdout")
  [[ -n $pid ]] || { echo "no pid for the process probe"; show; return 1; }
  expect_fd3 "{\"probes\":[{\"label\":\"unit rustdesk\",\"passed\":true,\"detail\":\"active\"},{\"label\":\"unit hello of alice\",\"passed\":true,\"detail\":\"active\"},{\"label\":\"process ionlab-probed\",\"passed\":true,\"detail\":\"pid $pid\"},{\"label\":\"port $open_port\",\"passed\":true,\"detail\":\"accepts on 127.0.0.1\"},{\"label\":\"command sh -c … -- x\",\"passed\":true,\"detail\":\"exit 0\"},{\"label\":\"D-Bus org.freedesktop.NetworkManager\",\"passed\":true,\"detail\":\"on unix:path=/run/dbus/system_bus_socket\"},{\"label\":\"D-Bus org.example.Hello1\",\"passed\":true,\"detail\":\"org.example.Hello on unix:path=/run/user/1000/bus\"},{\"label\":\"RustDesk ID\",\"passed\":true,\"detail\":\"123456789\"}]}"
  [[ $(grep -c $'^PASS\t' "$out/stdout") == 8 ]] || { echo "expected 8 PASS lines"; show; return 1; }
  expect_stdout $'PASS\tunit rustdesk\tactive'
  expect_call "systemctl is-active -- rustdesk.service"
  expect_call "runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user is-active -- hello.service"
  expect_call "busctl --address=unix:path=/run/user/1000/bus --auto-start=no introspect -- org.example.Hello /org/example/Hello"
  # A session bus lets in only its own user: its probes run as alice.
  expect_call "runuser -u alice -- busctl --address=unix:path=/run/user/1000/bus --auto-start=no introspect -- org.example.Hello /org/example/Hello"
}
check_both "verify: every kind of probe passing, exit 0, PASS lines and the exact JSON" verify_all_pass

# A desktop: alice's session bus with the portal and its wlr backend, and a compositor on wayland-1.
desktop_up() {
  echo 1000 >"$state/users/alice"
  sockets /run/user/1000/bus /run/user/1000/wayland-1
  : >/run/user/1000/wayland-1.lock
  {
    echo "unix:path=/run/user/1000/bus org.freedesktop.portal.Desktop /org/freedesktop/portal/desktop org.freedesktop.portal.ScreenCast"
    echo "unix:path=/run/user/1000/bus org.freedesktop.impl.portal.desktop.wlr /org/freedesktop/portal/desktop org.freedesktop.impl.portal.ScreenCast"
  } >"$state/bus"
}

verify_desktop_up() {
  desktop_up
  run verify.sh desktop "desktop of alice" 2 alice 0 \
    dbus-interface "portal ScreenCast" 2 /org/freedesktop/portal/desktop org.freedesktop.portal.ScreenCast \
    dbus-interface "wlr ScreenCast" 2 /org/freedesktop/portal/desktop org.freedesktop.impl.portal.ScreenCast
  expect_status 0
  expect_stdout $'PASS\tdesktop of alice\twayland-1 answers; session bus; portal with its wlr backend'
  expect_stdout $'PASS\tportal ScreenCast\torg.freedesktop.portal.Desktop on unix:path=/run/user/1000/bus'
  expect_stdout $'PASS\twlr ScreenCast\torg.freedesktop.impl.portal.desktop.wlr on unix:path=/run/user/1000/bus'
  expect_call "wayland-info saw XDG_RUNTIME_DIR=/run/user/1000 WAYLAND_DISPLAY=wayland-1"
  expect_call "runuser -u alice -- busctl --address=unix:path=/run/user/1000/bus list --acquired --no-legend"
}
check_both "verify: desktop passes when the compositor answers and the portal and a backend run on the user's bus" verify_desktop_up

# Each missing part of a desktop, named: the image has no such user; no session; no compositor; a compositor
# that does not answer; no portal; no backend.
verify_desktop_down() {
  local expected
  run verify.sh desktop "desktop" 2 nobody 0
  expect_status 1
  expect_stdout $'FAIL\tdesktop\tno user nobody: this image has no desktop user'
  echo 1000 >"$state/users/alice"
  for expected in "alice has no session bus (/run/user/1000/bus): no graphical session was started for alice" \
    "no Wayland compositor runs for alice (no wayland-* socket in /run/user/1000)" \
    "the compositor does not answer on /run/user/1000/wayland-1" \
    "the desktop portal (org.freedesktop.portal.Desktop) does not run on alice's session bus" \
    "no portal backend (org.freedesktop.impl.portal.desktop.*) runs on alice's session bus"; do
    case $expected in
      "no Wayland"*) sockets /run/user/1000/bus ;;
      "the compositor"*) sockets /run/user/1000/wayland-1; touch "$state/wayland.dead" ;;
      "the desktop portal"*) rm -f "$state/wayland.dead"; : >"$state/bus" ;;
      "no portal backend"*) echo "unix:path=/run/user/1000/bus org.freedesktop.portal.Desktop /org/freedesktop/portal/desktop org.freedesktop.portal.ScreenCast" >"$state/bus" ;;
    esac
    run verify.sh desktop "desktop" 2 alice 0
    expect_status 1 || { echo "for: $expected"; return 1; }
    expect_stdout "FAIL"$'\t'"desktop"$'\t'"$expected" || return 1
  done
}
check_both "verify: a desktop that is not up fails, naming the first part that is missing" verify_desktop_down

verify_failing() {
  sockets /run/dbus/system_bus_socket /run/user/1000/bus
  : >"$state/bus"
  echo 5 >"$state/rustdesk.after"
  run verify.sh \
    unit "unit rustdesk" 1 rustdesk.service \
    process "process nosuch" 1 nosuch-process \
    port "port $closed_port" 1 "$closed_port" \
    command "command fails" 3 sh -c 'echo first line; echo "last line"; exit 3' \
    command "command silent" 1 false \
    dbus-name "D-Bus org.example.Missing" 1 org.example.Missing \
    dbus-interface "D-Bus org.example.Missing1" 2 /org/example/Missing org.example.Missing1 \
    rustdesk-id "RustDesk ID" 0 \
    command "command passes" 1 true
  expect_status 1
  expect_fd3 "{\"probes\":[{\"label\":\"unit rustdesk\",\"passed\":false,\"detail\":\"inactive\"},{\"label\":\"process nosuch\",\"passed\":false,\"detail\":\"not running\"},{\"label\":\"port $closed_port\",\"passed\":false,\"detail\":\"refused on 127.0.0.1\"},{\"label\":\"command fails\",\"passed\":false,\"detail\":\"exit 3: last line\"},{\"label\":\"command silent\",\"passed\":false,\"detail\":\"exit 1\"},{\"label\":\"D-Bus org.example.Missing\",\"passed\":false,\"detail\":\"on no bus\"},{\"label\":\"D-Bus org.example.Missing1\",\"passed\":false,\"detail\":\"no session bus exports it at that path\"},{\"label\":\"RustDesk ID\",\"passed\":false,\"detail\":\"no ID ([2024-01-01 INFO] starting)\"},{\"label\":\"command passes\",\"passed\":true,\"detail\":\"exit 0\"}]}"
  expect_stdout $'FAIL\tcommand fails\texit 3: last line'
  expect_stdout $'PASS\tcommand passes\texit 0'
}
check_both "verify: failing probes report passed:false, the rest still run, exit 1" verify_failing

verify_nasty() {
  local label detail_line
  label="label \"quoted\" back\\slash	tab"$'\n'"newline Grüße ✓ "$'\001\037'" end"
  detail_line="said \"hi\" \\ back	tab Grüße ✓ "$'\001'" bad:"$'\xff\xfe'" end"
  printf 'Failed to connect to bus: "No medium"\ninactive\n' >"$state/active/odd.service"
  printf '%s\n' "$detail_line" >"$tmp/detail"
  local lang
  for lang in C C.UTF-8; do
    run "LC_ALL=$lang" verify.sh \
      command "$label" 5 sh -c 'echo first; cat "$1"; exit 4' sh "$tmp/detail" \
      unit "unit odd" 1 odd.service
    expect_status 1
    json_ok "$out/fd3" 'v == {"probes": [{"label": a[0], "passed": False, "detail": "exit 4: " + a[1]}, {"label": "unit odd", "passed": False, "detail": a[2]}]}' \
      "$label" "said \"hi\" \\ back	tab Grüße ✓ "$'\001'" bad: end" $'Failed to connect to bus: "No medium"\ninactive'
  done
}
check_both "verify: label and details with quotes, backslashes, tab, newline, control bytes and UTF-8 round-trip (bytes not UTF-8 dropped)" verify_nasty

verify_command_argv() {
  run verify.sh \
    command "dashes" 6 sh -c '[ "$#" = 2 ] && [ "$1" = -- ] && [ "$2" = "" ]' sh -- '' \
    command "lib.sh's function" 2 ionlab_json x \
    command "option-like" 4 sh -c 'exit 0' --help
  expect_status 1
  json_ok "$out/fd3" '[p["passed"] for p in v["probes"]] == [True, False, True] and v["probes"][1]["detail"].startswith("exit 127: ") and v["probes"][1]["detail"].endswith("ionlab_json: command not found")'
}
check_both "verify: a command argv may hold --, empty words, options; it never calls the script's own functions" verify_command_argv

verify_malformed() {
  local args
  while IFS= read -r args; do
    eval "set -- $args"
    run verify.sh "$@"
    expect_status 2 || { echo "for: $args"; return 1; }
    expect_one_line_stderr || { echo "for: $args"; return 1; }
    expect_no_fd3
    [[ ! -s $state/calls ]] || { echo "a probe ran for: $args"; show; return 1; }
    [[ ! -s $out/stdout ]] || { echo "a verdict was printed for: $args"; show; return 1; }
  done <<'CASES'

unit "unit a" 1 a.service bogus "x" 0
unit "unit a" x a.service
unit "unit a" -1 a.service
unit "unit a" 3 a.service alice
unit "unit a" 0
unit "unit a" 3 a b c
command "c" 0
port "port" 1 http
port "port" 1 0
port "port" 1 65536
port "port" 2 80 81
process "p" 2 a b
dbus-name "d" 0
dbus-interface "d" 1 /x
rustdesk-id "r" 1 x
rustdesk-id "r"
desktop "d" 1 alice
desktop "d" 2 alice soon
desktop "d" 2 alice 100000
unit
command "c" 9999999 x
CASES
}
check_both "verify: malformed arguments exit 2 with one line on stderr, probing nothing" verify_malformed

verify_by_hand() {
  run_without_fd3 verify.sh command "ok" 1 true
  expect_status 0
  [[ $(cat "$out/stdout") == $'PASS\tok\texit 0\n{"probes":[{"label":"ok","passed":true,"detail":"exit 0"}]}' ]] \
    || { echo "stdout is not the verdict then the result"; show; return 1; }
}
check_both "verify: without fd 3, the result follows the verdicts on stdout" verify_by_hand

# --- rustdesk-configure.sh ------------------------------------------------------------------------------------

rustdesk_configure() {
  printf 's3cret pass\n' >"$tmp/stdin"
  run rustdesk-configure.sh id.example.test:21116 relay.example.test 'key+/='
  expect_status 0
  expect_fd3 '{"configured":true}'
  expect_calls "rustdesk --password s3cret pass" \
    "rustdesk --option custom-rendezvous-server id.example.test:21116" \
    "rustdesk --option relay-server relay.example.test" \
    "rustdesk --option key key+/="
}
check_both "rustdesk-configure: password from stdin, then each server option" rustdesk_configure

rustdesk_configure_defaults() {
  printf 'pw-without-newline' >"$tmp/stdin"
  run rustdesk-configure.sh '' '' ''
  expect_status 0
  expect_fd3 '{"configured":true}'
  expect_calls "rustdesk --password pw-without-newline"
}
check_both "rustdesk-configure: empty servers are left alone; a last line without newline is read" rustdesk_configure_defaults

rustdesk_configure_no_password() {
  run rustdesk-configure.sh
  expect_status 1
  expect_stderr "no password on stdin"
  printf '\n' >"$tmp/stdin"
  run rustdesk-configure.sh
  expect_status 1
  expect_stderr "no password on stdin"
  expect_no_call rustdesk
  printf 'pw\n' >"$tmp/stdin"
  touch "$state/rustdesk.fails"
  run rustdesk-configure.sh
  expect_status 1
  expect_stderr "rustdesk --password failed"
  expect_no_fd3
}
check_both "rustdesk-configure: no or empty password, or rustdesk failing, exit 1" rustdesk_configure_no_password

# --- rustdesk-id.sh ------------------------------------------------------------------------------------------

rustdesk_id() {
  echo 123456789 >"$state/rustdesk.id"
  echo 3 >"$state/rustdesk.after"
  printf 'rustdesk 1.2.3 "nightly" \\ build\n1.2.3\n' >"$state/rustdesk.version"
  run rustdesk-id.sh
  expect_status 0
  expect_fd3 '{"id":"123456789","version":"1.2.3"}'
  [[ $(grep -c '^rustdesk --get-id$' "$state/calls") == 3 ]] || { echo "expected 3 asks"; show; return 1; }
  printf '1.2.3 "nightly" \\ ✓\n' >"$state/rustdesk.version"
  rm "$state/rustdesk.asked"
  run rustdesk-id.sh
  expect_fd3 '{"id":"123456789","version":"1.2.3 \"nightly\" \\ ✓"}'
}
check_both "rustdesk-id: asks until the ID comes, then the version (escaped)" rustdesk_id

rustdesk_id_never() {
  run rustdesk-id.sh
  expect_status 1
  expect_stderr "rustdesk --get-id gave no ID within 120 s (last answer: '[2024-01-01 INFO] starting')"
  [[ $(grep -c '^rustdesk --get-id$' "$state/calls") == 120 ]] || { echo "expected 120 asks"; show; return 1; }
  expect_no_fd3
}
check_both "rustdesk-id: no ID after 120 asks fails (sleep is a stub here)" rustdesk_id_never

# --- recipe scripts: krfb-setup.py (controller-config/recipes/krfb) -------------------------------------------
# Run as it is in a VM (as root, by the agent), on a scratch directory for the desktop user's config.

krfb_setup=$PWD/controller-config/recipes/krfb/krfb-setup.py
krfb_setup_writes_the_password_and_krfbrc() {
  local dir=$tmp/krfb password config
  rm -rf "$dir"
  python3 "$krfb_setup" "$dir/config" root "$dir/secret/vnc-password" >"$out/stdout" 2>"$out/stderr"
  password=$(cat "$dir/secret/vnc-password")
  [[ $password =~ ^[a-km-zA-HJ-NP-Z2-9]{8}$ ]] || { echo "password '$password' is not 8 unambiguous characters"; return 1; }
  [[ $(stat -c %a "$dir/secret/vnc-password") == 600 && $(stat -c %a "$dir/secret") == 700 ]] || { echo "password file or directory readable by others"; return 1; }
  [[ $(stat -c %a "$dir/config/krfbrc") == 600 ]] || { echo "krfbrc is readable by others"; return 1; }
  ! grep -qF "$password" "$out/stdout" "$out/stderr" "$dir/config/krfbrc" || { echo "the password appears in clear"; return 1; }
  config=$(python3 -c 'import configparser, sys
c = configparser.ConfigParser(); c.optionxform = str; c.read(sys.argv[1], encoding="utf-8")
s = c["Security"]
print("".join(ch if ord(ch) <= 0x21 else chr(0x1001F - ord(ch)) for ch in s["unattendedPassword"]),
      s["allowUnattendedAccess"], s["noWallet"], c["TCP"]["publishService"], c["FrameBuffer"]["preferredFrameBufferPlugin"])' "$dir/config/krfbrc")
  [[ $config == "$password true true false pw" ]] || { echo "krfbrc reads back as '$config'"; return 1; }
  # A second run makes a new password and replaces both files.
  python3 "$krfb_setup" "$dir/config" root "$dir/secret/vnc-password" >/dev/null
  [[ $(cat "$dir/secret/vnc-password") != "$password" ]] || { echo "the password did not change"; return 1; }
}
check "krfb-setup: a new password, 0600 for root, obscured in krfbrc as krfb reads it" krfb_setup_writes_the_password_and_krfbrc

krfb_setup_refuses() {
  python3 "$krfb_setup" "$tmp/krfb2" nobody-here "$tmp/krfb2/pw" 2>"$out/stderr" && { echo "an unknown user was accepted"; return 1; }
  grep -qx "krfb-setup: no user nobody-here" "$out/stderr" || { echo "stderr: $(cat "$out/stderr")"; return 1; }
  [[ ! -e $tmp/krfb2/pw ]] || { echo "a password was written for nobody"; return 1; }
  python3 "$krfb_setup" one two 2>"$out/stderr" && { echo "two arguments were accepted"; return 1; }
  grep -q "^usage: krfb-setup.py CONFIG_DIR OWNER PASSWORD_FILE" "$out/stderr" || { echo "stderr: $(cat "$out/stderr")"; return 1; }
}
check "krfb-setup: an unknown user or missing arguments, one line and nothing written" krfb_setup_refuses

# --- verify.sh: a D-Bus name on one user's session bus ----------------------------------------------------------

verify_dbus_name_of_a_user() {
  echo 1000 >"$state/users/alice"
  echo 1001 >"$state/users/bob"
  sockets /run/user/1000/bus
  echo "unix:path=/run/user/1000/bus org.example.Portal / -" >"$state/bus"
  run verify.sh \
    dbus-name "D-Bus org.example.Portal of alice" 2 org.example.Portal alice \
    dbus-name "D-Bus org.example.Other of alice" 2 org.example.Other alice \
    dbus-name "D-Bus org.example.Portal of bob" 2 org.example.Portal bob \
    dbus-name "D-Bus org.example.Portal of nobody" 2 org.example.Portal nobody
  expect_status 1
  expect_stdout $'PASS\tD-Bus org.example.Portal of alice\ton alice\'s session bus'
  expect_stdout $'FAIL\tD-Bus org.example.Other of alice\tnot owned on alice\'s session bus'
  expect_stdout $'FAIL\tD-Bus org.example.Portal of bob\tbob has no session bus (/run/user/1001/bus)'
  expect_stdout $'FAIL\tD-Bus org.example.Portal of nobody\tno user nobody'
  # Only that user's bus, as that user: the name on the system bus or another's does not count.
  expect_call "runuser -u alice -- busctl --address=unix:path=/run/user/1000/bus --auto-start=no status -- org.example.Portal"
}
check_both "verify: dbus-name with a user looks on that user's session bus only, as that user" verify_dbus_name_of_a_user

# --- portal-session.py: the guest side of the portal_session probe ------------------------------------------------
# Its sessions are tested against a scripted frontend through the controller (DesktopTests) and against the real
# portal on real VMs (scripts/e2e-vm.sh); here, that it compiles and refuses bad arguments in one line.

portal_session=$guest/portal-session.py
portal_session_refuses() {
  python3 -m py_compile "$portal_session" 2>"$out/stderr" || { echo "does not compile: $(cat "$out/stderr")"; return 1; }
  local arguments expected
  while IFS='|' read -r arguments expected; do
    # shellcheck disable=SC2086 # the words are the arguments
    python3 "$portal_session" $arguments >"$out/stdout" 2>"$out/stderr" 3>"$out/fd3" && status=0 || status=$?
    expect_status 2 || { echo "for: $arguments"; return 1; }
    [[ $(cat "$out/stderr") == "portal-session.py: $expected" ]] || { echo "for '$arguments': $(cat "$out/stderr")"; return 1; }
    expect_no_fd3
  done <<'CASES'
desktop /run/x|expected USER OUTDIR SECONDS [KEYSYMS MARKER], found 2 argument(s)
desktop relative 3|OUTDIR must be an absolute path, found 'relative'
desktop /run/x 99|SECONDS must be 0 to 60, found '99'
desktop /run/x 3 super echo|KEYSYMS must be decimal keysyms separated by commas, found 'super'
desktop /run/x 3 1,2,3,4,5 echo|KEYSYMS takes 1 to 4 keysyms
CASES
  python3 "$portal_session" desktop /run/x 3 65515 "$(printf 'echo \033]0;x\007')" 2>"$out/stderr" && status=0 || status=$?
  expect_status 2
  [[ $(cat "$out/stderr") == "portal-session.py: MARKER must be 1 to 64 printable ASCII characters" ]] || { echo "stderr: $(cat "$out/stderr")"; return 1; }
}
check "portal-session.py: compiles, and bad arguments get one line and exit 2 with no result" portal_session_refuses

# --- the desktop portal FIXTURE (controller-config/fixtures/desktop-portal) --------------------------------------------
# Built with make as the recipe builds it in the VM, then run on a private session bus with a wtype stub that
# records how it was asked to type: the backend's sessions, its devices and its keys.

fixture_portal=$PWD/controller-config/fixtures/desktop-portal
desktop_portal_fixture_types_what_it_is_sent() {
  local build=$tmp/fixture bus bin=/usr/bin
  rm -rf "$build"
  cp -r "$fixture_portal" "$build"
  make -s -C "$build" >"$out/stdout" 2>"$out/stderr" || { echo "make failed: $(cat "$out/stderr")"; return 1; }
  mkdir -p "$build/path"
  stub wtype "$build/path" </dev/null
  bus=unix:path=$tmp/fixture.bus
  dbus-daemon --session --address="$bus" --nofork --nopidfile 2>/dev/null &
  background+=($!)
  for _ in $(seq 50); do [[ -S $tmp/fixture.bus ]] && break; sleep 0.1; done
  DBUS_SESSION_BUS_ADDRESS=$bus PATH="$build/path:$PATH" STUB_STATE="$state" "$build/xdg-desktop-portal-ionlab-fixture" 2>"$tmp/fixture.log" &
  background+=($!)
  fixture_call() { "$bin/busctl" --address="$bus" call org.freedesktop.impl.portal.desktop.ionlabfixture "$@"; }
  for _ in $(seq 50); do fixture_call /org/freedesktop/portal/desktop org.freedesktop.DBus.Peer Ping >/dev/null 2>&1 && break; sleep 0.1; done
  local portal=(/org/freedesktop/portal/desktop org.freedesktop.impl.portal.RemoteDesktop) session=/org/freedesktop/portal/desktop/session/1_2/s
  [[ $("$bin/busctl" --address="$bus" get-property org.freedesktop.impl.portal.desktop.ionlabfixture "${portal[@]}" AvailableDeviceTypes) == "u 1" ]] ||
    { echo "it does not offer the keyboard alone"; return 1; }
  # Keys before the session started are refused.
  fixture_call "${portal[@]}" CreateSession 'oosa{sv}' /r/1 "$session" app 0 >/dev/null
  fixture_call "${portal[@]}" NotifyKeyboardKeysym 'oa{sv}iu' "$session" 0 65 1 2>"$out/stderr" && { echo "a key went through before Start"; return 1; }
  grep -q "Access denied" "$out/stderr" || { echo "stderr: $(cat "$out/stderr")"; return 1; }
  fixture_call "${portal[@]}" SelectDevices 'oosa{sv}' /r/2 "$session" app 1 types u 3 >/dev/null
  [[ $(fixture_call "${portal[@]}" Start 'oossa{sv}' /r/3 "$session" app "" 0) == 'ua{sv} 0 1 "devices" u 1' ]] || { echo "Start did not grant the keyboard alone"; return 1; }
  # Super+Return pressed key by key types as one chord; an upper-case letter and a dash go as text.
  local keysym_state
  for keysym_state in "65515 1" "65293 1" "65293 0" "65515 0" "77 1" "77 0" "45 1" "45 0"; do
    # shellcheck disable=SC2086 # a keysym and its state
    fixture_call "${portal[@]}" NotifyKeyboardKeysym 'oa{sv}iu' "$session" 0 $keysym_state >/dev/null || { echo "keysym $keysym_state refused"; return 1; }
  done
  expect_calls "wtype -M logo -k Return -m logo" "wtype -- M" "wtype -- -"
  fixture_call "$session" org.freedesktop.impl.portal.Session Close >/dev/null
  fixture_call "${portal[@]}" NotifyKeyboardKeysym 'oa{sv}iu' "$session" 0 65 1 2>/dev/null && { echo "a key went through after Close"; return 1; }
  return 0
}
check "desktop portal fixture: sessions, the keyboard granted alone, chords and text through wtype, refused after Close" desktop_portal_fixture_types_what_it_is_sent

echo "test-guest-scripts: $cases cases, $failures failed"
((failures == 0))
