import IonLabWire
import NIOCore
import Testing

/// What a peer says is checked as it is decoded (issue 9, items 5 and 10): each bad field is a protocol
/// error naming the field, never echoing the value.
@Suite struct PeerChecksTests {
    static let health = Health(bootID: "3f2a-11", hostname: "vm1", uptimeSeconds: 12, load: [0.1, 0.2, 0.3],
                               memoryTotalBytes: 100, memoryAvailableBytes: 50, diskTotalBytes: 100, diskFreeBytes: 10,
                               agentVersion: "0.1.0", cloudInit: "done", instanceID: "i-123")

    func roundTrip(_ message: Message) throws -> Message {
        try MessageCoding.decode(try MessageCoding.encode(message))
    }

    func rejection(_ message: Message) -> String? {
        do {
            _ = try roundTrip(message)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func aSaneHeartbeatPasses() throws {
        _ = try roundTrip(.heartbeat(Self.health))
    }

    @Test(arguments: [
        (\Health.uptimeSeconds, 1e300, "heartbeat.uptimeSeconds"),
        (\Health.uptimeSeconds, -1, "heartbeat.uptimeSeconds"),
    ] as [(WritableKeyPath<Health, Double>, Double, String)])
    func outOfRangeNumbersAreRefused(field: WritableKeyPath<Health, Double>, value: Double, name: String) {
        var health = Self.health
        health[keyPath: field] = value
        let problem = rejection(.heartbeat(health))
        #expect(problem?.hasPrefix("protocol error: \(name): out of range") == true, "\(problem ?? "accepted")")
    }

    @Test func escapeSequencesAndHugeStringsAreRefusedWithoutEchoingThem() {
        var health = Self.health
        health.hostname = "vm1\u{1b}]0;pwned\u{07}"
        let escaped = rejection(.heartbeat(health))
        #expect(escaped == "protocol error: heartbeat.hostname: must be a host name (letters, digits, '.', '-', '_')")
        health = Self.health
        health.agentVersion = String(repeating: "x", count: 100_000)
        #expect(rejection(.heartbeat(health)) == "protocol error: heartbeat.agentVersion: 100000 bytes long, more than 64")
        health = Self.health
        health.load = [Double](repeating: 0, count: 50_000)
        #expect(rejection(.heartbeat(health))?.contains("heartbeat.load: 50000 entries") == true)
    }

    @Test func enrollmentNamesMustBeAgentNames() {
        let huge = String(repeating: "a", count: 500_000)
        #expect(rejection(.enroll(EnrollRequest(name: huge, token: "t", csrPEM: "x")))?.hasPrefix("protocol error: enroll.name") == true)
        #expect(rejection(.enroll(EnrollRequest(name: "vm\u{1b}[2J", token: "t", csrPEM: "x")))?.hasPrefix("protocol error: enroll.name") == true)
        #expect(rejection(.enroll(EnrollRequest(name: "vm1", token: "t", csrPEM: "x"))) == nil)
    }

    @Test func jobResultsAreBounded() {
        let endless = ExecResult(jobID: "j-1", outcome: .completed, exitCode: 0, durationSeconds: 1e300)
        #expect(rejection(.execFinished(endless))?.contains("execFinished.durationSeconds") == true)
        let many = [ExecResult](repeating: ExecResult(jobID: "j-1", outcome: .completed), count: 5000)
        #expect(rejection(.jobReports(many))?.contains("jobReports: 5000 entries") == true)
        let strange = ExecResult(jobID: "../../etc/passwd", outcome: .completed)
        #expect(rejection(.execFinished(strange))?.contains("execFinished.jobID") == true)
    }

    @Test func treeEntriesAreBounded() {
        #expect(rejection(.entry(TreeEntry(path: "a", kind: .file, mode: 0o104755))) == "protocol error: entry.mode: has bits beyond 07777")
        #expect(rejection(.entry(TreeEntry(path: String(repeating: "a/", count: 5000), kind: .directory, mode: 0o755)))?
            .contains("entry.path") == true)
        #expect(rejection(.fileEnd(sha256: "not-a-digest")) == "protocol error: fileEnd.sha256: expected 64 hex digits")
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
