import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabSpec
import NIOConcurrencyHelpers

/// A guest-side script of a built-in operation, with its arguments and the type of its result. The scripts
/// are real files (`Resources/guest/*.sh`, and `*.py` for what needs D-Bus and GStreamer, bundled with the
/// binary, checked by shellcheck or Python's compiler and tested on their own by `scripts/test-guest-scripts.sh`).
/// Each runs in the VM through the agent, as root, with its values as arguments (never spliced into its text),
/// and reports its result as one JSON line on descriptor 3.
struct GuestScript<Result: Decodable> {
    let name: String
    let arguments: [String]
    /// `sh`, `bash` for what needs it (verify's /dev/tcp), or `python3`.
    var shell = "sh"

    /// What the agent runs: the shared `lib.sh` and the script as one `-c` text, named `ionlab-NAME` for `ps`
    /// and for people; a Python script as its own `-c` text.
    func argv() throws -> [String] {
        if shell == "python3" { return [shell, "-c", try GuestScriptFiles.text(of: name, python: true)] + arguments }
        return [shell, "-c", try GuestScriptFiles.text(of: name), "ionlab-\(name)"] + arguments
    }

    /// The result the script reported.
    func decode(_ result: ExecResult) throws -> Result {
        guard let report = result.report?.split(whereSeparator: \.isNewline).last else {
            throw GuestScriptError("\(name) reported no result")
        }
        do {
            return try JSONDecoder().decode(Result.self, from: Data(report.utf8))
        } catch {
            throw GuestScriptError("\(name) reported a result that does not read: \(Format.oneLine(String(report), limit: 200))")
        }
    }
}

struct GuestScriptError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The bundled script files, read once.
enum GuestScriptFiles {
    private static let texts = NIOLockedValueBox<[String: String]>([:])

    /// `lib.sh` (the result descriptor and JSON strings) followed by the script; a Python script alone.
    static func text(of name: String, python: Bool = false) throws -> String {
        let key = python ? name + ".py" : name
        if let text = texts.withLockedValue({ $0[key] }) { return text }
        let text = python ? try read(name, extension: "py") : try read("lib") + "\n" + read(name)
        texts.withLockedValue { $0[key] = text }
        return text
    }

    private static func read(_ name: String, extension: String = "sh") throws -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: `extension`, subdirectory: "guest"),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw GuestScriptError("the guest script \(name).\(`extension`) is missing from this installation")
        }
        return text
    }
}

/// The scripts, by operation, and their results.
enum GuestScripts {
    /// Where uploaded and downloaded packages wait to be installed.
    static let packageDirectory = "/var/cache/ionlab/packages"

    struct Installed: Decodable {
        struct Package: Decodable {
            var name: String
            var version: String
        }
        var installed: [Package]

        /// "NAME VERSION" of each package.
        var lines: [String] { installed.map { "\($0.name) \($0.version)" } }
    }

    struct Downloaded: Decodable {
        var path: String
        var bytes: Int
        var sha256: String
    }

    struct Systemd: Decodable {
        var systemd: Bool
    }

    struct UnitState: Decodable {
        var unit: String
        var activeState: String
        var subState: String
        var mainPID: Int
    }

    struct Verdicts: Decodable {
        var probes: [ProbeVerdict]
    }

    struct Configured: Decodable {
        var configured: Bool
    }

    struct RustDeskIdentity: Decodable {
        var id: String
        var version: String
    }

    /// `apt-get install NAMES…` (after cloud-init's own first-boot apt runs).
    static func installNames(_ names: [String]) -> GuestScript<Installed> {
        GuestScript(name: "install-packages", arguments: names)
    }

    /// Installs a `.deb` already in the VM, with its dependencies.
    static func installDeb(_ path: String) -> GuestScript<Installed> {
        GuestScript(name: "install-deb", arguments: [path])
    }

    /// Downloads `url` into `path` with whatever the VM has, checking its sha256 when one is given.
    static func download(_ url: String, to path: String, sha256: String?) -> GuestScript<Downloaded> {
        GuestScript(name: "download", arguments: [url, path, sha256 ?? ""])
    }

    /// Fails with a clear reason unless systemd runs the machine.
    static let requireSystemd = GuestScript<Systemd>(name: "require-systemd", arguments: [])

    /// Brings a unit to its state (reloading units first when one was installed), in the system's manager or
    /// a user's; reports the unit's state, or its status and last log lines on failure.
    static func service(_ spec: ServiceSpec, reload: Bool) -> GuestScript<UnitState> {
        GuestScript(name: "service", arguments: [spec.name, spec.state, reload ? "1" : "0", spec.user ?? ""])
    }

