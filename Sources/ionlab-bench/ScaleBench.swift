import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabController
import IonLabControllerConfig
import IonLabPKI
import IonLabWire
import NIOPosix

/// One controller against many simulated agents on loopback (docs/targets.md): the controller's memory per
/// connected agent, and the time to fan a command out to a thousand of them.
struct ScaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Controller memory per agent and fan-out time, with simulated agents on 127.0.0.1.")

    @OptionGroup var output: ResultsOption

    @Option(help: "Agent counts to reach in turn, comma-separated.")
    var agents = "1000,10000"

    @Option(help: "Agents one fan-out reaches (the first ones enrolled).")
    var fanout = 1000

    @Option(help: "Seconds between a simulated agent's heartbeats.")
    var heartbeatSeconds: Double = 10

    @Option(help: "Fan-outs timed at each agent count.")
    var runs = 5

    @Option(help: "Enrollments in flight at once.")
    var concurrency = 64

    static let memoryTargetKB = 100.0
    static let fanoutTargetSeconds = 2.0

    var counts: [Int] { agents.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        let counts = self.counts
        guard !counts.isEmpty, counts.count == agents.split(separator: ",").count, counts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--agents takes positive counts separated by commas, such as 1000,10000")
        }
        guard fanout > 0, runs > 0, concurrency > 0, heartbeatSeconds > 0 else {
            throw ValidationError("--fanout, --runs, --concurrency and --heartbeat-seconds must be positive")
        }
    }

    func run() async throws {
        let counts = self.counts.sorted()
        try Binaries.ensure()
        try ProcStats.checkFileLimit(needed: counts.last! + 1024)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-bench-scale-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        print("starting an ionlab controller on 127.0.0.1…")
        let controller = try await ScaleController.start(in: work, heartbeatSeconds: heartbeatSeconds)
        defer { controller.stop() }
        let fleet = try SimulatedFleet(endpoint: controller.endpoint, pin: controller.pin, heartbeatSeconds: heartbeatSeconds,
                                       group: MultiThreadedEventLoopGroup.singleton)
        defer { fleet.stop() }
        try await Task.sleep(for: .seconds(2))
        let baseline = try controller.sample()
        print("controller pid \(controller.pid): \(baseline.rssKB) KB resident before any agent")

        var rows: [ScaleRow] = []
        for count in counts {
            rows.append(try await measure(count, fleet: fleet, controller: controller, baseline: baseline))
        }
        let end = try controller.sample()
        print("")
        print(ScaleRow.render(rows))
        printNotes(rows, fleet: fleet)
        print("")
        print("targets (docs/targets.md):")
        for row in rows { verdicts(row) }
        let cpu = end.cpuSeconds - baseline.cpuSeconds
        let wall = (end.time - baseline.time).seconds
        print(String(format: "controller CPU: %.1f s over %.1f s of wall time (%.0f%% of one core; %d cores)",
                     cpu, wall, 100 * cpu / wall, ProcessInfo.processInfo.activeProcessorCount))
        if let largest = rows.last {
            try output.record(["agents": Double(largest.agents), "per_agent_kb": largest.perAgentKB,
                               "fanout_targets": Double(largest.fanoutTargets), "fanout_median_s": largest.fanout.samples.median,
                               "fanout_failed": Double(largest.fanout.failed)])
        }
    }

    /// Grows the fleet to `count` agents, then measures memory, idle CPU and fan-outs.
    private func measure(_ count: Int, fleet: SimulatedFleet, controller: ScaleController, baseline: ProcSample) async throws -> ScaleRow {
        print("enrolling and connecting agents up to \(count), \(concurrency) at a time…")
        let start = try controller.sample()
        let concurrency = self.concurrency
        try await AdminClient.with(paths: controller.paths) { admin in
            await fleet.grow(to: count, concurrency: concurrency, admin: admin)
        }
        let note = try await controller.waitForConnected(count, fleet: fleet)
        let connected = try controller.sample()
        print(String(format: "  %d connected after %.1f s; holding them for two heartbeat intervals…", count, (connected.time - start.time).seconds))

        try await Task.sleep(for: .seconds(2 * heartbeatSeconds))
        let idle = try controller.sample()
        let targets = (0..<min(fanout, count)).map(SimulatedFleet.name)
        print("  fanning `true` out to \(targets.count) agents, \(runs) times…")
        let fanouts = try await Fanout.time(to: targets, runs: runs, paths: controller.paths)
        let done = try controller.sample()

        return ScaleRow(agents: count, connectSeconds: (connected.time - start.time).seconds,
                        connectCPU: connected.cpuSeconds - start.cpuSeconds, rssKB: idle.rssKB,
                        deltaKB: idle.rssKB - baseline.rssKB, idleCPU: idle.cpuSeconds - connected.cpuSeconds,
                        idleSeconds: (idle.time - connected.time).seconds, fanoutTargets: targets.count, fanout: fanouts,
                        fanoutCPU: done.cpuSeconds - idle.cpuSeconds, note: note)
    }

    private func printNotes(_ rows: [ScaleRow], fleet: SimulatedFleet) {
        for row in rows {
            if let note = row.note { print("note at \(row.agents) agents: \(note)") }
            if let error = row.fanout.firstError { print("fan-out at \(row.agents) agents: \(row.fanout.failed) failed, first: \(error)") }
        }
        let problems = fleet.problems
        if problems.failures > 0 || problems.drops > 0 {
            print("simulated agents: \(problems.failures) failed to come up, \(problems.drops) sessions lost; first: \(problems.firstError ?? "-")")
        }
    }

    private func verdicts(_ row: ScaleRow) {
        verdict("controller memory per agent at \(row.agents) agents", row.perAgentKB < Self.memoryTargetKB,
                String(format: "%.1f KB (target < %.0f KB)", row.perAgentKB, Self.memoryTargetKB))
        let slowest = row.fanout.samples.values.max() ?? .nan
        verdict("fan-out to \(row.fanoutTargets) agents at \(row.agents) connected (slowest of \(runs))",
                slowest < Self.fanoutTargetSeconds && row.fanout.failed == 0,
                String(format: "%.3f s (target < %.0f s)", slowest, Self.fanoutTargetSeconds) + (row.fanout.failed == 0 ? "" : ", with failures"))
    }

    private func verdict(_ what: String, _ passed: Bool, _ value: String) {
        print("  \(passed ? "PASS" : "MISS") \(what.padding(toLength: 62, withPad: " ", startingAt: 0)) \(value)")
    }
}

