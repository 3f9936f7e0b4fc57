import Foundation
import IonLabAdminAPI
import IonLabAgent
import IonLabAgentProtocol
import IonLabConfig
import IonLabController
import IonLabPKI
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import X509

/// Many simulated agents in this process, for the scale benchmark. Each enrolls with its own one-time token
/// and keeps a real mutual-TLS session with heartbeats; exec requests are answered at once with exit 0,
/// without starting a process.
final class SimulatedFleet: @unchecked Sendable {
    let endpoint: Endpoint
    let pin: CAPin
    let heartbeatSeconds: Double
    let group: EventLoopGroup
    /// The agent's own connector: TLS to the endpoint, the controller trusted through the CA pin.
    let connector: AgentConnector
    let startedAt = Date()

    private struct State {
        var launched = 0
        var connected = 0
        var failures = 0
        var drops = 0
        var firstError: String?
        var tasks: [Task<Void, Never>] = []
        var stopping = false
    }

    private let state = NIOLockedValueBox(State())

    init(endpoint: Endpoint, pin: CAPin, heartbeatSeconds: Double, group: EventLoopGroup) throws {
        self.endpoint = endpoint
        self.pin = pin
        self.heartbeatSeconds = heartbeatSeconds
        self.group = group
        self.connector = AgentConnector(endpoints: [endpoint], pin: pin, group: group)
    }

    /// The name of the agent with this index: `sim-00000`, `sim-00001`, …
    static func name(_ index: Int) -> String { String(format: "sim-%05d", index) }

    var connected: Int { state.withLockedValue { $0.connected } }
    var isStopping: Bool { state.withLockedValue { $0.stopping } }

    /// Failures to enroll or connect, session drops, and the first error seen.
    var problems: (failures: Int, drops: Int, firstError: String?) {
        state.withLockedValue { (failures: $0.failures, drops: $0.drops, firstError: $0.firstError) }
    }

    /// Enrolls and connects new agents until `count` exist, `concurrency` at a time. Each one counts as
    /// brought up once the controller welcomed it; its session then goes on in the background.
    func grow(to count: Int, concurrency: Int, admin: AdminClient) async {
        let first = state.withLockedValue { $0.launched }
        guard count > first else { return }
        state.withLockedValue { $0.launched = count }
        // Tokens first, one request at a time on the admin connection, as a script calling `ionlab token
        // create` would; then the enrollments and sessions, `concurrency` at a time.
        var tokens: [(name: String, token: String)] = []
        for index in first..<count {
            let name = Self.name(index)
            do {
                tokens.append((name, try await Self.token(for: name, admin: admin)))
            } catch {
                record(error, agent: name)
            }
        }
        var pending = tokens.makeIterator()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<min(concurrency, tokens.count) {
                if let next = pending.next() { group.addTask { await self.bringUp(next.name, token: next.token) } }
            }
            while await group.next() != nil {
                if let next = pending.next() { group.addTask { await self.bringUp(next.name, token: next.token) } }
            }
        }
    }

    private func record(_ error: Error, agent name: String) {
        state.withLockedValue { state in
            state.failures += 1
            if state.firstError == nil { state.firstError = "\(name): \(Format.error(error))" }
        }
    }

    /// Ends every session: no reconnects, tasks cancelled.
    func stop() {
        let tasks: [Task<Void, Never>] = state.withLockedValue { state in
            state.stopping = true
            return state.tasks
        }
        for task in tasks { task.cancel() }
    }

    // MARK: One agent

    private func bringUp(_ name: String, token: String) async {
        do {
            let agent = SimulatedAgent(name: name, fleet: self)
            let identity = try await agent.enroll(token: token)
            let established = group.next().makePromise(of: Void.self)
            let task = Task { await agent.run(identity: identity, established: established) }
            state.withLockedValue { $0.tasks.append(task) }
            try await established.futureResult.get()
        } catch {
            record(error, agent: name)
        }
    }

    /// A one-time enrollment token from the admin socket, as `ionlab token create` gets one.
    static func token(for name: String, admin: AdminClient) async throws -> String {
        try await admin.createToken(name: name, endpoints: [], ttlSeconds: nil).token
    }

    func sessionStarted() { state.withLockedValue { $0.connected += 1 } }
    func sessionEnded() { state.withLockedValue { $0.connected -= 1 } }

    /// A session that had been welcomed ended while the benchmark still ran.
    func sessionLost(_ error: Error, agent: String) {
        state.withLockedValue { state in
            guard !state.stopping else { return }
            state.drops += 1
            if state.firstError == nil { state.firstError = "\(agent): session lost: \(Format.error(error))" }
        }
    }
}

