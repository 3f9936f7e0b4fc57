import ArgumentParser
import Dispatch
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabAgentProtocol
import IonLabWire
import NIOCore

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command on an agent (or all of them), streaming its output.",
        discussion: "Exits with the remote exit code, 128+N for a signal, or 124 after a timeout.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The agent to run on.")
    var agent: String?

    @Flag(help: "Run on every enrolled agent and print a line per agent.")
    var all = false

    @Option(help: "Run on every VM of this fleet and print a line per VM.")
    var fleet: String?

    @Flag(help: "With --all or --fleet: print each agent's result as a JSON line, as it comes (docs/json.md).")
    var json = false

    @Option(help: "Kill the command's whole process group after this many seconds.")
    var timeout: Double?

    @Option(help: "Set an environment variable (NAME=VALUE); repeatable.")
    var env: [String] = []

    @Option(help: "Working directory on the agent.")
    var cwd: String?

    @Flag(name: [.customShort("i"), .customLong("stdin"), .customLong("interactive")],
          help: "Send this command's stdin to the remote command (-i, as docker and kubectl spell it).")
    var forwardStdin = false

    @Flag(name: [.customShort("t"), .customLong("tty")],
          help: "Run the command on a pseudo-terminal, this terminal in raw mode meanwhile (as ssh -t); implies -i.")
    var tty = false

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        guard [all, agent != nil, fleet != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("name one agent, or pass --all or --fleet NAME")
        }
        if forwardStdin || tty, agent == nil { throw ValidationError("--stdin and --tty work with one agent only") }
        if json, agent != nil { throw ValidationError("--json works with --all or --fleet (one agent's output is the command's own)") }
        guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. `ionlab exec vm1 -- uname -a`") }
        if let timeout, !(timeout > 0 && timeout <= ExecSpec.maximumTimeout) {
            throw ValidationError("--timeout must be a positive number of seconds, at most \(Int(ExecSpec.maximumTimeout)) (a year)")
        }
        for pair in env where !pair.contains("=") { throw ValidationError("--env takes NAME=VALUE, got '\(pair)'") }
    }

    var spec: ExecSpec {
        var environment: [String: String] = [:]
        for pair in env {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            environment[String(parts[0])] = String(parts[1])
        }
        return ExecSpec(jobID: Format.newJobID(), argv: command, env: environment, cwd: cwd, stdin: forwardStdin, timeoutSeconds: timeout)
    }

    func run() async throws {
        let status = try await reportingErrors { () -> Int32 in
            if all { return try await runEverywhere(.all) }
            if let fleet { return try await runEverywhere(.fleet(fleet)) }
            return try await runOne(on: agent!)
        }
        if status != 0 { throw ExitCode(status) }
    }

    private func runOne(on agent: String) async throws -> Int32 {
        if tty {
            let spec = self.spec
            return try await RemoteTerminal.run(spec.argv, on: agent, paths: global.paths, timeout: spec.timeoutSeconds, env: spec.env, cwd: spec.cwd)
        }
        return try await RemoteJob.run(spec, on: agent, paths: global.paths)
    }

    private func runEverywhere(_ target: ExecTarget) async throws -> Int32 {
        let spec = self.spec
        return try await AdminClient.with(paths: global.paths) { client in
            var tally = FanoutTally()
            for try await line in try await client.execAll(spec, target: target) {
                let text = tally.add(line)
                Terminal.line(json ? JSONOutput.line(line) : text)
                Terminal.flush()
            }
            if !json { Terminal.line(tally.summary) }
            return tally.allSucceeded ? 0 : 1
        }
    }
}

/// Counts fan-out outcomes and renders a line per agent.
struct FanoutTally {
    var ok = 0, failed = 0, timedOut = 0, down = 0

    mutating func add(_ line: FanoutLine) -> String {
        guard let result = line.result else {
            if line.error == "down" { down += 1 } else { failed += 1 }
            return "\(line.agent)  \(line.error == "down" ? "down" : "error")  \(Format.escaped(line.error ?? ""))"
        }
        let verdict: String
        switch (result.outcome, result.succeeded) {
        case (.timedOut, _): timedOut += 1; verdict = "timed out"
        case (_, true): ok += 1; verdict = "ok"
        default: failed += 1; verdict = "failed"
        }
        let lastLine = result.outputTail.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
        return "\(line.agent)  \(verdict)  \(Format.escaped(result.summary))  \(String(format: "%.2fs", result.durationSeconds))  \(Format.escaped(lastLine))"
    }

    var summary: String {
        "\(ok + failed + timedOut + down) agents: \(ok) ok, \(failed) failed, \(timedOut) timed out, \(down) down"
    }

    var allSucceeded: Bool { failed + timedOut + down == 0 }
}

/// Runs a handler on SIGINT instead of dying, so a remote job can be cancelled cleanly.
enum Interrupts {
    static func onSIGINT(_ handler: @escaping @Sendable () -> Void) -> DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT)
        source.setEventHandler(handler: handler)
        source.resume()
        return source
    }
}

/// Copies this process's stdin to a remote job's stdin.
enum StdinPump {
    /// Copies stdin until its end, then (with `closing`) closes the remote stdin. A terminal's stdin is not
    /// closed at its end: its Ctrl-D is a byte like the others.
    static func run(into job: ExecStream<AdminStreamMessage>, closing: Bool) async {
        let allocator = ByteBufferAllocator()
        while !Task.isCancelled {
            let data = FileHandle.standardInput.availableData
            if data.isEmpty { break }
            do {
                try await job.send(stdin: allocator.buffer(bytes: data))
            } catch {
                return
            }
        }
        if closing { try? await job.closeStdin() }
    }
}

/// One job on one agent, its output streamed as it comes: stdin sent when the spec asks, Ctrl-C cancelling it.
enum RemoteJob {
    static func run(_ spec: ExecSpec, on agent: String, paths: StatePaths) async throws -> Int32 {
        try await AdminClient.with(paths: paths) { client in
            let job = try await client.exec(spec, on: agent)
            let interrupt = Interrupts.onSIGINT { Task { try? await job.cancel() } }
            defer { interrupt.cancel() }
            let stdinPump = spec.stdin ? Task { await StdinPump.run(into: job, closing: true) } : nil
            defer { stdinPump?.cancel() }
            while true {
                let update: ExecStream<AdminStreamMessage>.Update
                do {
                    update = try await job.next()
                } catch let failure as Failure {
                    throw failure
                } catch {
                    throw ControllerError("\(AdminDescribe.error(error)); job \(spec.jobID) may still run on \(agent), see `ionlab jobs \(agent)`")
                }
                switch update {
                case .output(.stderr, let bytes):
                    FileHandle.standardError.write(Data(bytes.readableBytesView))
                case .output(_, let bytes):
                    FileHandle.standardOutput.write(Data(bytes.readableBytesView))
                case .started:
                    continue
                case .finished(let result):
                    return status(of: result, on: agent)
                }
            }
        }
    }

    /// The shell status a job's result gives, said on stderr when the job did not complete on its own.
    static func status(of result: ExecResult, on agent: String) -> Int32 {
        if result.outcome != .completed {
            Terminal.error("ionlab: \(agent): job \(result.jobID) \(Format.escaped(result.summary))")
        }
        return result.shellStatus
    }
}
