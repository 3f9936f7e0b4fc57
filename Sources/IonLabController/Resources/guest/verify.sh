#!/usr/bin/env bash
# verify.sh [KIND LABEL N ARG1 … ARGN]…  Each probe is a kind, the label its verdict is reported under, the
# number of arguments that follow, and those arguments, so a command's argv can hold anything (even --):
#   unit NAME [USER]    the unit is active (in USER's manager when given)
#   process NAME        a process has that name (/proc/PID/comm)
#   port PORT           something accepts TCP on 127.0.0.1:PORT
#   command ARGV…       the command exits 0
#   dbus-name NAME [USER]   the name is owned on USER's session bus when given, else on the system bus or a
#                       session bus
#   dbus-interface PATH INTERFACE   a session bus name exports INTERFACE at PATH
#   rustdesk-id         RustDesk reports an ID
#   desktop USER SECONDS    USER's desktop is up: a compositor answers on USER's Wayland socket, USER's
#                       session bus runs, and the desktop portal and a backend of it own their names; waits up
#                       to SECONDS for all of it (a gate for steps that need the desktop)
# Prints "PASS|FAIL<TAB>label<TAB>detail" per probe on stdout; the result on fd 3 (stdout when fd 3 is not
# open): {"probes":[{"label":"unit rustdesk","passed":true,"detail":"active"},…]}. Exits 1 if a probe failed,
# 2 (naming the problem on stderr, probing nothing) on malformed arguments.
# D-Bus probes look only at names already owned: they start no activatable service. A session bus lets in only
# its own user, not even root: its probes run busctl as that user. Bash for /dev/tcp.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit

malformed() { echo "verify.sh: $*" >&2; exit 2; }

failed=0
verdicts=()
# verdict PASSED LABEL DETAIL. Details come from the machine: bytes that are not UTF-8 are dropped, so the
# result stays valid JSON.
verdict() {
  local detail=$3
  if command -v iconv >/dev/null; then detail=$(printf '%s' "$3" | iconv -c -f UTF-8 -t UTF-8 2>/dev/null); fi
  if [[ $1 == true ]]; then printf 'PASS\t%s\t%s\n' "$2" "$detail"; else printf 'FAIL\t%s\t%s\n' "$2" "$detail"; failed=1; fi
  verdicts+=("{\"label\":$(ionlab_json "$2"),\"passed\":$1,\"detail\":$(ionlab_json "$detail")}")
}

