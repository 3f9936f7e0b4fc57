#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A heartbeat's view of the agent's machine.
public struct Health: Codable, Sendable, Equatable {
    public var bootID: String
    public var hostname: String
    public var uptimeSeconds: Double
    public var load: [Double]
    public var memoryTotalBytes: UInt64
    public var memoryAvailableBytes: UInt64
    public var diskTotalBytes: UInt64
    public var diskFreeBytes: UInt64
    public var agentVersion: String
    /// `cloud-init status` as the agent last read it, when cloud-init exists.
    public var cloudInit: String?
    /// cloud-init's instance id (from the seed's meta-data): tells this provision of a VM from an earlier one.
    public var instanceID: String?

    public init(bootID: String, hostname: String, uptimeSeconds: Double, load: [Double],
                memoryTotalBytes: UInt64, memoryAvailableBytes: UInt64, diskTotalBytes: UInt64,
                diskFreeBytes: UInt64, agentVersion: String, cloudInit: String? = nil, instanceID: String? = nil) {
        self.bootID = bootID
        self.hostname = hostname
        self.uptimeSeconds = uptimeSeconds
        self.load = load
        self.memoryTotalBytes = memoryTotalBytes
        self.memoryAvailableBytes = memoryAvailableBytes
        self.diskTotalBytes = diskTotalBytes
        self.diskFreeBytes = diskFreeBytes
        self.agentVersion = agentVersion
        self.cloudInit = cloudInit
        self.instanceID = instanceID
    }
}

/// A command for the agent to run: an argv, never a shell line unless the argv asks for one.
public struct ExecSpec: Codable, Sendable {
    public var jobID: String
    public var argv: [String]
    /// Added to (or replacing entries of) the agent's environment.
    public var env: [String: String]
    public var cwd: String?
    /// Whether stdin data follows on the stream; otherwise the process reads /dev/null.
    public var stdin: Bool
    public var timeoutSeconds: Double?
    /// Whether the process gets a pipe on descriptor 3 for its result (one JSON line, say), which comes
    /// back in ``ExecResult/report`` apart from its output. Guest scripts report this way.
    public var reports: Bool
    /// Run on a pseudo-terminal of this size and type (an interactive shell): stdin, stdout and stderr are
    /// the terminal, its output comes as stdout, and `resize` messages change its size.
    public var terminal: TerminalSpec?

    public init(jobID: String, argv: [String], env: [String: String] = [:], cwd: String? = nil,
                stdin: Bool = false, timeoutSeconds: Double? = nil, reports: Bool = false, terminal: TerminalSpec? = nil) {
        self.jobID = jobID
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.stdin = stdin
        self.timeoutSeconds = timeoutSeconds
        self.reports = reports
        self.terminal = terminal
    }
}

/// A pseudo-terminal as the local one is: its type (`TERM`) and size.
public struct TerminalSpec: Codable, Sendable, Equatable {
    public var term: String
    public var rows: UInt16
    public var columns: UInt16

    public init(term: String, rows: UInt16, columns: UInt16) {
        self.term = term
        self.rows = rows
        self.columns = columns
    }
}

/// How a job ended, exactly.
public struct ExecResult: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// The process exited or died of a signal on its own.
        case completed
        case timedOut
        case cancelled
        /// The process never started; `error` says why.
        case failedToStart
        /// The agent restarted while the job ran, so its end is unknown.
        case lost
    }
    public var jobID: String
    public var outcome: Outcome
    public var exitCode: Int32?
    public var signal: Int32?
    public var durationSeconds: Double
    /// The last bytes of stdout and stderr, interleaved as they arrived.
    public var outputTail: String
    public var error: String?
    /// What the process wrote on descriptor 3, when the spec asked for it (at most ``ExecResult/reportLimit``
    /// bytes).
    public var report: String?

    /// The most a report may hold.
    public static let reportLimit = 64 << 10

    public init(jobID: String, outcome: Outcome, exitCode: Int32? = nil, signal: Int32? = nil,
                durationSeconds: Double = 0, outputTail: String = "", error: String? = nil, report: String? = nil) {
        self.jobID = jobID
        self.outcome = outcome
        self.exitCode = exitCode
        self.signal = signal
        self.durationSeconds = durationSeconds
        self.outputTail = outputTail
        self.error = error
        self.report = report
    }

    /// A shell-style status: the exit code, 128+signal, or 124 for a timeout.
    public var shellStatus: Int32 {
        switch outcome {
        case .timedOut: return 124
        case .cancelled: return 130
        case .failedToStart: return 127
        case .lost: return 255
        case .completed:
            if let exitCode { return exitCode }
            if let signal { return 128 + signal }
            return 255
        }
    }

    public var succeeded: Bool { outcome == .completed && exitCode == 0 }

    /// One line for humans: "exit 7", "killed by signal 9", "timed out after 2s".
    public var summary: String {
        switch outcome {
        case .completed:
            if let exitCode { return "exit \(exitCode)" }
            return "killed by signal \(signal ?? 0)"
        case .timedOut: return "timed out after \(Self.seconds(durationSeconds)); process group killed"
        case .cancelled: return "cancelled; process group killed"
        case .failedToStart: return "failed to start: \(error ?? "unknown error")"
        case .lost: return "lost: the agent restarted while the job ran"
        }
    }

    static func seconds(_ value: Double) -> String { value.oneDecimal + "s" }
}

/// Copy files into the agent's machine.
public struct PutRequest: Codable, Sendable {
    /// Where to put it. An existing directory receives the source under its own name.
    public var destination: String
    public var sourceName: String
    public var sourceIsDirectory: Bool
    public init(destination: String, sourceName: String, sourceIsDirectory: Bool) {
        self.destination = destination
        self.sourceName = sourceName
        self.sourceIsDirectory = sourceIsDirectory
    }
}

/// Copy files out of the agent's machine.
public struct GetRequest: Codable, Sendable {
    public var source: String
    public var recursive: Bool
    public init(source: String, recursive: Bool) {
        self.source = source
        self.recursive = recursive
    }
}

/// One item of a streamed tree. A file's bytes follow as data frames, then `fileEnd` with its sha256.
public struct TreeEntry: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case file, directory, symlink }
    /// Relative to the transfer root; "" is the root itself. Never absolute, never "..".
    public var path: String
    public var kind: Kind
    public var mode: UInt32
    public var size: UInt64
    public var linkTarget: String?
    public init(path: String, kind: Kind, mode: UInt32, size: UInt64 = 0, linkTarget: String? = nil) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.size = size
        self.linkTarget = linkTarget
    }
}

public struct TransferSummary: Codable, Sendable, Equatable {
    public var files: Int
    public var directories: Int
    public var bytes: UInt64
    public var path: String
    public init(files: Int = 0, directories: Int = 0, bytes: UInt64 = 0, path: String = "") {
        self.files = files
        self.directories = directories
        self.bytes = bytes
        self.path = path
    }
}