/// One agent count's results.
struct ScaleRow {
    var agents: Int
    var connectSeconds: Double
    /// Controller CPU seconds spent enrolling and accepting the new agents.
    var connectCPU: Double
    var rssKB: Int
    var deltaKB: Int
    /// Controller CPU seconds while the agents only sent heartbeats, and how long that was.
    var idleCPU: Double
    var idleSeconds: Double
    var fanoutTargets: Int
    var fanout: Fanout
    var fanoutCPU: Double
    var note: String?

    var perAgentKB: Double { Double(deltaKB) / Double(agents) }

    static func render(_ rows: [ScaleRow]) -> String {
        var lines = ["agents  connect s  CPU s  RSS MiB  ΔRSS MiB  KB/agent  idle CPU  fan-out  median s   max s  failed  fan-out CPU s"]
        for row in rows {
            let slowest = row.fanout.samples.values.max() ?? .nan
            lines.append(String(format: "%6d  %9.1f  %5.1f  %7.1f  %8.1f  %8.1f  %7.1f%%  %7d  %8.3f  %6.3f  %6d  %13.2f",
                                row.agents, row.connectSeconds, row.connectCPU, Double(row.rssKB) / 1024, Double(row.deltaKB) / 1024, row.perAgentKB,
                                100 * row.idleCPU / row.idleSeconds, row.fanoutTargets, row.fanout.samples.median, slowest,
                                row.fanout.failed, row.fanoutCPU))
        }
        return lines.joined(separator: "\n")
    }
}

/// Timed fan-outs over the admin socket, as `ionlab exec` sends them.
struct Fanout: Sendable {
    var samples = Samples()
    var failed = 0
    var firstError: String?

    /// Runs `true` on `names` `runs` times; each time is from sending the request to the last agent's result.
    static func time(to names: [String], runs: Int, paths: StatePaths) async throws -> Fanout {
        try await AdminClient.with(paths: paths) { admin in
            var fanout = Fanout()
            for _ in 0..<runs {
                try await fanout.once(to: names, admin: admin)
            }
            return fanout
        }
    }

    private mutating func once(to names: [String], admin: AdminClient) async throws {
        let start = ContinuousClock.now
        let spec = ExecSpec(jobID: Format.newJobID(), argv: ["true"])
        let lines = try await admin.execAll(spec, target: .agents(names))
        defer { lines.close() }
        var results = 0
        do {
            for try await line in lines {
                results += 1
                if line.result?.succeeded != true { fail("\(line.agent): \(line.error ?? line.result?.summary ?? "no result")") }
                // The time is the last result's; the reply's end follows.
                if results == names.count { samples.add((ContinuousClock.now - start).seconds) }
            }
        } catch let failure as Failure {
            throw BenchError("fan-out failed: \(failure.message)")
        }
        if results < names.count { throw BenchError("the controller ended the fan-out after \(results) of \(names.count) results") }
    }

    private mutating func fail(_ why: String) {
        failed += 1
        if firstError == nil { firstError = why }
    }
}

/// The controller under test: the real `ionlab serve`, in a scratch state directory, listening on loopback.
struct ScaleController {
    let child: Shell.Child
    let paths: StatePaths
    let endpoint: Endpoint
    let pin: CAPin
    var pid: pid_t { child.pid }

