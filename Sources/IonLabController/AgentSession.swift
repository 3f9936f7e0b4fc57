import Foundation
import IonLabAgentProtocol
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore

/// One connected, authenticated agent.
final class AgentSession: @unchecked Sendable {
    let name: String
    let remote: String
    let bootID: String?
    let software: String
    let connectedAt = Date()
    /// The serial of the certificate this session authenticated with.
    let serial: String
    let mux: MuxConnection<ControllerRole>
    private let channel: Channel
    private let lock = NIOLock()
    private var _health: Health?
    private var _lastHeartbeat = Date()
    private var unsaved = false
    private var down = false
    private var renewed = false

    init(name: String, remote: String, hello: Hello, mux: MuxConnection<ControllerRole>, channel: Channel, serial: String) {
        self.name = name
        self.serial = serial
        self.remote = remote
        self.bootID = hello.bootID
        self.software = hello.software
        self.mux = mux
        self.channel = channel
    }

    var health: Health? { lock.withLock { _health } }
    var lastHeartbeat: Date { lock.withLock { _lastHeartbeat } }

    /// What a heartbeat changed.
    struct HeartbeatChange {
        /// The first health this session reported.
        var first: Bool
        /// The agent had been marked down.
        var cameBack: Bool
    }

    /// Records a heartbeat.
    func heartbeat(_ health: Health) -> HeartbeatChange {
        lock.withLock {
            defer {
                _health = health
                _lastHeartbeat = Date()
                unsaved = true
                down = false
            }
            return HeartbeatChange(first: _health == nil, cameBack: down)
        }
    }

    /// Records this connection's one renewal; false if it already had one.
    func markRenewed() -> Bool {
        lock.withLock {
            defer { renewed = true }
            return !renewed
        }
    }

    func takeUnsavedHeartbeat() -> (seen: Date, health: Health)? {
        lock.withLock {
            guard unsaved, let health = _health else { return nil }
            unsaved = false
            return (_lastHeartbeat, health)
        }
    }

    enum Liveness { case unchanged, wentDown(silence: Double), cameBack }

    func updateLiveness(now: Date, downAfter: Double) -> Liveness {
        lock.withLock {
            let silence = now.timeIntervalSince(_lastHeartbeat)
            if !down, silence > downAfter {
                down = true
                return .wentDown(silence: silence)
            }
            return .unchanged
        }
    }

    /// Tells the agent why it is being dropped, then closes the connection.
    /// The reason gets two seconds: an agent that stopped reading cannot hold its session open (or keep
    /// `ionlab agent revoke` waiting) by never taking it.
    func refuse(_ refusal: Refusal) async {
        let closer = Task { [weak self] in
            guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }  // the refusal went out in time
            self?.close()  // fails the write that is still waiting
        }
        try? await mux.sendControl(.refused(refusal))
        closer.cancel()
        close()
    }

    func close() {
        channel.close(promise: nil)
    }

    /// Starts a job on the agent.
    func exec(_ spec: ExecSpec, jobs: JobLedger) async throws -> RemoteExec {
        try jobs.started(spec, agent: name)
        let stream: AgentStream
        do {
            stream = try await mux.open(.exec(spec))
        } catch {
            throw Failure("agent \(name) disconnected before job \(spec.jobID) could start")
        }
        return RemoteExec(spec: spec, stream: ExecStream(stream), session: self, jobs: jobs)
    }
}

/// A job running on an agent, seen from the controller: its updates in order, and its controls. Its
/// result is stored and acknowledged as it arrives.
final class RemoteExec: @unchecked Sendable {
    let spec: ExecSpec
    let stream: ExecStream<AgentStreamMessage>
    let session: AgentSession
    let jobs: JobLedger

    init(spec: ExecSpec, stream: ExecStream<AgentStreamMessage>, session: AgentSession, jobs: JobLedger) {
        self.spec = spec
        self.stream = stream
        self.session = session
        self.jobs = jobs
    }

    /// The next update. After `finished` the result is stored and the stream closed.
    func next() async throws -> ExecStream<AgentStreamMessage>.Update {
        let update: ExecStream<AgentStreamMessage>.Update
        do {
            update = try await stream.next()
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as Failure {
            stream.close()
            throw error
        } catch let error as WireError where !Self.meansDisconnected(error) {
            stream.close()
            throw WireError.unexpected("\(error) from agent \(session.name) on an exec stream")
        } catch {
            throw Failure("agent \(session.name) disconnected; job \(spec.jobID) goes on there and its result is stored when it reconnects")
        }
        if case .finished(let result) = update {
            stream.close()
            jobs.finished(result, agent: session.name)
            try? await session.mux.sendControl(.jobReportsAck([result.jobID]))
        }
        return update
    }

    /// The connection went, as opposed to the agent sending something out of place.
    private static func meansDisconnected(_ error: WireError) -> Bool {
        switch error {
        case .unexpected, .malformedMessage, .invalidField: false
        default: true
        }
    }

    /// Waits for the result, discarding live output (the result carries its tail).
    func result() async throws -> ExecResult {
        while true {
            if case .finished(let result) = try await next() { return result }
        }
    }

    func send(stdin bytes: ByteBuffer) async throws { try await stream.send(stdin: bytes) }
    func closeStdin() async throws { try await stream.closeStdin() }
    func cancel() async { try? await stream.cancel() }
    func resize(rows: UInt16, columns: UInt16) async throws { try await stream.resize(rows: rows, columns: columns) }
}

/// The connected sessions by agent name. Every change fires the lifecycle signal.
final class SessionRegistry: Sendable {
    private let sessions = NIOLockedValueBox<[String: AgentSession]>([:])
    let changes: ChangeSignal

    init(changes: ChangeSignal) { self.changes = changes }

    /// Registers a session, returning the one it replaces.
    func register(_ session: AgentSession) -> AgentSession? {
        defer { changes.notify() }
        return sessions.withLockedValue { all in
            defer { all[session.name] = session }
            return all[session.name]
        }
    }

    /// Removes a session if it is still the registered one.
    func remove(_ session: AgentSession) -> Bool {
        let removed: Bool = sessions.withLockedValue { all in
            guard all[session.name] === session else { return false }
            all[session.name] = nil
            return true
        }
        if removed { changes.notify() }
        return removed
    }

    /// The agent's session once it is connected, waiting up to `patience` seconds for it.
    func waitForSession(named name: String, patience: Double) async -> AgentSession? {
        await changes.wait(for: { self.session(named: name) }, timeout: .clamped(seconds: patience))
    }

    func session(named name: String) -> AgentSession? { sessions.withLockedValue { $0[name] } }
    var all: [AgentSession] { sessions.withLockedValue { Array($0.values) } }
    var count: Int { sessions.withLockedValue { $0.count } }
}
