import Foundation
import Testing

/// A real controller (`ionlab serve`) and real agents (`ionlab-agent`) in a temporary directory, talking
/// over 127.0.0.1. Every process it starts is killed, by PID, when the lab is torn down.
final class Lab: @unchecked Sendable {
    let directory: String
    let port: Int
    private(set) var controller: Process?
    private var agents: [String: Process] = [:]
    private var helpers: [Process] = []
    private let lock = NSLock()

    static let binaries: String = {
        if let dir = ProcessInfo.processInfo.environment["IONLAB_BIN_DIR"] { return dir }
        var candidate = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // Swift Testing may run from a bundle directory; walk up to the folder holding the products.
        for _ in 0..<4 where !FileManager.default.fileExists(atPath: candidate.appendingPathComponent("ionlab").path) {
            candidate.deleteLastPathComponent()
        }
        return candidate.path
    }()

    var stateDir: String { "\(directory)/controller" }
    var endpoint: String { "127.0.0.1:\(port)" }

    init(config extra: String = "") async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = try Lab.freePort()
        let initResult = await run(["init", "--listen", endpoint])
        try #require(initResult.status == 0, "ionlab init failed: \(initResult.stderr)")
        if !extra.isEmpty {
            let path = "\(stateDir)/controller.yaml"
            try Lab.override(path, with: extra)
        }
    }

    /// Replaces top-level YAML settings (with any nested lines under them) in a file with those in `extra`.
    static func override(_ path: String, with extra: String) throws {
        func key(_ line: Substring) -> String { line.split(separator: ":").first.map(String.init) ?? "" }
        let keys = Set(extra.split(separator: "\n").filter { !$0.hasPrefix(" ") && !$0.hasPrefix("-") }.map(key))
        var kept: [Substring] = []
        var skipping = false
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            if !(line.hasPrefix(" ") || line.hasPrefix("-")) { skipping = keys.contains(key(line)) }
            if !skipping { kept.append(line) }
        }
        try (kept.joined(separator: "\n") + "\n" + extra).write(toFile: path, atomically: true, encoding: .utf8)
    }

    deinit { tearDown() }

    func tearDown() {
        let processes: [Process] = lock.withLock {
            defer {
                agents = [:]
                helpers = []
                controller = nil
            }
            return Array(agents.values) + helpers + [controller].compactMap { $0 }
        }
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Processes

    /// Starts `ionlab serve` and waits until its admin socket answers.
    func startController(arguments: [String] = []) async throws {
        let process = try spawn(binary: "ionlab", ["serve", "--state-dir", stateDir] + arguments, log: "controller.log")
        lock.withLock { controller = process }
        try await eventually("the controller to answer", timeout: 20) { await self.run(["agents"]).status == 0 }
    }

    /// Kills the controller with SIGKILL.
    func killController() {
        let process: Process? = lock.withLock {
            defer { controller = nil }
            return controller
        }
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Mints a token and writes an agent config for `name`, changed by `edit`.
    func agentConfig(_ name: String, ttl: Double? = nil, edit: (inout AgentConfig) throws -> Void = { _ in }) async throws -> String {
        let path = "\(directory)/\(name).json"
        var arguments = ["token", "create", name, "--output", path]
        if let ttl { arguments += ["--ttl", "\(ttl)"] }
        let result = await run(arguments)
        try #require(result.status == 0, "token create failed: \(result.stderr)")
        try Lab.editAgentConfig(path, edit)
        return path
    }

    /// Rewrites an agent config file with `edit` applied.
    static func editAgentConfig(_ path: String, _ edit: (inout AgentConfig) throws -> Void) throws {
        var config = try AgentConfig.load(path: path)
        try edit(&config)
        try config.json().write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Starts an agent process with its own state directory.
    @discardableResult
    func startAgent(_ name: String, config configPath: String, stateName: String? = nil, arguments: [String] = [],
                    environment: [String: String] = [:]) throws -> Process {
        let state = "\(directory)/agent-\(stateName ?? name)"
        let process = try spawn(binary: "ionlab-agent", ["--config", configPath, "--state-dir", state, "--log-level", "debug"] + arguments,
                                log: "agent-\(stateName ?? name).log", environment: environment)
        lock.withLock { agents[stateName ?? name] = process }
        return process
    }

    /// Starts an agent and waits until the controller lists it as connected. It heartbeats every second and
    /// waits at most a second between tries to reconnect: tests that restart the controller wait for the agent
    /// to come back, and the default backoff (up to 10 s, doubling from 0.25 s) made that wait a race against
    /// the controller's start-up on a loaded machine.
    func connectAgent(_ name: String, edit: (inout AgentConfig) -> Void = Lab.quickAgent) async throws {
        try startAgent(name, config: try await agentConfig(name, edit: edit))
        try await waitConnected(name)
    }

    static func quickAgent(_ config: inout AgentConfig) {
        config.heartbeatSeconds = 1
        config.reconnectMaxSeconds = 1
    }

    func waitConnected(_ name: String, timeout: Double = 20) async throws {
        try await eventually("\(name) to connect", timeout: timeout) {
            await self.agentStates()[name] == "connected"
        }
    }

    func agentStates() async -> [String: String] {
        let result = await run(["agents", "--json"])
        guard result.status == 0, let data = result.stdout.data(using: .utf8),
              let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return [:] }
        var states: [String: String] = [:]
        for agent in list { states[agent["name"] as? String ?? ""] = agent["state"] as? String }
        return states
    }

    func agentProcess(_ name: String) -> Process? { lock.withLock { agents[name] } }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)) ?? ""
    }

    /// Starts `ionlab ARGS` in the background, its output going to a log file in the lab (its input from
    /// `stdinFile` if given).
    func spawnCLI(_ arguments: [String], log: String, stdinFile: String? = nil) throws -> Process {
        try spawn(binary: "ionlab", arguments, log: log, stdinFile: stdinFile)
    }

    /// Starts a program that is not ionlab's (a server the test talks to) in the background; it is killed
    /// with the lab.
    func spawnHelper(_ path: String, _ arguments: [String], log: String) throws -> Process {
        let process = try spawn(path: path, arguments, log: log)
        lock.withLock { helpers.append(process) }
        return process
    }

    private func spawn(binary: String, _ arguments: [String], log: String, environment extra: [String: String] = [:],
                       stdinFile: String? = nil) throws -> Process {
        try spawn(path: "\(Lab.binaries)/\(binary)", arguments, log: log, environment: extra, stdinFile: stdinFile)
    }

    private func spawn(path: String, _ arguments: [String], log: String, environment extra: [String: String] = [:],
                       stdinFile: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["IONLAB_STATE_DIR"] = stateDir
        environment.merge(extra) { $1 }
        process.environment = environment
        let logPath = "\(directory)/\(log)"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        if let stdinFile { process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: stdinFile)) }
        try process.run()
        return process
    }

    // MARK: The CLI

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `ionlab ARGS` against this lab's controller and waits for it.
    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) async -> Result {
        await Lab.runProgram("\(Lab.binaries)/ionlab", arguments, environment: ["IONLAB_STATE_DIR": stateDir], directory: directory, stdin: stdin)
    }

    /// Runs a program to completion, killing it (and failing the result) if it outlives `deadline` seconds.
    /// The wait happens on a thread of its own: tests run in parallel on a pool with one thread per core, and
    /// a test blocked in waitpid(2) there stalls every other test (on two cores, two CLI runs stalled them all).
    static func runProgram(_ path: String, _ arguments: [String], environment extra: [String: String] = [:], directory: String,
                           stdin: String? = nil, deadline: Double = 120) async -> Result {
        await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: runProgramBlocking(path, arguments, environment: extra, directory: directory,
                                                                  stdin: stdin, deadline: deadline))
            }.start()
        }
    }

    /// ``runProgram(_:_:environment:directory:stdin:deadline:)`` on the caller's thread, for a `defer`, which
    /// cannot wait.
    static func runProgramBlocking(_ path: String, _ arguments: [String], environment extra: [String: String] = [:],
                                   directory: String, stdin: String? = nil, deadline: Double = 120) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.merge(extra) { $1 }
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let id = UUID().uuidString.prefix(8)
        let outPath = "\(directory)/.out-\(id)", errPath = "\(directory)/.err-\(id)"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        do {
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
            if let stdin {
                let inPath = "\(directory)/.in-\(id)"
                try stdin.write(toFile: inPath, atomically: true, encoding: .utf8)
                process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
            } else {
                process.standardInput = FileHandle.nullDevice
            }
            try process.run()
        } catch {
            return Result(status: -1, stdout: "", stderr: "cannot run \(path): \(error)")
        }
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + deadline, execute: watchdog)
        process.waitUntilExit()
        let killed = watchdog.isCancelled == false && process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
        watchdog.cancel()
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        var err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        if killed { err += "\n[lab] \(path) killed after its \(deadline) s deadline" }
        return Result(status: process.terminationStatus, stdout: out, stderr: err)
    }

    // MARK: Helpers

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw LabError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct LabError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or the timeout passes.
func eventually(_ what: String, timeout: Double, _ condition: @escaping () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw LabError("timed out after \(Int(timeout))s waiting for \(what)")
}

import IonLabConfig
import IonLabPKI

extension Lab {
    /// The pin of this lab's CA, as agents know it.
    var pin: CAPin {
        get throws { SPKIPin.of(try PEMFile.readCertificate(path: "\(stateDir)/ca.pem")) }
    }

    /// Waits for a process to exit and returns its status.
    func exitStatus(of process: Process, timeout: Double = 20) async throws -> Int32 {
        try await eventually("process \(process.processIdentifier) to exit", timeout: timeout) { !process.isRunning }
        return process.terminationStatus
    }

    /// The controller still serves: a command runs on `agent`.
    func stillServes(_ agent: String) async -> Bool {
        let result = await run(["exec", agent, "--", "echo", "alive"])
        return result.status == 0 && result.stdout == "alive\n"
    }
}
