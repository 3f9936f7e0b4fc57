import IonLabAgentProtocol
import IonLabWire
import NIOCore
import Testing

/// What a peer says is checked as it is decoded (issue 9, items 5 and 10): each bad field is a protocol
/// error naming the field, never echoing the value.
@Suite struct PeerChecksTests {
    static let health = Health(bootID: "3f2a-11", hostname: "vm1", uptimeSeconds: 12, load: [0.1, 0.2, 0.3],
                               memoryTotalBytes: 100, memoryAvailableBytes: 50, diskTotalBytes: 100, diskFreeBytes: 10,
                               agentVersion: "0.1.0", cloudInit: "done", instanceID: "i-123")

    func roundTrip<Message: WireMessage>(_ message: Message) throws -> Message {
        try MessageCoding.decode(try MessageCoding.encode(message))
    }

    func rejection<Message: WireMessage>(_ message: Message) -> String? {
        do {
            _ = try roundTrip(message)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func aSaneHeartbeatPasses() throws {
        _ = try roundTrip(AgentControl.heartbeat(Self.health))
    }

    @Test(arguments: [1e300, -1, 1e10 + 1])
    func outOfRangeUptimesAreRefused(value: Double) {
        var health = Self.health
        health.uptimeSeconds = value
        let name = "heartbeat.uptimeSeconds"
        let problem = rejection(AgentControl.heartbeat(health))
        #expect(problem?.hasPrefix("protocol error: \(name): out of range") == true, "\(problem ?? "accepted")")
    }

    @Test(arguments: [-1, 1e300])
    func anAgentsImpossibleAgeIsRefused(value: Double) {
        let problem = rejection(AgentControl.hello(Hello(role: .agent, software: "ionlab-agent 0.1.0", ageSeconds: value)))
        #expect(problem?.hasPrefix("protocol error: hello.ageSeconds: out of range") == true, "\(problem ?? "accepted")")
        #expect(rejection(AgentControl.hello(Hello(role: .agent, software: "ionlab-agent 0.1.0", ageSeconds: 2.5))) == nil)
    }

    @Test func escapeSequencesAndHugeStringsAreRefusedWithoutEchoingThem() {
        var health = Self.health
        health.hostname = "vm1\u{1b}]0;pwned\u{07}"
        let escaped = rejection(AgentControl.heartbeat(health))
        #expect(escaped == "protocol error: heartbeat.hostname: must be a host name (letters, digits, '.', '-', '_')")
        health = Self.health
        health.agentVersion = String(repeating: "x", count: 100_000)
        #expect(rejection(AgentControl.heartbeat(health)) == "protocol error: heartbeat.agentVersion: 100000 bytes long, more than 64")
        health = Self.health
        health.load = [Double](repeating: 0, count: 50_000)
        #expect(rejection(AgentControl.heartbeat(health))?.contains("heartbeat.load: 50000 entries") == true)
    }

    @Test func enrollmentNamesMustBeAgentNames() {
        let huge = String(repeating: "a", count: 500_000)
        #expect(rejection(AgentControl.enroll(EnrollRequest(name: huge, token: "t", csrPEM: "x")))?.hasPrefix("protocol error: enroll.name") == true)
        #expect(rejection(AgentControl.enroll(EnrollRequest(name: "vm\u{1b}[2J", token: "t", csrPEM: "x")))?.hasPrefix("protocol error: enroll.name") == true)
        #expect(rejection(AgentControl.enroll(EnrollRequest(name: "vm1", token: "t", csrPEM: "x"))) == nil)
    }

    @Test func jobResultsAreBounded() {
        let endless = ExecResult(jobID: "j-1", outcome: .completed, exitCode: 0, durationSeconds: 1e300)
        #expect(rejection(AgentStreamMessage.execFinished(endless))?.contains("execFinished.durationSeconds") == true)
        let many = [ExecResult](repeating: ExecResult(jobID: "j-1", outcome: .completed), count: 5000)
        #expect(rejection(AgentControl.jobReports(many))?.contains("jobReports: 5000 entries") == true)
        let strange = ExecResult(jobID: "../../etc/passwd", outcome: .completed)
        #expect(rejection(AgentStreamMessage.execFinished(strange))?.contains("execFinished.jobID") == true)
    }

    @Test func treeEntriesAreBounded() {
        #expect(rejection(AgentStreamMessage.entry(TreeEntry(path: "a", kind: .file, mode: 0o104755))) == "protocol error: entry.mode: has bits beyond 07777")
        #expect(rejection(AgentStreamMessage.entry(TreeEntry(path: String(repeating: "a/", count: 5000), kind: .directory, mode: 0o755)))?
            .contains("entry.path") == true)
        #expect(rejection(AgentStreamMessage.fileEnd(sha256: "not-a-digest")) == "protocol error: fileEnd.sha256: expected 64 hex digits")
    }

    /// A terminal of no rows or columns, and a reverse forward listening on port 0, are refused by name.
    @Test func terminalSizesAndListeningPortsArePositive() {
        #expect(rejection(AgentStreamMessage.resize(rows: 0, columns: 80)) == "protocol error: resize: rows and columns must be positive")
        #expect(rejection(AgentStreamMessage.resize(rows: 24, columns: 0)) == "protocol error: resize: rows and columns must be positive")
        #expect(rejection(AgentStreamMessage.resize(rows: 24, columns: 80)) == nil)
        #expect(rejection(AgentStreamMessage.listening(port: 0)) == "protocol error: listening.port: must be positive")
        #expect(rejection(AgentStreamMessage.listening(port: 8080)) == nil)
    }

    /// The crash of issue 9 item 10: a timeout of 1e17 seconds once killed the agent converting it to
    /// milliseconds. Requests are checked where they are served, failing only their stream.
    @Test func execTimeoutsAreRangeChecked() {
        for bad in [1e17, -1, 0, .nan, .infinity] {
            #expect(throws: Failure.self) { try ExecSpec(jobID: "j-1", argv: ["true"], timeoutSeconds: bad).check() }
        }
        #expect(throws: Never.self) { try ExecSpec(jobID: "j-1", argv: ["true"], timeoutSeconds: 3600).check() }
        #expect(throws: Failure.self) { try ExecSpec(jobID: "j-1", argv: ["a\u{0}b"]).check() }
    }
}

/// Which message may go where is a type: what does not belong on a connection, or travels the wrong way on
/// it, does not decode there.
@Suite struct DirectionTests {
    static let hello = AgentControl.hello(Hello(role: .agent, software: "ionlab-agent 0.1.0"))

