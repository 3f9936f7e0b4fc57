import Foundation
import IonLabAgentProtocol
import Testing

/// Port forwards between real processes on 127.0.0.1: a controller, an agent (whose "machine" is this one),
/// `ionlab forward`, and services and clients that know nothing of ionlab (python's HTTP server, curl, and
/// a bulk sender and sha256 sink).
@Suite(.serialized) struct ForwardTests {
    static let bulk = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Helpers/tcp_bulk.py").path
    /// The size of the verified transfer: the issue asks for 1 GiB; smaller for a quick local run.
    static let transferMiB = Int(ProcessInfo.processInfo.environment["IONLAB_FORWARD_TEST_MIB"] ?? "") ?? 1024

    /// A lab with a connected agent `box`.
    private func lab() async throws -> Lab {
        let lab = try await Lab()
        try await lab.startController()
        try await lab.connectAgent("box")
        return lab
    }

    /// Starts `ionlab forward ARGS` and waits until its first line says it forwards.
    private func forward(_ lab: Lab, _ arguments: [String], log: String) async throws -> Process {
        let process = try lab.spawnHelper("\(Lab.binaries)/ionlab", ["forward"] + arguments, log: log)
        try await eventually("the forward to open", timeout: 20) { lab.log(log).contains("forwarding ") || !process.isRunning }
        try #require(process.isRunning, "ionlab forward stopped: \(lab.log(log))")
        return process
    }

    private func httpServer(_ lab: Lab, serving site: String) async throws -> Int {
        let port = try Lab.freePort()
        _ = try lab.spawnHelper("/usr/bin/env", ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", site, String(port)],
                                log: "http-\(port).log")
        try await eventually("the HTTP server", timeout: 30) { await Self.connects(port) }
        return port
    }

    private func sink(_ lab: Lab) async throws -> Int {
        let port = try Lab.freePort()
        _ = try lab.spawnHelper("/usr/bin/env", ["python3", Self.bulk, "sink", String(port)], log: "sink-\(port).log")
        try await eventually("the sha256 sink", timeout: 30) { await Self.connects(port) }
        return port
    }

    static func connects(_ port: Int) async -> Bool {
        await Lab.runProgram("/usr/bin/env", ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', \(port)), 2).close()"],
                       directory: "/").status == 0
    }

    /// `ionlab forwards --json`, as dictionaries.
    private func forwards(_ lab: Lab) async throws -> [[String: Any]] {
        let result = await lab.run(["forwards", "--json"])
        try #require(result.status == 0, "\(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
    }

    private func send(_ mebibytes: Int, to port: Int, in lab: Lab) async throws -> [String: Any] {
        let result = await Lab.runProgram("/usr/bin/env", ["python3", Self.bulk, "send", String(port), String(mebibytes)], directory: lab.directory,
                                    deadline: 600)
        try #require(result.status == 0, "the sender failed: \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    @Test func fiftyConcurrentHTTPRequestsAndAGibibyteCheckedBySHA256GoThroughForwards() async throws {
        let lab = try await lab()
        let site = "\(lab.directory)/site"
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        var expected: [String: Data] = [:]
        for index in 0..<50 {
            let body = Data((0..<(64 << 10)).map { _ in UInt8.random(in: 0...255) })
            try body.write(to: URL(fileURLWithPath: "\(site)/file-\(index)"))
            expected["file-\(index)"] = body
        }
        let http = try await httpServer(lab, serving: site)
        let local = try Lab.freePort()
        _ = try await forward(lab, ["box", "\(local):\(http)"], log: "forward-http.log")

        // One curl, fifty connections at once (HTTP/1.1, each request its own connection).
        var arguments = ["-fsS", "--parallel", "--parallel-immediate", "--parallel-max", "50"]
        for name in expected.keys.sorted() { arguments += ["-o", "\(lab.directory)/got-\(name)", "http://127.0.0.1:\(local)/\(name)"] }
        let curl = await Lab.runProgram("/usr/bin/curl", arguments, directory: lab.directory)
        #expect(curl.status == 0, "\(curl.stderr)")
        for (name, body) in expected {
            #expect(FileManager.default.contents(atPath: "\(lab.directory)/got-\(name)") == body, "\(name) differs")
        }
        let record = try await #require(try forwards(lab).first)
        #expect(record["totalConnections"] as? Int == 50)
        #expect(record["openConnections"] as? Int == 0)

        // The sender half-closes after the last byte; the sink answers only then, through the same forward.
        let sinkPort = try await sink(lab)
        let bulkPort = try Lab.freePort()
        _ = try await forward(lab, ["box", "\(bulkPort):\(sinkPort)"], log: "forward-bulk.log")
        let transfer = try await send(Self.transferMiB, to: bulkPort, in: lab)
        #expect(transfer["bytes"] as? Int == Self.transferMiB << 20)
        #expect(transfer["match"] as? Bool == true, "sha256 differs: \(transfer)")
    }

