import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabSpec

/// The POSIX shell the built-in operations run in the VM, through the agent, as root. Each takes its values
/// as positional arguments (never spliced into the script), prints what the controller reads back, and
/// fails with the tool's own message on stderr.
enum GuestScripts {
    /// Where uploaded and downloaded packages wait to be installed.
    static let packageDirectory = "/var/cache/ionlab/packages"

    /// Waits for cloud-init (its first-boot apt runs would hold the lock), then installs with apt, waiting for
    /// the dpkg lock rather than failing.
    static let aptPreamble = """
        if command -v cloud-init >/dev/null; then cloud-init status --wait >/dev/null 2>&1 || true; fi
        export DEBIAN_FRONTEND=noninteractive
        """

    /// `apt-get install NAMES…`, then "installed NAME VERSION" per package.
    static func installNames(_ names: [String]) -> [String] {
        let script = aptPreamble + """

            apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends -- "$@" || exit $?
            dpkg-query -W -f='installed ${Package} ${Version}\\n' -- "$@"
            """
        return ["sh", "-c", script, "ionlab-package"] + names
    }

    /// Installs a `.deb` already in the VM (and its dependencies), then "installed NAME VERSION".
    static func installDeb(_ path: String) -> [String] {
        let script = aptPreamble + """

            apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends -- "$1" || exit $?
            dpkg-deb -W --showformat='installed ${Package} ${Version}\\n' -- "$1"
            """
        return ["sh", "-c", script, "ionlab-package", path]
    }

    /// Downloads `url` into `path` with whatever the VM has (curl, wget, python3), checking its sha256
    /// when one is given.
    static func download(_ url: String, to path: String, sha256: String?) -> [String] {
        let script = """
            mkdir -p -- "$(dirname -- "$2")"
            if command -v curl >/dev/null; then curl -fsSL --retry 3 -o "$2" -- "$1"
            elif command -v wget >/dev/null; then wget -q -O "$2" -- "$1"
            else python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2"
            fi || { echo "cannot download $1" >&2; exit 1; }
            if [ -n "$3" ]; then
              actual=$(sha256sum -- "$2" | cut -d' ' -f1)
              [ "$actual" = "$3" ] || { echo "sha256 of $1 is $actual, expected $3" >&2; rm -f -- "$2"; exit 1; }
            fi
            echo "downloaded $1 ($(stat -c %s -- "$2") bytes)"
            """
        return ["sh", "-c", script, "ionlab-download", url, path, sha256 ?? ""]
    }

    /// The systemctl to use: the system's, or (with a user) that user's manager, lingering so it runs
    /// without a login. Fails clearly when systemd is missing or not running.
    static let systemctlPreamble = requireSystemdScript + """

        if [ -n "$IONLAB_USER" ]; then
          uid=$(id -u -- "$IONLAB_USER") || exit 1
          [ -S /run/dbus/system_bus_socket ] || { echo "user services need D-Bus in the image (dbus, dbus-user-session): there is no system bus" >&2; exit 1; }
          loginctl enable-linger -- "$IONLAB_USER" || exit 1
          for _ in $(seq 50); do [ -S "/run/user/$uid/bus" ] && break; sleep 0.2; done
          [ -S "/run/user/$uid/bus" ] || { echo "$IONLAB_USER has no session bus (/run/user/$uid/bus): user services need dbus-user-session in the image" >&2; exit 1; }
          ctl() { runuser -u "$IONLAB_USER" -- env XDG_RUNTIME_DIR="/run/user/$uid" systemctl --user "$@"; }
        else
          ctl() { systemctl "$@"; }
        fi
        """

    static let requireSystemdScript = """
        command -v systemctl >/dev/null || { echo "systemd is not available on this machine (no systemctl)" >&2; exit 127; }
        [ -d /run/systemd/system ] || { echo "systemd is not running on this machine (PID 1 is $(cat /proc/1/comm))" >&2; exit 127; }
        """

    /// A command line as a person reads it: a built-in script by its name and arguments ("ionlab-service
    /// hello"), anything else on one line.
    static func describe(_ argv: [String]) -> String {
        var words = argv[...]
        if words.first == "env" {
            words = words.dropFirst().drop { $0.contains("=") }
        }
        if let shell = words.first, ["sh", "bash"].contains(shell), words.dropFirst().first == "-c", words.count >= 4 {
            return words.dropFirst(3).joined(separator: " ")
        }
        return Format.oneLine(argv.joined(separator: " "), limit: 160)
    }

    /// Fails with a clear reason unless systemd runs the machine.
    static let requireSystemd = ["sh", "-c", requireSystemdScript]

    /// Brings a unit to a state (reloading units first when one was installed), then its properties; on
    /// failure, its status and last log lines.
    static func service(_ spec: ServiceSpec, reload: Bool) -> [String] {
        let verb: String
        switch spec.state {
        case "restarted": verb = "restart"
        case "stopped": verb = "stop"
        case "enabled": verb = "enable --now"
        default: verb = "start"
        }
        let script = systemctlPreamble + """

            \(reload ? "ctl daemon-reload || exit 1" : "")
            ctl \(verb) -- "$1" || { ctl status --no-pager -n 20 -- "$1" >&2; exit 1; }
            ctl show -p ActiveState -p SubState -p MainPID -- "$1"
            """
        return ["env", "IONLAB_USER=\(spec.user ?? "")", "sh", "-c", script, "ionlab-service", spec.name]
    }

    /// Where a unit file goes: the system's unit directory, or the user's.
    static func unitDirectory(user: String?) -> String {
        user.map { $0 == "root" ? "/root/.config/systemd/user" : "/home/\($0)/.config/systemd/user" } ?? "/etc/systemd/system"
    }

