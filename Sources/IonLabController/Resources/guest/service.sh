#!/bin/sh
# service.sh NAME STATE RELOAD [USER]
#   STATE: started, restarted, stopped or enabled (enabled: enable --now); RELOAD: 1 to daemon-reload first
#   (a unit file was just installed), 0 not to; USER: empty for the system manager, or an account whose
#   user manager runs the unit.
# Result on fd 3 (stdout when fd 3 is not open):
#   {"unit":"NAME","activeState":"active","subState":"running","mainPID":123}
# On failure: the unit's status and last log lines on stderr, exit 1. Exit 127 without systemd, 2 on bad
# arguments. A user's manager needs the user to linger, so that it runs without a login, and its session
# bus. Commands run with fd 3 closed, so nothing they start keeps the result pipe open.
# shellcheck source-path=SCRIPTDIR source=lib.sh
command -v ionlab_json >/dev/null 2>&1 || . "$(dirname -- "$0")/lib.sh" || exit

usage() { echo "service.sh: $1; usage: service.sh NAME started|restarted|stopped|enabled 1|0 [USER]" >&2; exit 2; }

# systemctl for the system manager, or for USER's manager.
ctl() {
  if [ -n "$user" ]; then
    runuser -u "$user" -- env XDG_RUNTIME_DIR="/run/user/$uid" systemctl --user "$@"
  else
    systemctl "$@"
  fi
}

main() {
  case $# in 3 | 4) ;; *) usage "expected 3 or 4 arguments, found $#" ;; esac
  name=$1 state=$2 reload=$3 user=${4:-}
  [ -n "$name" ] || usage "the unit name is empty"
  case $state in
    started) verb=start ;;
    restarted) verb=restart ;;
    stopped) verb=stop ;;
    enabled) verb=enable ;;
    *) usage "unknown state '$state'" ;;
  esac
  case $reload in 0 | 1) ;; *) usage "RELOAD is 1 or 0, found '$reload'" ;; esac

  command -v systemctl >/dev/null || { echo "systemd is not available on this machine (no systemctl)" >&2; exit 127; }
  [ -d /run/systemd/system ] || { echo "systemd is not running on this machine (PID 1 is $(cat /proc/1/comm))" >&2; exit 127; }
  if [ -n "$user" ]; then
    uid=$(id -u -- "$user") || exit 1
    [ -S /run/dbus/system_bus_socket ] || { echo "user services need D-Bus in the image (dbus, dbus-user-session): there is no system bus" >&2; exit 1; }
    loginctl enable-linger -- "$user" || exit 1
    for _ in $(seq 50); do [ -S "/run/user/$uid/bus" ] && break; sleep 0.2; done
    [ -S "/run/user/$uid/bus" ] || { echo "$user has no session bus (/run/user/$uid/bus): user services need dbus-user-session in the image" >&2; exit 1; }
  fi

  [ "$reload" = 0 ] || ctl daemon-reload || exit 1
  if [ "$verb" = enable ]; then ctl enable --now -- "$name"; else ctl "$verb" -- "$name"; fi || {
    ctl status --no-pager -n 20 -- "$name" >&2
    exit 1
  }
  properties=$(ctl show -p ActiveState -p SubState -p MainPID -- "$name") || exit 1
  active='' sub='' pid=''
  while IFS='=' read -r key value; do
    case $key in
      ActiveState) active=$value ;;
      SubState) sub=$value ;;
      MainPID) pid=$value ;;
    esac
  done <<PROPERTIES
$properties
PROPERTIES
  case $pid in '' | *[!0-9]*) echo "systemctl show gave no MainPID for $name: $properties" >&2; exit 1 ;; esac
  echo "$name: $active/$sub, main PID $pid${user:+ (user $user)}"
  result="{\"unit\":$(ionlab_json "$name"),\"activeState\":$(ionlab_json "$active"),\"subState\":$(ionlab_json "$sub"),\"mainPID\":$pid}"
}

main "$@" 3>&-
printf '%s\n' "$result" >&3