    @Test func failuresCloseTheConnectionAndSayWhyInOneLine() async throws {
        let lab = try await lab()
        let closedPort = try Lab.freePort()
        let local = try Lab.freePort()
        let refusedForward = try await forward(lab, ["box", "\(local):\(closedPort)"], log: "forward-refused.log")

        // Refused in the guest: the client sees the connection close, the command says why.
        let client = await Lab.runProgram("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(local)/"], directory: lab.directory)
        #expect(client.status != 0)
        try await eventually("the refusal line", timeout: 10) {
            lab.log("forward-refused.log").contains("cannot connect to 127.0.0.1:\(closedPort): connection refused")
        }

        // A port in use, twice over: by another program, and by another forward.
        let http = try await httpServer(lab, serving: lab.directory)
        let busy = await lab.run(["forward", "box", "\(http):80"])
        #expect(busy.status == 1)
        #expect(busy.stderr == "ionlab: cannot listen on 127.0.0.1:\(http): address already in use\n")
        let taken = await lab.run(["forward", "box", "\(local):80"])
        #expect(taken.status == 1)
        #expect(taken.stderr.hasPrefix("ionlab: 127.0.0.1:\(local) is already forwarded"), "\(taken.stderr)")

        // An unknown VM, and ports that are not ports.
        let unknown = await lab.run(["forward", "nobody", "8080:80"])
        #expect(unknown.stderr == "ionlab: no agent or VM named 'nobody'\n")
        let malformed = await lab.run(["forward", "box", "8080:99999"])
        #expect(malformed.status != 0)
        #expect(malformed.stderr.contains("'99999' is not a port (1-65535) in '8080:99999'"), "\(malformed.stderr)")

        // The agent gone: connections close, and the command says so.
        kill(try #require(lab.agentProcess("box")).processIdentifier, SIGKILL)
        try await eventually("the agent to be gone", timeout: 20) { await lab.agentStates()["box"] != "connected" }
        _ = await Lab.runProgram("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(local)/"], directory: lab.directory)
        try await eventually("the agent-gone line", timeout: 10) {
            lab.log("forward-refused.log").contains("box's agent is not connected")
        }
        #expect(refusedForward.isRunning)