    /// Runs every probe and prints a line per probe, "PASS<TAB>label<TAB>detail" or "FAIL<TAB>…"; exits 1 if
    /// any failed. D-Bus probes look only at names already owned and start no activatable service.
    static func verify(_ probes: [Probe]) -> [String] {
        var lines = [
            "failed=0",
            #"pass() { printf 'PASS\t%s\t%s\n' "$1" "$2"; }"#,
            #"fail() { printf 'FAIL\t%s\t%s\n' "$1" "$2"; failed=1; }"#,
        ]
        var arguments: [String] = []
        func argument(_ value: String) -> String {
            arguments.append(value)
            return "\"${\(arguments.count)}\""
        }
        for probe in probes {
            let label = argument(probe.label)
            switch probe {
            case .unitActive(let name, let user):
                let unit = argument(name)
                var ctl = "systemctl"
                if let user {
                    let who = argument(user)
                    ctl = "runuser -u \(who) -- env XDG_RUNTIME_DIR=/run/user/$(id -u -- \(who)) systemctl --user"
                }
                lines.append("state=$(\(ctl) is-active -- \(unit) 2>&1); [ \"$state\" = active ] && pass \(label) active || fail \(label) \"${state:-no systemd}\"")
            case .process(let name):
                lines.append("""
                    pid=""; for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = \(argument(name)) ] && { pid=${p#/proc/}; break; }; done
                    [ -n "$pid" ] && pass \(label) "pid $pid" || fail \(label) "not running"
                    """)
            case .port(let port):
                lines.append("""
                    if timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0' \(argument(String(port))) 2>/dev/null; then pass \(label) "accepts on 127.0.0.1"; else fail \(label) "refused on 127.0.0.1"; fi
                    """)
            case .command(let argv):
                let words = argv.map { argument($0) }.joined(separator: " ")
                lines.append("out=$(\(words) 2>&1); code=$?; [ $code = 0 ] && pass \(label) \"exit 0\" || fail \(label) \"exit $code: $(printf '%s' \"$out\" | tail -n 1)\"")
            case .dbusName(let name):
                lines.append("""
                    found=""; for bus in ${DBUS_SESSION_BUS_ADDRESS:-} unix:path=/run/dbus/system_bus_socket /run/user/*/bus; do
                      case $bus in unix:*) addr=$bus;; *) [ -S "$bus" ] || continue; addr=unix:path=$bus;; esac
                      busctl --address="$addr" --auto-start=no status -- \(argument(name)) >/dev/null 2>&1 && { found=$addr; break; }
                    done
                    [ -n "$found" ] && pass \(label) "on $found" || fail \(label) "on no bus"
                    """)
            case .dbusInterface(let path, let interface):
                lines.append("""
                    found=""; for bus in ${DBUS_SESSION_BUS_ADDRESS:-} /run/user/*/bus; do
                      case $bus in unix:*) addr=$bus;; *) [ -S "$bus" ] || continue; addr=unix:path=$bus;; esac
                      for name in $(busctl --address="$addr" list --acquired --no-legend 2>/dev/null | awk '{print $1}' | grep -v '^:'); do
                        busctl --address="$addr" --auto-start=no introspect -- "$name" \(argument(path)) 2>/dev/null \\
                          | awk -v want=\(argument(interface)) '$1 == want && $2 == "interface" { hit = 1 } END { exit !hit }' && { found="$name on $addr"; break 2; }
                      done
                    done
                    [ -n "$found" ] && pass \(label) "$found" || fail \(label) "no session bus exports it at that path"
                    """)
            case .rustdeskID:
                lines.append("""
                    id=$(rustdesk --get-id 2>/dev/null | tail -n 1); case $id in ''|*[!0-9]*) fail \(label) "no ID (${id:-empty})";; *) pass \(label) "$id";; esac
                    """)
            }
        }
        lines.append("exit $failed")
        return ["bash", "-c", lines.joined(separator: "\n"), "ionlab-verify"] + arguments
    }

    /// Sets RustDesk's permanent password (read from stdin, so it is in no argv the controller stores) and
    /// servers with its own CLI. RustDesk's CLI takes the password only as an argument, so it shows in /proc
    /// while that one root command runs; nothing of ionlab's keeps it.
    static func rustdeskConfigure(idServer: String?, relayServer: String?, key: String?) -> [String] {
        let script = """
            IFS= read -r password || [ -n "$password" ] || { echo "no password on stdin" >&2; exit 1; }
            rustdesk --password "$password" >/dev/null || { echo "rustdesk --password failed" >&2; exit 1; }
            unset password
            [ -z "$1" ] || rustdesk --option custom-rendezvous-server "$1" || exit 1
            [ -z "$2" ] || rustdesk --option relay-server "$2" || exit 1
            [ -z "$3" ] || rustdesk --option key "$3" || exit 1
            echo "configured"
            """
        return ["sh", "-c", script, "ionlab-rustdesk", idServer ?? "", relayServer ?? "", key ?? ""]
    }

    /// Reads RustDesk's ID, retrying until the service has registered; prints "id ID" and "version V".
    static let rustdeskID: [String] = ["sh", "-c", """
        for _ in $(seq 120); do
          id=$(rustdesk --get-id 2>/dev/null | tail -n 1)
          case $id in ''|*[!0-9]*) sleep 1;; *) echo "id $id"; echo "version $(rustdesk --version 2>/dev/null | tail -n 1)"; exit 0;; esac
        done
        echo "rustdesk --get-id gave no ID within 120 s (last answer: '${id}')" >&2; exit 1
        """]
}
