import IonLabConfig
import IonLabWire

/// Everything a peer sends is checked as it is decoded, before anyone stores, prints or computes with it:
/// names against their grammar, strings against a size, numbers against a range. A message that fails is a
/// protocol error naming the field, and never echoes the offending value.
///
/// Requests (`exec`, `put`, `get`) are checked where they are served instead, so that a bad request fails
/// only its own stream (``ExecSpec/check()``). The field checks themselves are the wire's ``PeerText``.
public enum PeerLimits {
    public static let software = 128
    public static let bootID = 64
    public static let hostname = 253
    public static let version = 64
    public static let cloudInitStatus = 256
    public static let instanceID = 128
    public static let jobID = 64
    public static let jobsPerMessage = 1024
    public static let token = 128
    public static let pem = 16 << 10
    public static let path = 4096
    public static let message = 8 << 10
    public static let outputTail = 64 << 10
    /// About 317 years: any duration or uptime beyond is nonsense.
    public static let seconds: ClosedRange<Double> = 0...1e10
    public static let load: ClosedRange<Double> = 0...1e6
}

extension AgentControl {
    public func check() throws {
        switch self {
        case .hello(let hello):
            try hello.check()
        case .enroll(let request):
            do {
                try AgentName.validate(request.name)
            } catch {
                throw WireError.invalidField("enroll.name", "not a valid agent name (1-63 of a-z, 0-9, '-', '_', '.')")
            }
            try PeerText.length(request.token, "enroll.token", max: PeerLimits.token)
            try PeerText.length(request.csrPEM, "enroll.csrPEM", max: PeerLimits.pem)
        case .heartbeat(let health):
            try health.check()
        case .jobReports(let results):
            try PeerText.count(results.count, "jobReports", max: PeerLimits.jobsPerMessage)
            for result in results { try result.check(in: "jobReports") }
        case .renew(let csrPEM):
            try PeerText.length(csrPEM, "renew.csrPEM", max: PeerLimits.pem)
        }
    }
}

extension ControllerControl {
    public func check() throws {
        switch self {
        case .welcome(let welcome):
            try welcome.check()
        case .refused(let refusal):
            try refusal.check()
        case .enrolled(let response):
            try PeerText.length(response.certificatePEM, "enrolled.certificatePEM", max: PeerLimits.pem)
            try PeerText.length(response.caPEM, "enrolled.caPEM", max: PeerLimits.pem)
        case .jobReportsAck(let ids):
            try PeerText.count(ids.count, "jobReportsAck", max: PeerLimits.jobsPerMessage)
            for id in ids { try PeerText.identifier(id, "jobReportsAck", max: PeerLimits.jobID) }
        case .renewed(let certificatePEM):
            try PeerText.length(certificatePEM, "renewed.certificatePEM", max: PeerLimits.pem)
        case .renewalRequired(let reason):
            try PeerText.length(reason, "renewalRequired", max: PeerLimits.message)
        }
    }
}

extension AgentStreamMessage {
    public func check() throws {
        switch self {
        case .execStarted(let jobID, let pid):
            try PeerText.identifier(jobID, "execStarted.jobID", max: PeerLimits.jobID)
            guard pid > 0 else { throw WireError.invalidField("execStarted.pid", "must be positive") }
        case .execFinished(let result):
            try result.check(in: "execFinished")
        case .putReady(let path):
            try PeerText.length(path, "putReady.path", max: PeerLimits.path)
        case .entry(let entry):
            try PeerText.length(entry.path, "entry.path", max: PeerLimits.path)
            try entry.linkTarget.map { try PeerText.length($0, "entry.linkTarget", max: PeerLimits.path) }
            guard entry.mode <= 0o7777 else { throw WireError.invalidField("entry.mode", "has bits beyond 07777") }
            guard entry.size <= UInt64(Int64.max) else { throw WireError.invalidField("entry.size", "is out of range") }
        case .fileEnd(let sha256):
            guard sha256.utf8.count == 64, sha256.utf8.allSatisfy({ PeerText.isHexDigit($0) }) else {
                throw WireError.invalidField("fileEnd.sha256", "expected 64 hex digits")
            }
        case .treeEnd(let summary):
            try summary.check(in: "treeEnd")
        case .transferDone(let summary):
            try summary.check(in: "transferDone")
        case .failure(let failure):
            try failure.check()
        case .resize(let rows, let columns):
            guard rows > 0, columns > 0 else { throw WireError.invalidField("resize", "rows and columns must be positive") }
        case .listening(let port):
            guard port > 0 else { throw WireError.invalidField("listening.port", "must be positive") }
        case .stdinEnd, .cancel, .eof, .accepted:
            break
        }
    }
}

extension AgentRequest {
    /// Requests are checked where they are served (``ExecSpec/check()``), so that a bad one fails only its
    /// own stream.
    public func check() throws {}
}