# The session buses to look on: $DBUS_SESSION_BUS_ADDRESS, then every user's.
session_buses() {
  local socket
  [[ -z ${DBUS_SESSION_BUS_ADDRESS:-} ]] || echo "$DBUS_SESSION_BUS_ADDRESS"
  for socket in /run/user/*/bus; do [[ -S $socket ]] && echo "unix:path=$socket"; done
  return 0
}

probe_unit() { # LABEL NAME [USER]
  local state uid
  if ! command -v systemctl >/dev/null; then verdict false "$1" "no systemd"; return; fi
  if [[ -n ${3:-} ]]; then
    uid=$(id -u -- "$3" 2>/dev/null) || { verdict false "$1" "no user $3"; return; }
    state=$(runuser -u "$3" -- env XDG_RUNTIME_DIR="/run/user/$uid" systemctl --user is-active -- "$2" 2>&1 </dev/null)
  else
    state=$(systemctl is-active -- "$2" 2>&1 </dev/null)
  fi
  if [[ $state == active ]]; then verdict true "$1" active; else verdict false "$1" "${state:-no state}"; fi
}

probe_process() { # LABEL NAME
  local dir comm
  for dir in /proc/[0-9]*; do
    comm=
    { read -r comm <"$dir/comm"; } 2>/dev/null
    if [[ $comm == "$2" ]]; then verdict true "$1" "pid ${dir#/proc/}"; return; fi
  done
  verdict false "$1" "not running"
}

probe_port() { # LABEL PORT
  local code=0
  # shellcheck disable=SC2016 # $1 is the inner shell's
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' ionlab-port "$2" 2>/dev/null </dev/null || code=$?
  case $code in
    0) verdict true "$1" "accepts on 127.0.0.1" ;;
    124) verdict false "$1" "no answer on 127.0.0.1 within 5 s" ;;
    *) verdict false "$1" "refused on 127.0.0.1" ;;
  esac
}

probe_command() { # LABEL ARGV…
  local label=$1 out code=0
  shift
  # `command` so that the argv never calls one of this script's functions.
  out=$(command -- "$@" 2>&1 </dev/null) || code=$?
  if ((code == 0)); then verdict true "$label" "exit 0"; else verdict false "$label" "exit $code${out:+: ${out##*$'\n'}}"; fi
}

# busctl on ADDRESS, as the bus's owner when it is another user's session bus (/run/user/UID/bus).
bus() { # ADDRESS BUSCTL_ARGS…
  local address=$1 owner=''
  shift
  if [[ $address =~ ^unix:path=/run/user/([0-9]+)/bus$ && ${BASH_REMATCH[1]} != "$EUID" ]]; then
    owner=$(id -nu -- "${BASH_REMATCH[1]}" 2>/dev/null) || return 1
  fi
  if [[ -n $owner ]]; then
    runuser -u "$owner" -- busctl --address="$address" "$@"
  else
    busctl --address="$address" "$@"
  fi
}

probe_dbus_name() { # LABEL NAME [USER]
  local address addresses uid
  if [[ -n ${3:-} ]]; then
    uid=$(id -u -- "$3" 2>/dev/null) || { verdict false "$1" "no user $3"; return; }
    [[ -S /run/user/$uid/bus ]] || { verdict false "$1" "$3 has no session bus (/run/user/$uid/bus)"; return; }
    if bus "unix:path=/run/user/$uid/bus" --auto-start=no status -- "$2" >/dev/null 2>&1 </dev/null; then
      verdict true "$1" "on $3's session bus"
    else
      verdict false "$1" "not owned on $3's session bus"
    fi
    return
  fi
  mapfile -t addresses < <(session_buses)
  [[ -S /run/dbus/system_bus_socket ]] && addresses=(unix:path=/run/dbus/system_bus_socket "${addresses[@]}")
  for address in "${addresses[@]}"; do
    if bus "$address" --auto-start=no status -- "$2" >/dev/null 2>&1 </dev/null; then
      verdict true "$1" "on $address"
      return
    fi
  done
  verdict false "$1" "on no bus"
}

probe_dbus_interface() { # LABEL PATH INTERFACE
  local address name names member kind
  while read -r address; do
    mapfile -t names < <(bus "$address" list --acquired --no-legend 2>/dev/null </dev/null | awk '$1 !~ /^:/ { print $1 }')
    for name in "${names[@]}"; do
      while read -r member kind _; do
        if [[ $member == "$3" && $kind == interface ]]; then verdict true "$1" "$name on $address"; return; fi
      done < <(bus "$address" --auto-start=no introspect -- "$name" "$2" 2>/dev/null </dev/null)
    done
  done < <(session_buses)
  verdict false "$1" "no session bus exports it at that path"
}

probe_desktop() { # LABEL USER SECONDS
  local deadline=$((SECONDS + $3)) state
  # No such user: no waiting will make one.
  if ! id -u -- "$2" >/dev/null 2>&1; then
    verdict false "$1" "no user $2: this image has no desktop user"
    return
  fi
  while :; do
    if state=$(desktop_state "$2"); then
      verdict true "$1" "$state"
      return
    fi
    ((SECONDS < deadline)) || break
    sleep 2
  done
  verdict false "$1" "$state"
}

# Prints what of USER's desktop is up, or (failing) the first part that is not.
desktop_state() { # USER
  local user=$1 uid run socket display='' names backend
  uid=$(id -u -- "$user" 2>/dev/null) || { echo "no user $user: this image has no desktop user"; return 1; }
  run=/run/user/$uid
  [[ -S $run/bus ]] || { echo "$user has no session bus ($run/bus): no graphical session was started for $user"; return 1; }
  for socket in "$run"/wayland-*; do
    if [[ -S $socket ]]; then
      display=${socket##*/}
      break
    fi
  done
  [[ -n $display ]] || { echo "no Wayland compositor runs for $user (no wayland-* socket in $run)"; return 1; }
  if command -v wayland-info >/dev/null; then
    runuser -u "$user" -- env XDG_RUNTIME_DIR="$run" WAYLAND_DISPLAY="$display" timeout 10 wayland-info >/dev/null 2>&1 </dev/null ||
      { echo "the compositor does not answer on $run/$display"; return 1; }
  fi
  names=$(bus "unix:path=$run/bus" list --acquired --no-legend 2>/dev/null </dev/null | awk '{ print $1 }') ||
    { echo "$user's session bus does not answer"; return 1; }
  grep -qx org.freedesktop.portal.Desktop <<<"$names" ||
    { echo "the desktop portal (org.freedesktop.portal.Desktop) does not run on $user's session bus"; return 1; }
  backend=$(grep -m1 '^org\.freedesktop\.impl\.portal\.desktop\.' <<<"$names") ||
    { echo "no portal backend (org.freedesktop.impl.portal.desktop.*) runs on $user's session bus"; return 1; }
  echo "$display answers$(command -v wayland-info >/dev/null || echo ' (socket only: no wayland-info)'); session bus; portal with its ${backend##*.} backend"
}

