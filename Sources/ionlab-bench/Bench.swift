import ArgumentParser
import CIonLabSys
import Foundation
import IonLabConfig

/// `ionlab-bench`: measurements that are not tests. Each prints a table and the target it checks (docs/targets.md).
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ionlab-bench",
        abstract: "Benchmarks for ionlab (run with -c release).",
        subcommands: [ChannelBench.self, ForwardBench.self, ScaleBench.self, SlowlorisBench.self, DashboardBench.self])
}

/// A benchmark's scratch directory and the processes it starts there, all gone when it ends.
enum Workspace {
    static func create() throws -> String {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        return work
    }

    /// Kills the processes, by PID, and removes the directory.
    static func tearDown(_ work: String, _ processes: [Shell.Child]) {
        for child in processes {
            kill(child.pid, SIGKILL)
            _ = Shell.wait(child)
        }
        try? FileManager.default.removeItem(atPath: work)
    }
}

/// Locating and running the release binaries next to this one.
enum Binaries {
    static let directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path

    /// Builds `ionlab`, `ionlab-controller` and `ionlab-agent` in this configuration if they are not next to the bench.
    static func ensure() throws {
        let missing = ["ionlab", "ionlab-controller", "ionlab-agent"].filter { !FileManager.default.isExecutableFile(atPath: "\(directory)/\($0)") }
        guard !missing.isEmpty else { return }
        let packageRoot = URL(fileURLWithPath: directory).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let configuration = directory.contains("/release") ? "release" : "debug"
        for product in missing {
            print("building \(product) (\(configuration))…")
            let status = Shell.run("/usr/bin/env", ["swift", "build", "-c", configuration, "--product", product,
                                                    "--package-path", packageRoot, "--static-swift-stdlib"]).status
            guard status == 0 else { throw BenchError("cannot build \(product)") }
        }
    }

    static func path(_ name: String) -> String { "\(directory)/\(name)" }
}

/// `--results FILE`: the run's measurements as a JSON object of numbers, merged into FILE, for
/// scripts/bench-targets.sh, which prints the whole table of targets from one run.
struct ResultsOption: ParsableArguments {
    @Option(help: "Also write the measurements, as JSON, into this file (merged with what it holds).")
    var results: String?

    func record(_ values: [String: Double]) throws {
        guard let results else { return }
        var merged: [String: Any] = [:]
        if let data = FileManager.default.contents(atPath: results), !data.isEmpty {
            merged = (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        }
        merged.merge(values) { $1 }
        try JSONSerialization.data(withJSONObject: merged, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: results))
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Running programs and timing them, through posix_spawn and waitpid. (Foundation's Process is avoided:
/// its child monitor hangs when a child such as sshd or an ssh ControlMaster closes inherited descriptors.)
enum Shell {
    struct Result {
        var status: Int32
        var output: String
    }

    /// A started program.
    struct Child {
        let pid: pid_t
        var isRunning: Bool { kill(pid, 0) == 0 && !Shell.reap(pid) }
    }

    @discardableResult
    static func run(_ path: String, _ arguments: [String], environment: [String: String] = [:]) -> Result {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-bench-run-\(getpid())-\(UInt32.random(in: 0 ... .max))").path
        defer { unlink(log) }
        guard let child = try? spawn(path, arguments, environment: environment, log: log) else {
            return Result(status: -1, output: "cannot start \(path)")
        }
        let status = wait(child)
        return Result(status: status, output: (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    static func background(_ path: String, _ arguments: [String], environment: [String: String] = [:], log: String) throws -> Child {
        try spawn(path, arguments, environment: environment, log: log)
    }

    static func spawn(_ path: String, _ arguments: [String], environment: [String: String], log: String) throws -> Child {
        let output = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(output); close(input) }
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let rc = CStrings.with([path] + arguments) { argv in
            CStrings.with(env) { envp in ionlab_spawn(argv, envp, nil, input, output, output, -1, &pid) }
        }
        guard rc == 0 else { throw BenchError("cannot start \(path): \(String(cString: strerror(rc)))") }
        return Child(pid: pid)
    }

    /// Waits for a child and returns its shell-style status.
    static func wait(_ child: Child) -> Int32 {
        var status: Int32 = 0
        while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
        var code: Int32 = 0
        return ionlab_decode_wait_status(status, &code) == 1 ? code : 128 + code
    }

    /// True if the child has exited (and reaps it).
    static func reap(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid
    }

    /// Wall seconds of `body`.
    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return (ContinuousClock.now - start).seconds
    }
}

enum CStrings {
    static func with<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let pointers = strings.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        let array: [UnsafePointer<CChar>?] = pointers.map { UnsafePointer($0) } + [nil]
        return array.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// Summary statistics of repeated timings.
struct Samples {
    var values: [Double] = []
    mutating func add(_ value: Double) { values.append(value) }
    var median: Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }
    var p90: Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, sorted.count * 9 / 10)]
    }
    var mean: Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }
}