extension Hello {
    public func check() throws {
        try PeerText.printable(software, "hello.software", max: PeerLimits.software)
        try bootID.map { try PeerText.identifier($0, "hello.bootID", max: PeerLimits.bootID) }
        if let runningJobs {
            try PeerText.count(runningJobs.count, "hello.runningJobs", max: PeerLimits.jobsPerMessage)
            for job in runningJobs { try PeerText.identifier(job, "hello.runningJobs", max: PeerLimits.jobID) }
        }
        try ageSeconds.map { try PeerText.number($0, "hello.ageSeconds", in: PeerLimits.seconds) }
    }
}

extension Welcome {
    public func check() throws {
        try PeerText.printable(name, "welcome.name", max: PeerLimits.hostname)
        try PeerText.printable(software, "welcome.software", max: PeerLimits.software)
    }
}

extension Refusal {
    public func check() throws {
        try PeerText.length(message, "refused.message", max: PeerLimits.message)
    }
}

extension Failure {
    public func check() throws {
        try PeerText.length(message, "failure.message", max: PeerLimits.message)
    }
}

extension Health {
    public func check() throws {
        try PeerText.identifier(bootID, "heartbeat.bootID", max: PeerLimits.bootID)
        try PeerText.hostname(hostname, "heartbeat.hostname")
        try PeerText.number(uptimeSeconds, "heartbeat.uptimeSeconds", in: PeerLimits.seconds)
        try PeerText.count(load.count, "heartbeat.load", max: 3)
        for value in load { try PeerText.number(value, "heartbeat.load", in: PeerLimits.load) }
        guard memoryAvailableBytes <= memoryTotalBytes else {
            throw WireError.invalidField("heartbeat.memoryAvailableBytes", "exceeds memoryTotalBytes")
        }
        guard diskFreeBytes <= diskTotalBytes else { throw WireError.invalidField("heartbeat.diskFreeBytes", "exceeds diskTotalBytes") }
        try PeerText.printable(agentVersion, "heartbeat.agentVersion", max: PeerLimits.version)
        try cloudInit.map { try PeerText.printable($0, "heartbeat.cloudInit", max: PeerLimits.cloudInitStatus) }
        try instanceID.map { try PeerText.identifier($0, "heartbeat.instanceID", max: PeerLimits.instanceID) }
    }
}

extension ExecResult {
    public func check(in message: String) throws {
        try PeerText.identifier(jobID, "\(message).jobID", max: PeerLimits.jobID)
        try PeerText.number(durationSeconds, "\(message).durationSeconds", in: PeerLimits.seconds)
        if let signal, !(1...128).contains(signal) { throw WireError.invalidField("\(message).signal", "must be 1 to 128") }
        try PeerText.length(outputTail, "\(message).outputTail", max: PeerLimits.outputTail)
        try error.map { try PeerText.length($0, "\(message).error", max: PeerLimits.message) }
        try report.map { try PeerText.length($0, "\(message).report", max: ExecResult.reportLimit) }
    }
}

extension TransferSummary {
    public func check(in message: String) throws {
        guard files >= 0, directories >= 0 else { throw WireError.invalidField("\(message).files", "must not be negative") }
        try PeerText.length(path, "\(message).path", max: PeerLimits.path)
    }
}

extension ExecSpec {
    /// The longest timeout a job may ask for: a year.
    public static let maximumTimeout: Double = 365 * 86_400

    /// Checks a request before it is served; a bad one fails its own stream with this explanation.
    public func check() throws {
        guard !argv.isEmpty else { throw Failure("exec needs a command") }
        do {
            try PeerText.identifier(jobID, "jobID", max: PeerLimits.jobID)
        } catch {
            throw Failure("the job id must be 1-\(PeerLimits.jobID) of letters, digits, '.', '_' and '-'")
        }
        if let timeoutSeconds, !(timeoutSeconds > 0 && timeoutSeconds <= Self.maximumTimeout) {
            throw Failure("the timeout must be more than 0 and at most \(Int(Self.maximumTimeout)) seconds (a year)")
        }
        guard argv.allSatisfy({ !$0.utf8.contains(0) }), env.allSatisfy({ !$0.key.utf8.contains(0) && !$0.value.utf8.contains(0) }) else {
            throw Failure("arguments and environment must not contain NUL bytes")
        }
        guard env.keys.allSatisfy({ !$0.isEmpty && !$0.contains("=") }) else {
            throw Failure("environment names must be non-empty and contain no '='")
        }
        if let terminal {
            guard (try? PeerText.printable(terminal.term, "term", max: 64)) != nil, terminal.rows > 0, terminal.columns > 0 else {
                throw Failure("a terminal needs a printable TERM of at most 64 characters and a size of at least 1 × 1")
            }
        }
    }
}