/// One simulated agent: the agent's enrollment and session protocol, with an exec handler that runs nothing.
struct SimulatedAgent: Sendable {
    static let software = "ionlab-bench simulated agent"

    let name: String
    let fleet: SimulatedFleet
    let bootID = UUID().uuidString.lowercased()

    /// Trades the token and a CSR for a certificate, on a connection without a client certificate.
    func enroll(token: String) async throws -> Identity {
        let (key, csrPEM) = try AgentKeys.makeKeyAndCSR(name: name)
        let channel = try await fleet.connector.connect(identity: nil)
        let response: EnrollResponse = try await channel.executeThenClose { inbound, outbound in
            try await MuxConnection(writer: outbound, side: .client).enroll(
                Hello(role: .agent, software: Self.software, bootID: bootID), EnrollRequest(name: name, token: token, csrPEM: csrPEM), frames: inbound)
        }
        return Identity(certificate: try Certificate(pemEncoded: response.certificatePEM), privateKey: key)
    }

    /// Keeps a session up until the fleet stops, reconnecting after a pause like the agent does.
    /// `established` completes with the first welcome, or fails with the first connection's error.
    func run(identity: Identity, established: EventLoopPromise<Void>) async {
        while !fleet.isStopping, !Task.isCancelled {
            var welcomed = false
            do {
                try await session(identity: identity) {
                    welcomed = true
                    established.succeed(())
                }
            } catch {
                established.fail(error)  // ignored once it succeeded
                if welcomed { fleet.sessionLost(error, agent: name) }
                if let refusal = error as? Refusal, refusal.isTerminal { return }
            }
            try? await Task.sleep(for: .milliseconds(Int.random(in: 1000...3000)))
        }
        established.fail(CancellationError())
    }

    private func session(identity: Identity, onWelcome: () -> Void) async throws {
        let channel = try await fleet.connector.connect(identity: identity)
        try await channel.executeThenClose { inbound, outbound in
            let mux = MuxConnection<AgentRole>(writer: outbound, side: .client)
            defer { mux.fail(WireError.connectionClosed) }
            var frames = inbound.makeAsyncIterator()
            try await mux.greet(Hello(role: .agent, software: Self.software, bootID: bootID, runningJobs: []), frames: &frames)
            fleet.sessionStarted()
            defer { fleet.sessionEnded() }
            onWelcome()
            let heartbeats = Task { try await self.heartbeats(mux: mux) }
            defer { heartbeats.cancel() }
            while let frame = try await frames.next() {
                switch try mux.route(frame) {
                case .control(.refused(let refusal)): throw refusal
                case .control, .delivered: continue  // job report acks, renewals: nothing to keep
                case .opened(let stream, let request): Task { await Self.answer(request, on: stream) }
                }
            }
            throw WireError.connectionClosed
        }
    }

    /// A heartbeat every interval, the first after a random part of one so the fleet's beats spread out.
    private func heartbeats(mux: MuxConnection<AgentRole>) async throws {
        let interval = fleet.heartbeatSeconds
        try await Task.sleep(for: .seconds(Double.random(in: 0..<interval)))
        while true {
            try await mux.sendControl(.heartbeat(health()))
            try await Task.sleep(for: .seconds(interval))
        }
    }

    /// Plausible health of a small VM, about the size a real agent reports.
    private func health() -> Health {
        let gib: UInt64 = 1 << 30
        return Health(bootID: bootID, hostname: name, uptimeSeconds: Date().timeIntervalSince(fleet.startedAt), load: [0.02, 0.03, 0.01],
                      memoryTotalBytes: 2 * gib, memoryAvailableBytes: gib, diskTotalBytes: 20 * gib, diskFreeBytes: 12 * gib,
                      agentVersion: "0.1.0", cloudInit: "done", instanceID: "iid-\(name)")
    }

    /// Answers an exec with `execStarted` and an immediate exit 0; anything else is refused.
    private static func answer(_ request: AgentRequest, on stream: AgentStream) async {
        defer { stream.close() }
        guard case .exec(let spec) = request else {
            try? await stream.send(.failure(Failure("a simulated agent serves exec only, not \(request.name)")))
            return
        }
        try? await stream.send(.execStarted(jobID: spec.jobID, pid: getpid()))  // no process of its own: the bench's
        try? await stream.send(.execFinished(ExecResult(jobID: spec.jobID, outcome: .completed, exitCode: 0)))
    }
}
