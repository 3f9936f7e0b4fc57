import ArgumentParser
import CIonLabSys
import Dispatch
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabAgentProtocol
import NIOCore

struct Shell: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "Open a shell in a VM (a login shell, or CMD) on a pseudo-terminal, over the agent's channel.",
        discussion: """
            The local terminal is put in raw mode and restored on every exit; its size follows the remote
            terminal, and Ctrl-C, Ctrl-Z and Ctrl-\\ reach the remote session. Exits with the remote status.
            When stdin is not a terminal, runs without one, as `ionlab exec -i` does.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The VM (its agent's name).")
    var vm: String

    @Option(help: "The account to log in as (default: root).")
    var user: String?

    @Argument(parsing: .postTerminator, help: "A command to run instead of a login shell, after --.")
    var command: [String] = []

    func validate() throws {
        if let user, user.isEmpty || user.contains(where: { $0.isWhitespace || $0 == "/" || $0 == ":" }) {
            throw ValidationError("--user takes an account name, got '\(user)'")
        }
    }

    /// A login shell of the account (util-linux's runuser, as su -l), or the command as that account.
    var argv: [String] {
        let account = user ?? "root"
        if command.isEmpty { return ["runuser", "-l", account] }
        return user == nil ? command : ["runuser", "-u", account, "--"] + command
    }

    func run() async throws {
        let status = try await reportingErrors {
            try await RemoteTerminal.run(argv, on: vm, paths: global.paths)
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// Runs a command on a pseudo-terminal in a VM, with this process's terminal in raw mode meanwhile; without
/// a local terminal, as a plain exec with stdin.
enum RemoteTerminal {
    static func run(_ argv: [String], on agent: String, paths: StatePaths, timeout: Double? = nil, env: [String: String] = [:],
                    cwd: String? = nil) async throws -> Int32 {
        guard isatty(STDIN_FILENO) == 1, let size = LocalTerminal.size() else {
            Terminal.error("ionlab: stdin is not a terminal: running without one, as `ionlab exec -i` does")
            let spec = ExecSpec(jobID: Format.newJobID(), argv: argv, env: env, cwd: cwd, stdin: true, timeoutSeconds: timeout)
            return try await RemoteJob.run(spec, on: agent, paths: paths)
        }
        let terminal = TerminalSpec(term: ProcessInfo.processInfo.environment["TERM"] ?? "xterm-256color", rows: size.rows, columns: size.columns)
        let spec = ExecSpec(jobID: Format.newJobID(), argv: argv, env: env, cwd: cwd, stdin: true, timeoutSeconds: timeout, terminal: terminal)
        return try await AdminClient.with(paths: paths) { client in
            let job = try await client.exec(spec, on: agent)
            let raw = try LocalTerminal.enterRawMode()
            defer { raw.restore() }
            let watchers = LocalTerminal.watch(restoring: raw) { rows, columns in
                Task { try? await job.resize(rows: rows, columns: columns) }
            }
            defer { watchers.forEach { $0.cancel() } }
            let pump = Task { await StdinPump.run(into: job, closing: false) }
            defer { pump.cancel() }
            while true {
                switch try await job.next() {
                case .output(_, let bytes):
                    FileHandle.standardOutput.write(Data(bytes.readableBytesView))
                case .started:
                    continue
                case .finished(let result):
                    raw.restore()
                    return RemoteJob.status(of: result, on: agent)
                }
            }
        }
    }
}

/// This process's terminal: its size, raw mode, and the signals that change or end it.
enum LocalTerminal {
    static func size() -> (rows: UInt16, columns: UInt16)? {
        var rows: UInt16 = 0, columns: UInt16 = 0
        for fd in [STDIN_FILENO, STDOUT_FILENO] where ionlab_window_size(fd, &rows, &columns) == 0 && rows > 0 && columns > 0 {
            return (rows, columns)
        }
        return nil
    }

    /// The terminal's settings before raw mode, put back by `restore` (more than once is harmless).
    final class Saved: @unchecked Sendable {
        private var settings: termios
        private let lock = NSLock()
        private var restored = false

        init(_ settings: termios) { self.settings = settings }

        func restore() {
            lock.withLock {
                guard !restored else { return }
                restored = true
                tcsetattr(STDIN_FILENO, TCSADRAIN, &settings)
            }
        }
    }

    /// Raw mode: every key, Ctrl-C included, goes to the remote terminal as a byte.
    static func enterRawMode() throws -> Saved {
        var settings = termios()
        guard tcgetattr(STDIN_FILENO, &settings) == 0 else { throw ControllerError("cannot read the terminal's settings: \(String(cString: strerror(errno)))") }
        let saved = Saved(settings)
        var raw = settings
        cfmakeraw(&raw)
        // TCSADRAIN, not TCSAFLUSH: keys typed before the session began are kept for it.
        guard tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0 else { throw ControllerError("cannot put the terminal in raw mode: \(String(cString: strerror(errno)))") }
        return saved
    }

    /// Sends each new size to `resized`; a SIGTERM or SIGHUP restores the terminal before the process ends.
    static func watch(restoring saved: Saved, resized: @escaping @Sendable (UInt16, UInt16) -> Void) -> [DispatchSourceSignal] {
        let winch = DispatchSource.makeSignalSource(signal: SIGWINCH)
        winch.setEventHandler {
            if let size = size() { resized(size.rows, size.columns) }
        }
        winch.resume()
        let endings = [SIGTERM, SIGHUP].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                saved.restore()
                exit(128 + number)
            }
            source.resume()
            return source
        }
        return [winch] + endings
    }
}
