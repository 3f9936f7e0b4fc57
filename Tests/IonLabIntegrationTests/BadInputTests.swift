import Foundation
import IonLabAgentProtocol
import IonLabConfig
import IonLabWire
import Testing

/// Every kind of bad input gets a clear one-line error, and the controller keeps serving other agents.
@Suite(.serialized, .timeLimit(.minutes(2))) struct BadInputTests {
    /// A lab with a healthy agent1 to prove the controller keeps serving.
    /// The authentication deadline is long here: these peers are slow only because the machine may be loaded.
    static func servingLab() async throws -> Lab {
        let lab = try await Lab(config: "authentication_timeout_seconds: 60\n")
        try await lab.startController()
        try await lab.connectAgent("agent1")
        return lab
    }

    @Test func certificateFromAnotherCAIsRefused() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let other = try await Lab()
        defer { other.tearDown() }
        try await other.startController()
        try await other.connectAgent("stranger")
        other.killController()
        // The stranger trusts our controller's pin but holds a certificate from the other CA.
        let config = "\(lab.directory)/stranger.json"
        try AgentConfig(name: "stranger", endpoints: [try Endpoint(parsing: lab.endpoint)], caPin: try lab.pin, token: nil).json()
            .write(toFile: config, atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: "\(other.directory)/agent-stranger", toPath: "\(lab.directory)/agent-stranger")
        let stranger = try lab.startAgent("stranger", config: config)
        #expect(try await lab.exitStatus(of: stranger) == 3)
        #expect(lab.log("agent-stranger.log").contains("stopping: controller refused this agent: client certificate CN=stranger"))
        #expect(lab.log("agent-stranger.log").contains("is not signed by this controller's CA"))
        await #expect(lab.run(["events"]).stdout.contains("is not signed by this controller's CA"))
        #expect(await lab.stillServes("agent1"))
    }

    @Test func revokedCertificateIsRefused() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        try await lab.connectAgent("victim")
        let revoke = await lab.run(["agent", "revoke", "victim"])
        #expect(revoke.status == 0)
        // The connected agent is told and stops; started again, it is refused at once.
        #expect(lab.log("agent-victim.log").isEmpty == false)
        try await eventually("the revoked agent to stop", timeout: 30) { lab.log("agent-victim.log").contains("stopping:") }
        #expect(lab.log("agent-victim.log").contains("agent victim was revoked"))
        let again = try lab.startAgent("victim", config: "\(lab.directory)/victim.json")
        #expect(try await lab.exitStatus(of: again) == 3)
        #expect(lab.log("agent-victim.log").contains("of agent victim was revoked at"))
        await #expect(lab.agentStates()["victim"] == "revoked")
        #expect(await lab.stillServes("agent1"))
    }

    @Test func expiredUsedAndMisboundTokensAreRefused() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        // Expired.
        let expiring = try await lab.agentConfig("late", ttl: 1)
        try await Task.sleep(for: .milliseconds(1500))
        let late = try lab.startAgent("late", config: expiring)
        #expect(try await lab.exitStatus(of: late) == 3)
        #expect(lab.log("agent-late.log").contains("the enrollment token for late expired at"))
        // Used before: agent1's own config, from a second machine (a fresh state directory).
        let replay = try lab.startAgent("agent1", config: "\(lab.directory)/agent1.json", stateName: "replay")
        #expect(try await lab.exitStatus(of: replay) == 3)
        #expect(lab.log("agent-replay.log").contains("the enrollment token for agent1 was already used at"))
        // Bound to another VM: vm-b's token presented by a config that says vm-c.
        let config = try await lab.agentConfig("vm-b")
        try Lab.editAgentConfig(config) { $0.name = "vm-c" }
        let misbound = try lab.startAgent("vm-c", config: config)
        #expect(try await lab.exitStatus(of: misbound) == 3)
        #expect(lab.log("agent-vm-c.log").contains("the enrollment token belongs to agent 'vm-b', not 'vm-c'"))
        // A made-up token.
        let forged = try await lab.agentConfig("vm-d")
        try Lab.editAgentConfig(forged) { $0.token = "ionlab-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" }
        let forger = try lab.startAgent("vm-d", config: forged)
        #expect(try await lab.exitStatus(of: forger) == 3)
        #expect(lab.log("agent-vm-d.log").contains("the enrollment token is not valid for this controller"))
        #expect(await lab.stillServes("agent1"))
    }

    @Test func oversizeFrameClosesOnlyThatConnection() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await RawPeer.tls(port: lab.port, pin: try lab.pin)
        try await peer.sendExpectingClose([0x7f, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0])
        _ = try await peer.readUntilClosed()
        try await eventually("the log line", timeout: 20) {
            lab.log("controller.log").contains("protocol error: frame of 2147483647 bytes exceeds the maximum of")
        }
        #expect(await lab.stillServes("agent1"))
    }

    @Test func randomBytesBeforeTheHandshakeCloseOnlyThatConnection() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await RawPeer.tcp(port: lab.port)
        try await peer.sendExpectingClose((0..<512).map { _ in UInt8.random(in: 0...255) })
        _ = try await peer.readUntilClosed()
        try await eventually("the log line", timeout: 20) { lab.log("controller.log").contains("failed: TLS handshake:") }
        let line = try #require(lab.log("controller.log").split(separator: "\n").first { $0.contains("failed: TLS handshake:") })
        #expect(line.contains("agent connection from 127.0.0.1:"))
        #expect(await lab.stillServes("agent1"))
    }

    @Test func randomBytesAfterTheHandshakeCloseOnlyThatConnection() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await RawPeer.tls(port: lab.port, pin: try lab.pin)
        // A first byte of 0x00 keeps the length plausible, so the decoder must reject the kind or the JSON.
        try await peer.sendExpectingClose([0, 0, 0, 64, 0xEE] + (0..<64).map { _ in UInt8.random(in: 0...255) })
        _ = try await peer.readUntilClosed()
        try await eventually("the log line", timeout: 20) { lab.log("controller.log").contains("protocol error: unknown frame kind 238") }
        let garbage = try await RawPeer.tls(port: lab.port, pin: try lab.pin)
        var frame: [UInt8] = [0, 0, 0, 21, FrameKind.message.rawValue, 0, 0, 0, 0]
        frame += Array("{not json at all!".utf8)
        try await garbage.sendExpectingClose(frame)
        _ = try await garbage.readUntilClosed()
        try await eventually("the log line", timeout: 20) { lab.log("controller.log").contains("protocol error: malformed message: not valid JSON") }
        #expect(await lab.stillServes("agent1"))
    }

    @Test func unsupportedProtocolVersionIsRefusedWithAReason() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await RawPeer.tls(port: lab.port, pin: try lab.pin)
        try await peer.send(AgentControl.hello(Hello(protocolVersion: 99, role: .agent, software: "from the future")))
        let replies = try RawPeer.messages(in: try await peer.readUntilClosed())
        guard case .refused(let refusal)? = replies.first else {
            Issue.record("expected a refusal, got \(replies)")
            return
        }
        #expect(refusal.code == .unsupportedVersion)
        #expect(refusal.message == "controller: protocol version 99 is not supported (supported: 1...1)")
        #expect(await lab.stillServes("agent1"))
    }

    @Test(arguments: [
        ("{\"name\": \"vm1\", \"endpoints\": [\"nonsense\"], PIN}",
         "agent.json: endpoints[0]: expected HOST:PORT, found 'nonsense'"),
        ("{\"name\": \"vm1\", \"endpoints\": [\"127.0.0.1:1\"], \"ca_pin\": \"md5:abc\"}",
         "agent.json: ca_pin: expected sha256: followed by 64 hex digits, found 'md5:abc'"),
        ("{\"name\": \"vm1\", \"endpoints\": [\"127.0.0.1:1\"]}",
         "agent.json: ca_pin: missing required field"),
        ("{\"name\": \"vm1\", \"endpoints\": [\"127.0.0.1:1\"], PIN, \"heartbeat\": 5}",
         "agent.json: heartbeat: unknown field"),
        ("{\"name\": \"vm1\", \"endpoints\": [\"127.0.0.1:1\"], PIN, \"heartbeat_seconds\": \"soon\"}",
         "agent.json: heartbeat_seconds: expected a number, found a string"),
        ("{\"name\": \"vm1\", \"endpoints\": [\"127.0.0.1:1\"], PIN, \"heartbeat_seconds\": -1}",
         "agent.json: heartbeat_seconds: must be a positive number of seconds, found -1.0"),
        ("name: vm1\n", "agent.json: not valid JSON"),
        ("{\"name\": [\"vm1\"", "agent.json: not valid JSON"),
        ("\n", "agent.json: the file is empty"),
    ])
    func malformedAgentConfigIsExplained(json: String, expected: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-config-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pin = "\"ca_pin\": \"sha256:\(String(repeating: "a", count: 64))\""
        try json.replacingOccurrences(of: "PIN", with: pin).write(toFile: "\(directory)/agent.json", atomically: true, encoding: .utf8)
        let result = await Lab.runProgram("\(Lab.binaries)/ionlab-agent", ["--config", "agent.json", "--state-dir", "\(directory)/state"],
                                    directory: directory)
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("ionlab-agent: \(expected)"), "got: \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func copyToAMissingRemoteParentIsExplained() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let file = "\(lab.directory)/note.txt"
        try "hello\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = await lab.run(["cp", file, "agent1:/nonexistent-ionlab-dir/note.txt"])
        #expect(result.status == 1)
        #expect(result.stderr == "ionlab: agent1:/nonexistent-ionlab-dir/note.txt: parent directory /nonexistent-ionlab-dir does not exist\n")
        #expect(await lab.stillServes("agent1"))
    }
}