    /// Where a unit file goes: the system's unit directory, or the user's.
    static func unitDirectory(user: String?) -> String {
        user.map { $0 == "root" ? "/root/.config/systemd/user" : "/home/\($0)/.config/systemd/user" } ?? "/etc/systemd/system"
    }

    /// Runs every probe; a verdict for each. D-Bus probes look only at names already owned.
    static func verify(_ probes: [Probe]) -> GuestScript<Verdicts> {
        GuestScript(name: "verify", arguments: probes.filter(\.runsInGuest).flatMap(verifyArguments), shell: "bash")
    }

    /// A probe as verify.sh takes it: kind, label, the count of its arguments, and them.
    static func verifyArguments(_ probe: Probe) -> [String] {
        let (kind, values): (String, [String])
        switch probe {
        case .unitActive(let name, let user): (kind, values) = ("unit", [name] + (user.map { [$0] } ?? []))
        case .process(let name): (kind, values) = ("process", [name])
        case .port(let port): (kind, values) = ("port", [String(port)])
        case .command(let argv): (kind, values) = ("command", argv)
        case .dbusName(let name, let user): (kind, values) = ("dbus-name", [name] + (user.map { [$0] } ?? []))
        case .dbusInterface(let path, let interface): (kind, values) = ("dbus-interface", [path, interface])
        case .rustdeskID: (kind, values) = ("rustdesk-id", [])
        case .desktop(let user, let wait): (kind, values) = ("desktop", [user, String(wait)])
        case .remoteDesktop, .portalSession, .screenText: return []  // the controller's (``RemoteDesktopCheck``, …), never the guest's
        }
        return [kind, probe.label, String(values.count)] + values
    }

    /// Sets RustDesk's permanent password (read from stdin, so it is in no argv the controller stores) and
    /// servers with its own CLI. RustDesk's CLI takes the password only as an argument, so it shows in /proc
    /// while that one root command runs; nothing of ionlab's keeps it.
    static func rustdeskConfigure(idServer: String?, relayServer: String?, key: String?) -> GuestScript<Configured> {
        GuestScript(name: "rustdesk-configure", arguments: [idServer ?? "", relayServer ?? "", key ?? ""])
    }

    /// What the guest's side of a portal session reported (`portal-session.py`).
    struct PortalSession: Decodable {
        var ok: Bool
        var step: String?
        var detail: String?
        var steps: [String: Double]?
        var setupSeconds: Double?
        var firstFrameSeconds: Double?
        var frames: Int?
        var windowSeconds: Double?
        var width: Int?
        var height: Int?
        var devices: Int?
        var inputToFrameSeconds: Double?
        var pictures: [String]?

        enum CodingKeys: String, CodingKey {
            case ok, step, detail, steps, setupSeconds = "setup_seconds", firstFrameSeconds = "first_frame_seconds", frames,
                 windowSeconds = "window_seconds", width, height, devices, inputToFrameSeconds = "input_to_frame_seconds", pictures
        }
    }

    /// A ScreenCast session through the portal's frontend as `user`, frames kept in `directory` (made by the
    /// script); with `keysyms` and `marker`, a RemoteDesktop session types the marker in a terminal.
    static func portalSession(user: String, directory: String, seconds: Int, keysyms: [UInt32]?, marker: String?) -> GuestScript<PortalSession> {
        var arguments = [user, directory, String(seconds)]
        if let keysyms, let marker { arguments += [keysyms.map(String.init).joined(separator: ","), marker] }
        return GuestScript(name: "portal-session", arguments: arguments, shell: "python3")
    }

    /// Reads RustDesk's ID, retrying until the service has registered, and its version.
    static let rustdeskID = GuestScript<RustDeskIdentity>(name: "rustdesk-id", arguments: [])

    /// A command line as a person reads it: a guest script by its name and arguments ("ionlab-service hello
    /// started 0 ''"), anything else on one line.
    static func describe(_ argv: [String]) -> String {
        if let shell = argv.first, ["sh", "bash"].contains(shell), argv.dropFirst().first == "-c", argv.count >= 4 {
            return Format.oneLine(argv.dropFirst(3).map { $0.isEmpty ? "''" : $0 }.joined(separator: " "), limit: 160)
        }
        if argv.first == "python3", argv.dropFirst().first == "-c", argv.count >= 3 {
            return Format.oneLine((["python3 (a guest script)"] + argv.dropFirst(3).map { $0.isEmpty ? "''" : $0 }).joined(separator: " "), limit: 160)
        }
        return Format.oneLine(argv.joined(separator: " "), limit: 160)
    }
}
