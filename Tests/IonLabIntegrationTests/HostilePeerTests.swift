import Crypto
import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
@testable import IonLabController
import IonLabPKI
import IonLabWire
import NIOCore
import Testing
import X509

/// Issue 9: a guest is hostile. Each test plays one attack against the real controller, CLI and agent
/// (with a fake agent, a fake controller or a raw TLS client that break the protocol on purpose), and fails
/// if the hole it names comes back.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HostilePeerTests {
    static func servingLab(config: String = "") async throws -> Lab {
        let lab = try await Lab(config: config)
        try await lab.startController()
        try await lab.connectAgent("agent1")
        return lab
    }

    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    /// A directory outside any transfer that must come out of every attack untouched.
    static func decoy(in lab: Lab) throws -> String {
        let decoy = "\(lab.directory)/decoy"
        try FileManager.default.createDirectory(atPath: decoy, withIntermediateDirectories: true)
        chmod(decoy, 0o755)
        return decoy
    }

    static func untouched(_ decoy: String) -> Bool {
        var info = stat()
        lstat(decoy, &info)
        return (try? FileManager.default.contentsOfDirectory(atPath: decoy))?.isEmpty == true && info.st_mode & 0o7777 == 0o755
    }

    /// A fake agent that answers every `get` with the tree `items`.
    static func serveTree(_ peer: FakeAgent, _ items: [AgentStreamMessage], data: [UInt8] = []) -> Task<Void, Never> {
        peer.serve { stream, request in
            guard case .get = request else { return }
            for item in items {
                try await stream.send(item)
                if case .entry(let entry) = item, entry.kind == .file, !data.isEmpty {
                    try await stream.send(data: ByteBuffer(bytes: data), on: .content)
                }
            }
            _ = try? await stream.next()
        }
    }

    // MARK: 1. Downloads never write outside their destination

    @Test func item1_aDownloadedSymlinkRootTakesNoChildren() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let decoy = try Self.decoy(in: lab)
        let peer = try await FakeAgent.session(lab, name: "evil")
        let content = Array("owned\n".utf8)
        let server = Self.serveTree(peer, [
            .entry(TreeEntry(path: "", kind: .symlink, mode: 0o777, linkTarget: decoy)),
            .entry(TreeEntry(path: "owned", kind: .file, mode: 0o4755, size: UInt64(content.count))),
            .fileEnd(sha256: Self.sha256(content)), .treeEnd(TransferSummary()),
        ], data: content)
        defer { server.cancel(); peer.close() }
        let result = await lab.run(["cp", "evil:/innocent", "\(lab.directory)/download"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("the root is not a directory, so it has no children"), "\(result.stderr)")
        #expect(Self.untouched(decoy))
        #expect(await lab.stillServes("agent1"))
    }

    @Test func item1_aDirectoryEntryOverALinkNeverChmodsItsTarget() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let decoy = try Self.decoy(in: lab)
        let peer = try await FakeAgent.session(lab, name: "evil")
        let server = Self.serveTree(peer, [
            .entry(TreeEntry(path: "", kind: .directory, mode: 0o755)),
            .entry(TreeEntry(path: "etc", kind: .symlink, mode: 0o777, linkTarget: decoy)),
            .entry(TreeEntry(path: "etc", kind: .directory, mode: 0o777)),
            .entry(TreeEntry(path: "etc/passwd", kind: .file, mode: 0o644, size: 0)),
            .fileEnd(sha256: Self.sha256([])), .treeEnd(TransferSummary()),
        ])
        defer { server.cancel(); peer.close() }
        let result = await lab.run(["cp", "-r", "evil:/tree", "\(lab.directory)/download"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("is a symbolic link, which a transfer never follows"), "\(result.stderr)")
        #expect(Self.untouched(decoy))
    }

    @Test func item1_downloadsDropSetuidBits() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await FakeAgent.session(lab, name: "evil")
        let content = Array("#!/bin/sh\n".utf8)
        let server = Self.serveTree(peer, [
            .entry(TreeEntry(path: "", kind: .file, mode: 0o6755, size: UInt64(content.count))),
            .fileEnd(sha256: Self.sha256(content)), .treeEnd(TransferSummary()),
        ], data: content)
        defer { server.cancel(); peer.close() }
        let result = await lab.run(["cp", "evil:/tool", "\(lab.directory)/tool"])
        #expect(result.status == 0, "\(result.stderr)")
        var info = stat()
        #expect(stat("\(lab.directory)/tool", &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o755)
    }

    // MARK: 2. Only the controller's certificate passes for the controller

    @Test func item2_anAgentCertificateCannotPoseAsTheController() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        // A guest holding its own agent certificate (agent1's) stands up a "controller".
        let stolen = try Identity.loadBundle(path: "\(lab.directory)/agent-agent1/identity.pem")
        let ca = CertificateAuthority(identity: try Identity.load(directory: lab.stateDir, name: "ca"))
        let impostor = try await FakeController(port: try Lab.freePort(), identity: stolen, ca: ca)
        defer { impostor.stop() }
        impostor.listenSilently()
        let config = try await lab.agentConfig("victim") { $0.endpoints = [Endpoint(host: "127.0.0.1", port: impostor.port)] }
        let victim = try lab.startAgent("victim", config: config)
        #expect(try await lab.exitStatus(of: victim) == 3)
        #expect(lab.log("agent-victim.log").contains("is not the controller's"), "\(lab.log("agent-victim.log"))")
        // The victim said nothing to it: no hello, and above all no token.
        #expect(impostor.messages.isEmpty, "\(impostor.messages)")
    }

    // MARK: 3. Secrets on the host are their owner's only

    @Test func item3_secretsOnTheHostAreOwnerOnly() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        func mode(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1 }
        #expect(mode(lab.stateDir) == 0o700)
        for secret in ["ca.key", "server.key", "secret.key", "admin.sock"] { #expect(mode("\(lab.stateDir)/\(secret)") == 0o600, "\(secret)") }
        await #expect(lab.run(["token", "create", "fresh", "--output", "\(lab.directory)/fresh.json"]).status == 0)
        #expect(mode("\(lab.directory)/fresh.json") == 0o600)  // it holds the token
        #expect(mode("\(lab.directory)/agent-agent1") == 0o700)
        #expect(mode("\(lab.directory)/agent-agent1/identity.pem") == 0o600)
        // The token is in no log and no event.
        let token = try AgentConfig.load(path: "\(lab.directory)/agent1.json").token ?? "?"
        #expect(!lab.log("controller.log").contains(token))
        await #expect(!lab.run(["events", "--json"]).stdout.contains(token))
    }

    // MARK: 4. Unauthenticated peers get a deadline, small frames and a bounded place

    @Test func item4_aPeerThatSaysHelloAndStallsIsClosedAtTheDeadline() async throws {
        let lab = try await Self.servingLab(config: "authentication_timeout_seconds: 2\n")
        defer { lab.tearDown() }
        let silent = try await RawPeer.tcp(port: lab.port)
        let stalling = try await RawPeer.tls(port: lab.port, pin: try lab.pin)
        // On a loaded machine the 2 s can end before the handshake does: a hello that cannot be sent is closed too.
        try? await stalling.send(AgentControl.hello(Hello(role: .agent, software: "slowloris")))
        let started = Date()
        _ = try await silent.readUntilClosed(timeout: 15)
        _ = try await stalling.readUntilClosed(timeout: 15)  // once, the hello cancelled the deadline for good
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(await lab.stillServes("agent1"))
    }

    @Test func item4_framesBeforeAuthenticationAreSmall() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await RawPeer.tls(port: lab.port, pin: try lab.pin)
        var header: [UInt8] = []
        withUnsafeBytes(of: UInt32(100_000 + 5).bigEndian) { header += $0 }
        try await peer.sendExpectingClose(header + [FrameKind.message.rawValue, 0, 0, 0, 0] + [UInt8](repeating: 0x20, count: 1000))
        _ = try await peer.readUntilClosed()
        try await eventually("the log line", timeout: 20) {
            lab.log("controller.log").contains("frame of 100005 bytes exceeds the maximum of \(Frame.unauthenticatedMaxPayload + 5)")
        }
        #expect(await lab.stillServes("agent1"))
    }

    @Test func item4_stallingPeersCannotLockAgentsOut() async throws {
        let lab = try await Self.servingLab(config: "authentication_timeout_seconds: 60\nmax_unauthenticated_connections: 8\n")
        defer { lab.tearDown() }
        let closed = ManagedCount()
        // A crowd of 40 that stall after their hello, each reopened as soon as the controller drops it.
        let crowd = (0..<40).map { _ in
            Task {
                while !Task.isCancelled {
                    guard let peer = try? await RawPeer.tls(port: lab.port, pin: try lab.pin) else { continue }
                    try? await peer.send(AgentControl.hello(Hello(role: .agent, software: "slowloris")))
                    if (try? await peer.readUntilClosed(timeout: 30)) != nil { closed.add() }
                }
            }
        }
        defer { for task in crowd { task.cancel() } }
        // The oldest are closed to make room, long before their deadline ...
        try await eventually("the crowd to be pushed out", timeout: 30) { closed.value >= 64 }
        // ... and while the crowd presses on, a new agent gets in and works.
        try await lab.connectAgent("late")
        #expect(await lab.stillServes("late"))
        #expect(await lab.stillServes("agent1"))
    }

    // MARK: 5. What a peer says is checked before it is stored or printed

    @Test func item5_hostileEnrollmentNamesAreNeverStored() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        for name in [String(repeating: "x", count: 1_000_000), "vm\u{1B}]0;owned\u{07}\u{1B}[2J"] {
            let peer = try await FakeAgent.connect(lab, identity: nil)
            let key = P256.Signing.PrivateKey()
            try? await peer.send(.hello(Hello(role: .agent, software: "fake agent")))
            try? await peer.send(.enroll(EnrollRequest(name: name, token: "ionlab-nothing", csrPEM: try AgentKeys.csr(for: key, name: "x"))))
            #expect(await peer.closedByController(within: 20))
        }
        let events = await lab.run(["events"])
        #expect(events.status == 0)
        #expect(!events.stdout.contains("xxxxxxxxxx") && !events.stdout.utf8.contains(0x1B))
        // Not stored at all (the CLI would escape it anyway): the JSON of the events holds no escape either.
        let json = await lab.run(["events", "--json"]).stdout
        #expect(!json.contains("\\u001b") && !json.contains("xxxxxxxxxx"), "\(json)")
        try await eventually("the refusal of the name", timeout: 20) { lab.log("controller.log").contains("enroll.name: not a valid agent name") }
        await #expect(Set(lab.agentStates().keys) == ["agent1"])
        #expect(await lab.stillServes("agent1"))
    }

    @Test func item5_outOfRangeHeartbeatsCloseTheConnectionNotTheCLI() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await FakeAgent.session(lab, name: "liar")
        try await peer.send(.heartbeat(Health(bootID: "b", hostname: "liar", uptimeSeconds: 1e300, load: [0, 0, 0], memoryTotalBytes: 1,
                                              memoryAvailableBytes: 1, diskTotalBytes: 1, diskFreeBytes: 1, agentVersion: "9")))
        #expect(await peer.closedByController(within: 20))
        let again = try await FakeAgent.connect(lab, identity: try await FakeAgent.enroll(lab, name: "liar2", token: try FakeAgent.token(lab, for: "liar2")))
        _ = try await again.hello()
        try await again.send(.heartbeat(Health(bootID: "b", hostname: "h\u{1B}[31mred", uptimeSeconds: 1, load: [0, 0, 0], memoryTotalBytes: 1,
                                               memoryAvailableBytes: 1, diskTotalBytes: 1, diskFreeBytes: 1, agentVersion: "9")))
        #expect(await again.closedByController(within: 20))
        let agents = await lab.run(["agents"])
        #expect(agents.status == 0, "\(agents.stderr)")
        #expect(!agents.stdout.utf8.contains(0x1B))
        await #expect(lab.run(["events"]).stdout.contains("heartbeat.uptimeSeconds: out of range"))
    }

    @Test func item5_aPeersEscapeSequencesReachTheTerminalEscaped() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await FakeAgent.session(lab, name: "painter")
        let server = peer.serve { stream, _ in
            try await stream.send(.failure(Failure("\u{1B}]0;pwned\u{07}\u{1B}[2Jcleared your screen\nagent1  ok  exit 0  a forged line")))
        }
        defer { server.cancel(); peer.close() }
        let result = await lab.run(["exec", "painter", "--", "true"])
        #expect(result.status != 0)
        #expect(!result.stderr.utf8.contains(0x1B) && !result.stderr.utf8.contains(0x07), "\(result.stderr)")
        #expect(result.stderr.contains("\\u{1B}]0;pwned\\u{7}"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "a peer's line break forged a line: \(result.stderr)")
        let fanout = await lab.run(["exec", "--all", "--", "true"])
        #expect(!fanout.stdout.contains("\nagent1  ok  exit 0  a forged"), "\(fanout.stdout)")
        #expect(!fanout.stdout.utf8.contains(0x1B))
    }

    /// JSON output was escaped for the terminal after encoding: a DEL, a C1 control or a bidi override that the
    /// encoder leaves as it is became `\u{9B}`, which is not JSON, so one hostile byte broke a script's parse.
    @Test func item5_aPeersControlCharactersLeaveJSONValidAndEscaped() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let sent = "del\u{7F} csi\u{9B}2J rtl\u{202E}txt.exe esc\u{1B}[2J"
        let peer = try await FakeAgent.session(lab, name: "painter")
        let server = peer.serve { stream, _ in try await stream.send(.failure(Failure(sent))) }
        defer { server.cancel(); peer.close() }
        let result = await lab.run(["exec", "--all", "--json", "--", "true"])
        let line = try #require(result.stdout.split(separator: "\n").first { $0.contains("painter") }, "\(result.stdout)")
        let decoded = try JSONDecoder().decode(FanoutLine.self, from: Data(line.utf8))
        #expect(decoded.error == sent)
        for unsafe: Unicode.Scalar in ["\u{7F}", "\u{9B}", "\u{202E}", "\u{1B}"] {
            #expect(!result.stdout.unicodeScalars.contains(unsafe), "\(unsafe.value) reached the terminal raw")
        }
    }

    // MARK: 6. Heavy use never breaks the admin API

    @Test func item6_listingsSurviveManyLargeJobs() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        // Each result keeps the last 8 KiB of output: 150 of them no longer fit one frame of 1 MiB.
        for _ in 0..<150 {
            let run = await lab.run(["exec", "agent1", "--", "sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x"])
            #expect(run.status == 0)
        }
        let events = await lab.run(["events"])
        #expect(events.status == 0, "\(events.stderr)")
        #expect(events.stdout.split(separator: "\n").count >= 300)
        let jobs = await lab.run(["jobs", "--limit", "1000"])
        #expect(jobs.status == 0, "\(jobs.stderr)")
        #expect(jobs.stdout.split(separator: "\n").count == 151)
        let json = await lab.run(["jobs", "--limit", "1000", "--json"])
        #expect(json.status == 0 && json.stdout.contains("xxxx"))
    }

    /// 10,000 jobs and 100,000 events: listings and --follow still work. Prints how long they take.
    @Test(.timeLimit(.minutes(5))) func item6_tenThousandJobsAndAHundredThousandEvents() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        let store = try Store(path: "\(lab.stateDir)/ionlab.sqlite")
        let output = String(repeating: "o", count: 2000)
        try await store.pool.write { db in
            for index in 0..<100_000 {
                try db.execute(sql: "INSERT INTO events(time, kind, agent, message, fields) VALUES (?, 'job.finished', 'agent1', ?, ?)",
                               arguments: [Date().timeIntervalSince1970, "event \(index)", Store.json(EventDetail.job(JobDetail(outcome: .completed, exitCode: 0, output: output)))])
            }
            for index in 0..<10_000 {
                let result = ExecResult(jobID: "j-\(index)", outcome: .completed, exitCode: 0, outputTail: output)
                try db.execute(sql: "INSERT INTO jobs(id, agent, argv, started_at, finished_at, result) VALUES (?, 'agent1', ?, ?, ?, ?)",
                               arguments: ["j-\(index)", Store.json(["echo", "\(index)"]), Date().timeIntervalSince1970,
                                           Date().timeIntervalSince1970, Store.json(result)])
            }
        }
        try await lab.startController()
        var clock = ContinuousClock.now
        let events = await lab.run(["events"])
        let eventsTime = ContinuousClock.now - clock
        #expect(events.status == 0, "\(events.stderr)")
        #expect(events.stdout.split(separator: "\n").count >= 100_000)
        clock = ContinuousClock.now
        let jobs = await lab.run(["jobs", "--limit", "10000", "--json"])
        let jobsTime = ContinuousClock.now - clock
        #expect(jobs.status == 0, "\(jobs.stderr)")
        #expect(jobs.stdout.contains("\"j-9999\"") && jobs.stdout.contains("\"j-0\""))
        clock = ContinuousClock.now
        let follower = try lab.spawnCLI(["events", "--follow"], log: "follow.log")
        defer { kill(follower.processIdentifier, SIGKILL); follower.waitUntilExit() }
        try await eventually("the replay of 100,000 events", timeout: 120) { lab.log("follow.log").contains("event 99999") }
        let replayTime = ContinuousClock.now - clock
        _ = try await lab.agentConfig("newcomer")
        try await eventually("a live event after the replay", timeout: 30) { lab.log("follow.log").contains("token.created") }
        print("[item 6] ionlab events (100,000 events): \(eventsTime); ionlab jobs --limit 10000 --json: \(jobsTime); "
              + "events --follow replayed 100,000 in \(replayTime), then streamed live")
    }

    // MARK: 7. A revoked agent never gets a certificate or a welcome again

    /// Renewals once came as often as an agent asked (a certificate each, a row each, for ever). Now one per
    /// connection: the second closes it. And every certificate an agent got is revoked with it.
    @Test func item7_oneRenewalPerConnectionAndAllRevokedTogether() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let key = P256.Signing.PrivateKey()
        let csr = try AgentKeys.csr(for: key, name: "renewer")
        var serials: [String] = []
        let identity = try await FakeAgent.enroll(lab, name: "renewer", token: try FakeAgent.token(lab, for: "renewer"))
        serials.append(identity.certificate.serialHex)
        for _ in 0..<3 {
            let peer = try await FakeAgent.connect(lab, identity: identity)
            #expect(try await peer.hello() == .welcomed)
            try await peer.send(.renew(csrPEM: csr))
            try await peer.send(.renew(csrPEM: csr))
            var renewed = 0
            do {
                while let routed = try await peer.next() {
                    if case .control(.renewed(let pem)) = routed {
                        renewed += 1
                        serials.append(try Certificate(pemEncoded: pem).serialHex)
                    }
                }
            } catch {}
            #expect(renewed == 1)
        }
        try await eventually("the refusal of a second renewal", timeout: 20) { await lab.run(["events"]).stdout.contains("a second renewal on one connection") }
        await #expect(lab.run(["agent", "revoke", "renewer"]).status == 0)
        let store = try Store(path: "\(lab.stateDir)/ionlab.sqlite")
        for serial in serials { #expect(try store.standing(serial: serial)?.revokedAt != nil, "\(serial) is not revoked") }
        let retry = try await FakeAgent.connect(lab, identity: identity)
        await #expect(throws: Refusal.self) { _ = try await retry.hello() }
    }

    /// An agent that stops reading cannot keep its session (or `ionlab agent revoke`) waiting: the refusal
    /// gets two seconds, then the connection is closed.
    @Test func item7_aRevokedAgentThatStopsReadingIsCutOffAnyway() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let mute = try await FakeAgent.session(lab, name: "mute")  // it never reads again
        let input = String(repeating: "x", count: 8 << 20)
        let feeders = try (0..<4).map { index in
            try "\(input)".write(toFile: "\(lab.directory)/input-\(index)", atomically: true, encoding: .utf8)
            return try lab.spawnCLI(["exec", "mute", "-i", "--", "cat"], log: "feeder-\(index).log", stdinFile: "\(lab.directory)/input-\(index)")
        }
        defer { for feeder in feeders { kill(feeder.processIdentifier, SIGKILL); feeder.waitUntilExit() } }
        try await Task.sleep(for: .seconds(3))  // the controller's writes to it now wait on a full socket
        let started = Date()
        let revoke = await lab.run(["agent", "revoke", "mute"])
        #expect(revoke.status == 0, "\(revoke.stderr)")
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(await mute.closedByController(within: 20))
        #expect(await lab.stillServes("agent1"))
    }

    /// The race, frozen at its worst moment: the agent is revoked in the store while its session is still
    /// open (the controller has not yet closed it), and the agent asks for a renewal right then. It once got a
    /// fresh certificate that nothing had revoked, and a welcome with it.
    @Test func item7_aRenewalAfterTheRevocationIsRefused() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await FakeAgent.session(lab, name: "late")
        #expect(try Store(path: "\(lab.stateDir)/ionlab.sqlite").revoke(agent: "late"))
        let key = P256.Signing.PrivateKey()
        try await peer.send(.renew(csrPEM: try AgentKeys.csr(for: key, name: "late")))
        var renewed: Certificate?
        do {
            reading: while let routed = try await peer.next() {
                switch routed {
                case .control(.renewed(let pem)):
                    renewed = try Certificate(pemEncoded: pem)
                    break reading
                case .control(.refused(let refusal)):
                    #expect(refusal.code == .revoked)
                    break reading
                default:
                    continue
                }
            }
        } catch {}
        #expect(renewed == nil, "a revoked agent was issued \(renewed?.serialHex ?? "")")
        if let renewed {
            let retry = try await FakeAgent.connect(lab, identity: Identity(certificate: renewed, privateKey: key))
            await #expect(throws: Refusal.self) { _ = try await retry.hello() }
        }
    }

    // MARK: 8. Bounded memory per connection whatever the peer sends

    /// Messages once took no flow-control credit: a peer could grow a stream's queue without end while its
    /// reader was busy. Here the reader is a CLI that reads nothing, so the controller stops reading too.
    @Test func item8_aPeerFloodingAStreamIsCutOff() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let peer = try await FakeAgent.session(lab, name: "flooder")
        let server = peer.serve { stream, _ in
            let payload = try MessageCoding.encode(AgentStreamMessage.execStarted(jobID: "j-1", pid: 1))
            for _ in 0..<1_000_000 { try await peer.write(Frame(kind: .message, stream: stream.id, payload: payload)) }
        }
        defer { server.cancel(); peer.close() }
        let paths = StatePaths(directory: lab.stateDir)
        try await AdminClient.with(paths: paths) { client in
            _ = try await client.exec(ExecSpec(jobID: "j-flood", argv: ["true"]), on: "flooder")
            try await eventually("the flow-control error", timeout: 60) {
                lab.log("controller.log").contains("agent flooder") && lab.log("controller.log").contains("exceed its credit")
            }
        }
        await #expect(lab.run(["events"]).stdout.contains("exceed its credit"))
        #expect(await lab.stillServes("agent1"))
    }

    @Test func item8_streamIDJumpsAndWindowOverflowsAreProtocolErrors() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        // Agents open no streams, so their first opening already ends the connection; a jump past the limit is
        // refused before the opening is even read. (Jumps within the limit, and the bounded memory they cost, are
        // FlowControlTests' and the fuzz target's: here the controller closes before a second frame would arrive.)
        let jumper = try await FakeAgent.session(lab, name: "jumper")
        let payload = try MessageCoding.encode(AgentRequest.get(GetRequest(source: "/", recursive: false)))
        try await jumper.write(Frame(kind: .message, stream: 1 + 2 * (PeerStreamIDs.maximumPassedOver + 1), payload: payload))
        #expect(await jumper.closedByController(within: 20))
        try await eventually("the jump error", timeout: 20) { await lab.run(["events"]).stdout.contains("skips more than") }
        let opener = try await FakeAgent.session(lab, name: "opener")
        try await opener.write(Frame(kind: .message, stream: 1, payload: payload))
        #expect(await opener.closedByController(within: 20))
        try await eventually("the opener's disconnection", timeout: 20) {
            await lab.run(["events"]).stdout.split(separator: "\n").contains { $0.contains("opener") && $0.contains("agent.disconnected") }
        }
        let overflow = try await FakeAgent.session(lab, name: "overflow")
        let server = overflow.serve { stream, _ in
            var grant = ByteBuffer()
            grant.writeInteger(UInt32.max)
            for _ in 0..<4 { try await overflow.write(Frame(kind: .window, stream: stream.id, payload: grant)) }
        }
        defer { server.cancel(); overflow.close() }
        _ = await lab.run(["exec", "overflow", "--", "true"])
        try await eventually("the window error", timeout: 30) { await lab.run(["events"]).stdout.contains("past 2^31 - 1") }
        #expect(await lab.stillServes("agent1"))
    }

    // MARK: 9. An agent never ends up unmanaged for good

    @Test func item9_enrollmentIsIdempotentForTheSameKey() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let token = try await FakeAgent.token(lab, for: "retry")
        let key = P256.Signing.PrivateKey()
        // The reply is lost: the agent sends its request and the connection drops before `enrolled` arrives.
        let lost = try await FakeAgent.connect(lab, identity: nil)
        try await lost.send(.hello(Hello(role: .agent, software: "fake agent")))
        try await lost.send(.enroll(EnrollRequest(name: "retry", token: token, csrPEM: try AgentKeys.csr(for: key, name: "retry"))))
        try await eventually("the enrollment", timeout: 20) {
            let enrolled = await lab.run(["events"]).stdout.contains("agent.enrolled")
            guard enrolled else { return false }
            return await lab.agentStates()["retry"] != "pending"
        }
        lost.close()
        let first = try await FakeAgent.enroll(lab, name: "retry", token: token, key: key)
        let second = try await FakeAgent.enroll(lab, name: "retry", token: token, key: key)
        #expect(first.certificate.serialHex == second.certificate.serialHex)
        await #expect(throws: Refusal.self) { _ = try await FakeAgent.enroll(lab, name: "retry", token: token) }  // another key
        let peer = try await FakeAgent.connect(lab, identity: first)
        #expect(try await peer.hello() == .welcomed)
        peer.close()
    }

    @Test func item9_anAgentWhoseCertificateExpiredWhileAwayComesBack() async throws {
        let lab = try await Lab(config: "agent_certificate_seconds: 8\n")
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("sleeper")
        lab.killController()  // before the agent renews (at two thirds of 8 s)
        let identity = try Identity.loadBundle(path: "\(lab.directory)/agent-sleeper/identity.pem")
        let wait = identity.certificate.notValidAfter.timeIntervalSinceNow + 2
        try await Task.sleep(for: .seconds(max(0, wait)))
        #expect(identity.certificate.notValidAfter < Date())
        try await lab.startController()
        try await lab.waitConnected("sleeper", timeout: 30)
        #expect(await lab.stillServes("sleeper"))
        await #expect(lab.run(["events", "--json"]).stdout.contains("\"recovered\":true"))
        let renewed = try Identity.loadBundle(path: "\(lab.directory)/agent-sleeper/identity.pem")
        #expect(renewed.certificate.notValidAfter > Date())
        #expect(renewed.privateKey.publicKey.rawRepresentation != identity.privateKey.publicKey.rawRepresentation)
        #expect(!FileManager.default.fileExists(atPath: "\(lab.directory)/agent-sleeper/agent.key"))
    }

    /// An expired certificate is traded in once: the same key asking again (its reply was lost) gets the same
    /// certificate, and a clone of the VM holding the old certificate with another key is refused.
    @Test func item9_recoveryIsIdempotentAndHappensOnce() async throws {
        let lab = try await Lab(config: "agent_certificate_seconds: 3\n")
        defer { lab.tearDown() }
        try await lab.startController()
        let expired = try await FakeAgent.enroll(lab, name: "phoenix", token: try FakeAgent.token(lab, for: "phoenix"))
        try await Task.sleep(for: .seconds(max(0, expired.certificate.notValidAfter.timeIntervalSinceNow + 1)))
        func recover(with key: P256.Signing.PrivateKey) async throws -> String? {
            let peer = try await FakeAgent.connect(lab, identity: expired)
            defer { peer.close() }
            guard case .renewalRequired = try await peer.hello() else { return nil }
            try await peer.send(.renew(csrPEM: try AgentKeys.csr(for: key, name: "phoenix")))
            switch try await peer.next() {
            case .control(.renewed(let pem))?: return try Certificate(pemEncoded: pem).serialHex
            case .control(.refused(let refusal))?: throw refusal
            default: return nil
            }
        }
        let key = P256.Signing.PrivateKey()
        let first = try await recover(with: key)
        #expect(first != nil)
        #expect(try await recover(with: key) == first)
        await #expect(throws: Refusal.self) { _ = try await recover(with: P256.Signing.PrivateKey()) }
    }

    // MARK: 10. No input number crashes either side

    @Test func item10_anAbsurdTimeoutCrashesNeitherSide() async throws {
        let lab = try await Self.servingLab(config: "")
        defer { lab.tearDown() }
        let cli = await lab.run(["exec", "agent1", "--timeout", "1e17", "--", "true"])
        #expect(cli.status != 0 && cli.stderr.contains("--timeout must be a positive number of seconds"), "\(cli.stderr)")
        // A controller (here a fake one holding a real controller certificate) sends it anyway.
        let agent = try #require(lab.agentProcess("agent1"))
        let ca = CertificateAuthority(identity: try Identity.load(directory: lab.stateDir, name: "ca"))
        lab.killController()
        let fake = try await FakeController(port: lab.port, identity: try ca.issueServerCertificate(hosts: ["127.0.0.1"]), ca: ca)
        defer { fake.stop() }
        let mux = try await fake.welcomeNextAgent()
        let stream = try await mux.open(.exec(ExecSpec(jobID: "j-1", argv: ["true"], timeoutSeconds: 1e17)))
        guard case .failure(let failure) = try await stream.nextMessage() else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.message.contains("timeout must be more than 0"))
        try await Task.sleep(for: .milliseconds(500))
        #expect(agent.isRunning)
    }

    // MARK: 11. Guest scripts take values as data

    /// A package "name" that apt would read as an option (it would turn off signature checks) is refused
    /// where it is written, before any VM exists. The scripts end options with `--` as well.
    @Test func item11_namesThatReadAsOptionsNeverReachTheGuest() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let spec = try fleet.spec("opts", FleetTests.header("opts", backend: "big") + """
            count: 1
            workflow:
              - package: [curl, "-oAPT::Get::AllowUnauthenticated=true"]
            """)
        let result = await fleet.lab.run(["up", spec])
        #expect(result.status != 0)
        #expect(result.stderr.contains("opts.yaml:7: workflow[0].package: expected a Debian package name"), "\(result.stderr)")
        await #expect(try fleet.lab.run(["vm", "list", "--json"]).stdout.contains("opts-1") == false)
        #expect(try GuestScripts.installNames(["curl"]).argv().contains { $0.contains("install -y --no-install-recommends -- \"$@\"") })
    }

    // MARK: 13. Every stream ends when either end goes away

    @Test func item13_aTransferEndsOnTheAgentWhenTheCLILeaves() async throws {
        let lab = try await Self.servingLab()
        defer { lab.tearDown() }
        let file = "\(lab.directory)/big"
        try Data(repeating: 7, count: 12 << 20).write(to: URL(fileURLWithPath: file))
        let paths = StatePaths(directory: lab.stateDir)
        // The CLI reads the whole tree, then goes away without answering `transferDone`.
        try await AdminClient.with(paths: paths) { client in
            let (stream, _) = try await client.download(GetRequest(source: file, recursive: false), from: "agent1")
            while true {
                if case .message(.treeEnd) = try await stream.nextCarriedItem() { break }
            }
        }
        try await eventually("the agent's request to end", timeout: 30) { Self.endedRequests(lab) == 1 }
        // The CLI reads a little of a file three windows long, and goes away: the agent, waiting for credit
        // that will never come, ends too.
        try await AdminClient.with(paths: paths) { client in
            let (stream, _) = try await client.download(GetRequest(source: file, recursive: false), from: "agent1")
            _ = try await stream.next()
        }
        try await eventually("the second request to end", timeout: 30) { Self.endedRequests(lab) == 2 }
        #expect(await lab.stillServes("agent1"))
    }

    static func endedRequests(_ lab: Lab) -> Int {
        lab.log("agent-agent1.log").components(separatedBy: "ended: the controller abandoned it").count - 1
    }
}

/// A count shared between tasks.
final class ManagedCount: @unchecked Sendable {
    private var count = 0
    private let lock = NSLock()
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