    /// `configure` edits the controller's config before it starts; `serving` is added to `ionlab serve`.
    static func start(in work: String, heartbeatSeconds: Double, serving: [String] = [],
                      configure: (inout ControllerConfig) -> Void = { _ in }) async throws -> ScaleController {
        let paths = StatePaths(directory: "\(work)/controller")
        let endpoint = Endpoint(host: "127.0.0.1", port: 20_000 + Int(getpid() % 10_000))
        let ionlab = Binaries.path("ionlab")
        let initialized = Shell.run(ionlab, ["init", "--state-dir", paths.directory, "--listen", endpoint.description])
        guard initialized.status == 0 else { throw BenchError("ionlab init failed: \(initialized.output)") }
        var config = try ControllerConfig.load(path: paths.config)
        allowSilence(heartbeatSeconds, in: &config)
        configure(&config)
        try PEMFile.write(config.yaml(), path: paths.config, mode: 0o644)
        let pin = SPKIPin.of(try PEMFile.readCertificate(path: paths.caCertificate))
        let child = try Shell.background(ionlab, ["serve", "--state-dir", paths.directory, "--log-level", "warning"] + serving,
                                         log: "\(work)/controller.log")
        let controller = ScaleController(child: child, paths: paths, endpoint: endpoint, pin: pin)
        do {
            try await controller.waitUntilServing(log: "\(work)/controller.log")
        } catch {
            controller.stop()
            throw error
        }
        return controller
    }

    /// Raises `agent_down_after_seconds` only if the heartbeat interval is too long for it.
    private static func allowSilence(_ heartbeatSeconds: Double, in config: inout ControllerConfig) {
        config.agentDownAfterSeconds = max(config.agentDownAfterSeconds, (heartbeatSeconds * 3.5).rounded(.up))
    }

    private func waitUntilServing(log: String) async throws {
        for _ in 0..<200 {
            if (try? await connectedCount()) != nil { return }
            guard child.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("the controller did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    /// The agents the controller lists as connected.
    func connectedCount() async throws -> Int {
        try await AdminClient.with(paths: paths) { try await $0.agents() }.filter { $0.state == .connected }.count
    }

    /// Waits until `count` agents are connected: first by the agents' own count of welcomes (cheap), then
    /// by the controller's list. If the controller cannot list them, the note says why and the welcomes stand.
    func waitForConnected(_ count: Int, fleet: SimulatedFleet) async throws -> String? {
        let deadline = ContinuousClock.now + .seconds(60 + count / 50)
        var listed = 0
        while ContinuousClock.now < deadline {
            if fleet.connected >= count {
                do {
                    listed = try await connectedCount()
                    if listed >= count { return nil }
                } catch {
                    return "listAgents failed (\(Format.error(error))); counted the agents' welcomes instead"
                }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        let problems = fleet.problems
        throw BenchError("only \(fleet.connected) of \(count) simulated agents connected (controller lists \(listed)); "
                         + "\(problems.failures) failed, first error: \(problems.firstError ?? "none")")
    }

    func sample() throws -> ProcSample {
        guard let rss = ProcStats.residentKB(pid), let cpu = ProcStats.cpuSeconds(pid) else {
            throw BenchError("the controller (pid \(pid)) is gone")
        }
        return ProcSample(time: .now, rssKB: rss, cpuSeconds: cpu)
    }

    /// Stops this controller only: SIGTERM, then SIGKILL if it lingers.
    func stop() {
        guard kill(pid, 0) == 0 else { return }  // already reaped
        kill(pid, SIGTERM)
        for _ in 0..<50 {
            if Shell.reap(pid) { return }
            usleep(100_000)
        }
        kill(pid, SIGKILL)
        _ = Shell.wait(child)
    }
}

/// A process's resident memory and CPU time at one moment.
struct ProcSample {
    var time: ContinuousClock.Instant
    var rssKB: Int
    var cpuSeconds: Double
}

/// Reading a process's memory, CPU time and limits from /proc.
enum ProcStats {
    /// VmRSS from /proc/PID/status, in KB.
    static func residentKB(_ pid: pid_t) -> Int? {
        guard let text = read("/proc/\(pid)/status") else { return nil }
        let line = text.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        return line?.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
    }

    /// utime + stime from /proc/PID/stat (fields 14 and 15, counted after the parenthesized command name).
    static func cpuSeconds(_ pid: pid_t) -> Double? {
        guard let text = read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Fails early, with the fix, when this process may not open enough sockets (the controller inherits the limit).
    static func checkFileLimit(needed: Int) throws {
        guard let text = read("/proc/self/limits"),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }),
              let soft = line.dropFirst("Max open files".count).split(separator: " ").first.flatMap({ Int($0) }) else { return }
        guard soft >= needed else {
            throw BenchError("the open-file limit is \(soft), below the \(needed) this run needs: raise it with `ulimit -n 65536` "
                             + "(scripts/bench-scale.sh does)")
        }
    }

    private static func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }
}