    @Test func anAgentsControlMessageDoesNotDecodeAsTheControllers() throws {
        let payload = try MessageCoding.encode(Self.hello)
        #expect(throws: WireError.self) { try MessageCoding.decode(payload, as: ControllerControl.self) }
        #expect(throws: Never.self) { try MessageCoding.decode(payload, as: AgentControl.self) }
    }

    @Test func theControllerAcceptsNoStreamsAndTheAgentNoControlMessagesOfItsOwn() throws {
        let (writer, _) = NIOAsyncChannelOutboundWriter<Frame>.makeTestingWriter()
        defer { writer.finish() }
        let controller = MuxConnection<ControllerRole>(writer: writer, side: .controller)
        let exec = try MessageCoding.encode(AgentRequest.exec(ExecSpec(jobID: "j-1", argv: ["true"])))
        #expect(throws: WireError.self) { try controller.route(Frame(kind: .message, stream: 1, payload: exec)) }
        let agent = MuxConnection<AgentRole>(writer: writer, side: .client)
        #expect(throws: WireError.self) { try agent.route(Frame(kind: .message, stream: 0, payload: try MessageCoding.encode(Self.hello))) }
        guard case .opened(_, .exec(let spec)) = try agent.route(Frame(kind: .message, stream: 2, payload: exec)) else {
            Issue.record("the agent did not accept an exec stream")
            return
        }
        #expect(spec.argv == ["true"])
    }
}

@Suite struct ProtocolValueTests {
    @Test func protocolVersionsOutsideTheRangeAreRejected() throws {
        try ProtocolVersion.check(ProtocolVersion.current)
        #expect(throws: WireError.unsupportedVersion(peer: 2, supported: 1...1)) { try ProtocolVersion.check(2) }
        #expect(WireError.unsupportedVersion(peer: 2, supported: 1...1).description == "protocol version 2 is not supported (supported: 1...1)")
    }

    @Test func execResultsMapToShellStatuses() {
        #expect(ExecResult(jobID: "j", outcome: .completed, exitCode: 7).shellStatus == 7)
        #expect(ExecResult(jobID: "j", outcome: .completed, signal: 9).shellStatus == 137)
        #expect(ExecResult(jobID: "j", outcome: .timedOut, signal: 15).shellStatus == 124)
        #expect(ExecResult(jobID: "j", outcome: .failedToStart, error: "x").shellStatus == 127)
        #expect(ExecResult(jobID: "j", outcome: .completed, signal: 9).summary == "killed by signal 9")
    }
}