probe_rustdesk_id() { # LABEL
  local out id
  if ! command -v rustdesk >/dev/null; then verdict false "$1" "rustdesk is not installed"; return; fi
  out=$(rustdesk --get-id 2>/dev/null </dev/null)
  id=${out##*$'\n'}
  if [[ -n $id && $id != *[!0-9]* ]]; then verdict true "$1" "$id"; else verdict false "$1" "no ID (${id:-empty})"; fi
}

main() {
  local kind label count index=0 i
  local -a kinds=() labels=() firsts=() counts=() words=()
  ((${#} > 0)) || malformed "no probes given; each is KIND LABEL N ARG1 … ARGN"
  while ((${#} > 0)); do
    index=$((index + 1))
    (($# >= 3)) || malformed "probe $index is cut short: expected KIND LABEL N, found $# word(s)"
    kind=$1 label=$2 count=$3
    shift 3
    [[ $count =~ ^[0-9]{1,6}$ ]] || malformed "probe $index ($kind): N must be a number of arguments (0 to 999999), found '$count'"
    count=$((10#$count))
    ((count <= $#)) || malformed "probe $index ($kind) announces $count argument(s), only $# follow"
    case $kind in
      unit) ((count == 1 || count == 2)) || malformed "probe $index: unit takes NAME [USER], found $count argument(s)" ;;
      process) ((count == 1)) || malformed "probe $index: $kind takes 1 argument, found $count" ;;
      dbus-name) ((count == 1 || count == 2)) || malformed "probe $index: dbus-name takes NAME [USER], found $count argument(s)" ;;
      port)
        ((count == 1)) || malformed "probe $index: port takes 1 argument, found $count"
        if ! [[ $1 =~ ^[0-9]{1,5}$ ]] || ((10#$1 < 1 || 10#$1 > 65535)); then malformed "probe $index: port must be 1 to 65535, found '$1'"; fi
        ;;
      command) ((count >= 1)) || malformed "probe $index: command takes ARGV… (at least 1 argument), found none" ;;
      dbus-interface) ((count == 2)) || malformed "probe $index: dbus-interface takes PATH INTERFACE, found $count argument(s)" ;;
      rustdesk-id) ((count == 0)) || malformed "probe $index: rustdesk-id takes no argument, found $count" ;;
      desktop)
        ((count == 2)) || malformed "probe $index: desktop takes USER SECONDS, found $count argument(s)"
        [[ $2 =~ ^[0-9]{1,5}$ ]] || malformed "probe $index: desktop's SECONDS must be 0 to 99999, found '$2'"
        ;;
      *) malformed "probe $index: unknown kind '$kind' (unit, process, port, command, dbus-name, dbus-interface, rustdesk-id, desktop)" ;;
    esac
    kinds+=("$kind") labels+=("$label") firsts+=("${#words[@]}") counts+=("$count")
    words+=("${@:1:count}")
    shift "$count"
  done
  for i in "${!kinds[@]}"; do
    local -a args=("${words[@]:${firsts[i]}:${counts[i]}}")
    case ${kinds[i]} in
      unit) probe_unit "${labels[i]}" "${args[@]}" ;;
      process) probe_process "${labels[i]}" "${args[@]}" ;;
      port) probe_port "${labels[i]}" "$((10#${args[0]}))" ;;
      command) probe_command "${labels[i]}" "${args[@]}" ;;
      dbus-name) probe_dbus_name "${labels[i]}" "${args[@]}" ;;
      dbus-interface) probe_dbus_interface "${labels[i]}" "${args[@]}" ;;
      rustdesk-id) probe_rustdesk_id "${labels[i]}" ;;
      desktop) probe_desktop "${labels[i]}" "${args[0]}" "$((10#${args[1]}))" ;;
    esac
  done
}

main "$@" 3>&-
printf '{"probes":[%s]}\n' "$(IFS=,; echo "${verdicts[*]}")" >&3
exit "$failed"