        // Stopping the command closes its forward.
        kill(refusedForward.processIdentifier, SIGINT)
        try await eventually("the forward to close", timeout: 10) { try await forwards(lab).isEmpty }
        #expect(await !Self.connects(local))
    }

    @Test func keptAndReverseForwardsComeBackAfterAControllerRestartAndAnAgentReconnect() async throws {
        let lab = try await lab()
        let site = "\(lab.directory)/site"
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        try "through\n".write(toFile: "\(site)/index.html", atomically: true, encoding: .utf8)
        let http = try await httpServer(lab, serving: site)
        let local = try Lab.freePort(), guest = try Lab.freePort()
        func fetch(_ port: Int) async -> String {
            await Lab.runProgram("/usr/bin/curl", ["-fsS", "--max-time", "10", "http://127.0.0.1:\(port)/index.html"], directory: lab.directory).stdout
        }

        let kept = await lab.run(["forward", "--keep", "box", "\(local):\(http)"])
        #expect(kept.status == 0, "\(kept.stderr)")
        // Reverse: the agent's machine listens on `guest`, and connections reach the host's HTTP server.
        let reverse = await lab.run(["forward", "--keep", "--reverse", "box", "\(guest):\(http)"])
        #expect(reverse.status == 0, "\(reverse.stderr)")
        await #expect(fetch(local) == "through\n")
        await #expect(fetch(guest) == "through\n")

        lab.killController()
        #expect(await !Self.connects(local))
        try await lab.startController()
        try await lab.waitConnected("box")
        // On a loaded machine the agent may need a second try to get back in; the kept forward serves once it has.
        try await eventually("the kept forward to serve again", timeout: 20) { await fetch(local) == "through\n" }
        try await eventually("the reverse forward to listen again", timeout: 20) { await fetch(guest) == "through\n" }

        kill(try #require(lab.agentProcess("box")).processIdentifier, SIGKILL)
        try await eventually("the agent's listener to go", timeout: 20) { await !Self.connects(guest) }
        try lab.startAgent("box", config: "\(lab.directory)/box.json")
        try await lab.waitConnected("box")
        try await eventually("the reverse forward to listen after the reconnect", timeout: 20) { await fetch(guest) == "through\n" }
        let listed = try await forwards(lab)
        #expect(listed.count == 2)
        #expect(listed.allSatisfy { ($0["owner"] as? [String: Any])?["kept"] != nil }, "\(listed)")

        await #expect(lab.run(["forwards", "remove", "box", "\(local)"]).status == 0)
        await #expect(lab.run(["forwards", "remove", "--reverse", "box", "\(guest)"]).status == 0)
        await #expect(try forwards(lab).isEmpty)
        #expect(await !Self.connects(local))
        try await eventually("the reverse listener to close", timeout: 10) { await !Self.connects(guest) }
        let gone = await lab.run(["forwards", "remove", "box", "\(local)"])
        #expect(gone.stderr == "ionlab: no forward listens on 127.0.0.1:\(local)\n")
    }

    /// A hostile agent answers forwarded connections with a failure that carries escape sequences and a
    /// forged line, with a message that has no place on a forwarded connection, and with a reset: each
    /// connection closes, the command says why in one escaped line, and the controller serves on.
    @Test func aHostileAgentsAnswersCloseTheConnectionAndReachTheOperatorAsOneEscapedLine() async throws {
        let lab = try await Lab()
        try await lab.startController()
        let peer = try await FakeAgent.session(lab, name: "mallory")
        let server = peer.serve { stream, request in
            guard case .connect(let target) = request else { return }
            switch target.port {
            case 1: try await stream.send(.failure(Failure("\u{1B}]0;pwned\u{07}\u{1B}[2Jrefused\nmallory  ok  a forged line")))
            case 2: try await stream.send(.execStarted(jobID: "j", pid: 1))
            default: stream.close()
            }
            _ = try? await stream.next()
        }
        defer {
            server.cancel()
            peer.close()
        }
        let ports = try (1...3).map { _ in try Lab.freePort() }
        for (index, port) in ports.enumerated() {
            _ = try await forward(lab, ["mallory", "\(port):\(index + 1)"], log: "forward-\(index + 1).log")
            let client = await Lab.runProgram("/usr/bin/curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(port)/"], directory: lab.directory)
            #expect(client.status != 0, "the connection through \(port) did not close")
        }
        try await eventually("three lines", timeout: 10) {
            lab.log("forward-1.log").contains("refused") && lab.log("forward-2.log").contains("execStarted")
                && lab.log("forward-3.log").contains("broke off")
        }
        let painted = lab.log("forward-1.log")
        #expect(!painted.utf8.contains(0x1B) && !painted.utf8.contains(0x07), "\(painted)")
        #expect(painted.contains("\\u{1B}]0;pwned\\u{7}\\u{1B}[2Jrefused\\u{A}mallory  ok  a forged line"), "\(painted)")
        #expect(!painted.contains("\nmallory  ok"), "a guest's line break forged a line: \(painted)")
        #expect(lab.log("forward-2.log").contains("execStarted on a forwarded connection"), "\(lab.log("forward-2.log"))")
        await #expect(lab.run(["agents"]).status == 0)
    }
}
