import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabTransfer
import IonLabWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Port forwards, held by the controller. A forward listens on the host and opens, for each connection, a
/// `connect` stream on its agent's channel; a reverse forward has its agent listen, and joins each
/// connection the agent announces with an `attach` stream and a connection to the target on the host.
/// Kept forwards are stored, opened again when the controller starts, and a reverse one listens again
/// whenever its agent reconnects. A connection that fails is closed, and a line says why: to the command
/// that holds the forward, or to the log.
final class ForwardManager: ForwardKeeping {
    /// Connections one forward relays at once; more wait to be accepted, and so do a reverse forward's
    /// announcements, however many a hostile agent sends.
    static let concurrentConnections = 256
    /// How long a reverse forward waits before asking a connected agent to listen again after a failure.
    static let retryPause: Duration = .seconds(10)

    private let store: Store
    private let sessions: SessionRegistry
    private let group: EventLoopGroup
    private let logger: Logger
    private let forwards = NIOLockedValueBox<[ForwardRule.Key: OpenForward]>([:])

    init(store: Store, sessions: SessionRegistry, group: EventLoopGroup, logger: Logger) {
        self.store = store
        self.sessions = sessions
        self.group = group
        self.logger = logger
    }

    // MARK: Opening and closing

    /// Opens a forward: its host port is bound, or its agent listens, before this returns; a failure to do
    /// so is thrown and nothing is kept. A kept reverse forward whose agent is away waits for it.
    @discardableResult
    func open(_ rule: ForwardRule, owner: ForwardOwner, notices: (@Sendable (String) -> Void)? = nil) async throws -> OpenForward {
        try AgentName.validate(rule.agent)
        guard try store.agent(rule.agent) != nil else { throw ControllerError("no agent or VM named '\(rule.agent)'") }
        let forward = OpenForward(rule: rule, owner: owner, notices: notices ?? { [logger] line in logger.warning("\(SafeText.escaped(line))") })
        try forwards.withLockedValue { open in
            if let existing = open[rule.key] {
                throw ControllerError("\(rule.key) is already forwarded (\(existing.rule), \(existing.owner))")
            }
            open[rule.key] = forward
        }
        do {
            if rule.reverse {
                let first = try await firstListen(forward)
                forward.task = Task { await self.keepListening(forward, first: first) }
            } else {
                let listener = try await bind(rule.ports.listen)
                forward.closeListener = { listener.channel.close(promise: nil) }
                forward.task = Task { await self.accept(on: listener, forward) }
            }
            if owner.persists { try store.saveForward(rule, owner: owner) }
        } catch {
            forget(forward)
            throw error
        }
        return forward
    }

    /// Closes a forward: its listener, its connections, and (`forget`) its stored copy.
    func close(_ forward: OpenForward) {
        forget(forward)
        forward.stop()
    }

    /// Closes and forgets the forward with this key.
    func remove(_ key: ForwardRule.Key) throws {
        guard let forward = forwards.withLockedValue({ $0[key] }) else { throw ControllerError("no forward listens on \(key)") }
        close(forward)
        try store.deleteForward(key)
    }

    /// Closes and forgets an agent's forwards (its VM was destroyed), or those a fleet keeps for it.
    func removeAll(agent: String, owner: ForwardOwner? = nil) throws {
        let doomed = forwards.withLockedValue { $0.values.filter { $0.rule.agent == agent && (owner == nil || $0.owner == owner) } }
        for forward in doomed {
            close(forward)
            try store.deleteForward(forward.rule.key)
        }
        for kept in try store.keptForwards() where kept.rule.agent == agent && (owner == nil || kept.owner == owner) {
            try store.deleteForward(kept.rule.key)
        }
    }

    /// Makes the forwards `owner` holds for `agent` exactly `rules`: those no longer wanted (and those that
    /// failed) are closed, the missing opened. The first that cannot open is thrown.
    func converge(_ rules: [ForwardRule], owner: ForwardOwner, agent: String) async throws {
        let held = forwards.withLockedValue { $0.values.filter { $0.owner == owner && $0.rule.agent == agent } }
        var kept = Set<ForwardRule>()
        for forward in held {
            if rules.contains(forward.rule), !forward.hasFailed {
                kept.insert(forward.rule)
            } else {
                close(forward)
                try store.deleteForward(forward.rule.key)
            }
        }
        for rule in rules where !kept.contains(rule) { try await open(rule, owner: owner) }
    }

    /// Opens the stored forwards again; one that cannot open is listed as failed, with a line in the log.
    func restore() async {
        let kept: [Store.KeptForward]
        do {
            kept = try store.keptForwards()
        } catch {
            logger.error("cannot read the kept forwards: \(error)")
            return
        }
        for forward in kept {
            do {
                try await open(forward.rule, owner: forward.owner)
                logger.info("forward \(forward.rule) open again (\(forward.owner))")
            } catch {
                logger.warning("kept forward \(forward.rule) did not open: \(AdminHandler.describe(error))")
                let failed = OpenForward(rule: forward.rule, owner: forward.owner, notices: { _ in })
                failed.state = .failed(AdminHandler.describe(error))
                forwards.withLockedValue { open in if open[forward.rule.key] == nil { open[forward.rule.key] = failed } }
            }
        }
    }

    /// Every forward, sorted by agent and port.
    func records(agent: String? = nil) -> [ForwardRecord] {
        forwards.withLockedValue { Array($0.values) }
            .filter { agent == nil || $0.rule.agent == agent }
            .map(\.record)
            .sorted { ($0.rule.agent, $0.rule.ports.listen.port) < ($1.rule.agent, $1.rule.ports.listen.port) }
    }

    private func forget(_ forward: OpenForward) {
        forwards.withLockedValue { open in
            if open[forward.rule.key] === forward { open[forward.rule.key] = nil }
        }
    }

    // MARK: Forwards into an agent's machine

    private func bind(_ endpoint: Endpoint) async throws -> ForwardSockets.Listener {
        do {
            return try await ForwardSockets.listen(on: endpoint, group: group)
        } catch {
            throw ControllerError("cannot listen on \(endpoint): \(ForwardSockets.describe(error))")
        }
    }

    private func accept(on listener: ForwardSockets.Listener, _ forward: OpenForward) async {
        let admission = AsyncSemaphore(Self.concurrentConnections)
        try? await listener.executeThenClose { connections in
            await withDiscardingTaskGroup { tasks in
                do {
                    for try await connection in connections {
                        await admission.acquire()
                        tasks.addTask {
                            await self.relayIn(connection, forward)
                            admission.release()
                        }
                    }
                } catch {
                    logger.debug("forward \(forward.rule) stopped accepting: \(error)")
                }
            }
        }
    }

    /// One connection of a forward: a `connect` stream to the agent, relayed.
    private func relayIn(_ connection: ForwardedConnection, _ forward: OpenForward) async {
        forward.connectionOpened()
        defer { forward.connectionClosed() }
        let rule = forward.rule
        let stream: AgentStream
        do {
            guard let session = sessions.session(named: rule.agent) else { throw ControllerError("\(rule.agent)'s agent is not connected") }
            stream = try await session.mux.open(.connect(rule.ports.target))
        } catch {
            try? await connection.channel.close()
            forward.notice("\(rule): connection closed: \(AdminHandler.describe(error))")
            return
        }
        await relay(connection, over: stream, forward)
    }

    private func relay(_ connection: ForwardedConnection, over stream: AgentStream, _ forward: OpenForward) async {
        do {
            try await ConnectionRelay.run(connection, over: stream)
        } catch let failure as Failure {
            forward.notice("\(forward.rule): connection closed: \(failure.message)")
        } catch WireError.streamReset {
            forward.notice("\(forward.rule): connection closed: the agent's end of it broke off")
        } catch let error as WireError {
            forward.notice("\(forward.rule): connection closed: \(error)")
        } catch {
            // The local client went away (a reset, say), or the forward was closed: nothing to tell.
            logger.debug("forward \(forward.rule): a connection ended: \(error)")
        }
    }

    // MARK: Reverse forwards

    /// The first listen of a reverse forward: a command's forward needs its agent now; a kept one waits.
    private func firstListen(_ forward: OpenForward) async throws -> (AgentSession, AgentStream)? {
        guard let session = sessions.session(named: forward.rule.agent) else {
            guard forward.owner.persists else { throw ControllerError("\(forward.rule.agent)'s agent is not connected") }
            forward.state = .waitingForAgent
            return nil
        }
        return (session, try await listen(forward, through: session))
    }

    /// Asks the agent to listen; returns the stream once it does.
    private func listen(_ forward: OpenForward, through session: AgentSession) async throws -> AgentStream {
        let stream = try await session.mux.open(.listen(forward.rule.ports.listen))
        do {
            switch try await stream.nextMessage() {
            case .listening:
                forward.state = .listening
                return stream
            case .failure(let failure):
                throw ControllerError("\(forward.rule.agent): \(failure.message)")
            case let other:
                throw WireError.unexpected("\(other.name) where a reverse forward listens")
            }
        } catch {
            stream.close()
            throw error
        }
    }

    /// Joins the connections the agent announces, and listens again whenever the agent comes back, until
    /// the forward is closed.
    private func keepListening(_ forward: OpenForward, first: (AgentSession, AgentStream)?) async {
        var current = first
        while !Task.isCancelled {
            if let (session, stream) = current {
                await joinAnnounced(on: stream, through: session, forward)
                current = nil
                // Listen again once the agent has reconnected, or after a pause if it is still connected.
                _ = await sessions.changes.wait(for: { self.sessions.session(named: forward.rule.agent) !== session ? true : nil },
                                                timeout: Self.retryPause)
                continue
            }
            guard let session = sessions.session(named: forward.rule.agent) else {
                forward.state = .waitingForAgent
                _ = await sessions.waitForSession(named: forward.rule.agent, patience: 3600)
                continue
            }
            do {
                current = (session, try await listen(forward, through: session))
            } catch {
                if Task.isCancelled { return }
                forward.state = .failed(AdminHandler.describe(error))
                forward.notice("\(forward.rule): \(AdminHandler.describe(error))")
                _ = await sessions.changes.wait(for: { self.sessions.session(named: forward.rule.agent) !== session ? true : nil },
                                                timeout: Self.retryPause)
            }
        }
    }

    private func joinAnnounced(on stream: AgentStream, through session: AgentSession, _ forward: OpenForward) async {
        defer { stream.close() }
        let admission = AsyncSemaphore(Self.concurrentConnections)
        await withDiscardingTaskGroup { tasks in
            do {
                while true {
                    guard case .accepted(let id) = try await stream.nextMessage() else {
                        throw WireError.unexpected("a message other than accepted on a listening stream")
                    }
                    await admission.acquire()
                    tasks.addTask {
                        await self.relayOut(id, through: session, forward)
                        admission.release()
                    }
                }
            } catch {
                if !Task.isCancelled { forward.state = .waitingForAgent }
                logger.debug("reverse forward \(forward.rule) stopped listening: \(error)")
            }
        }
    }

    /// One connection of a reverse forward: joined with an `attach` stream, and relayed to the target.
    private func relayOut(_ id: UInt64, through session: AgentSession, _ forward: OpenForward) async {
        forward.connectionOpened()
        defer { forward.connectionClosed() }
        let rule = forward.rule
        let stream: AgentStream
        let connection: ForwardedConnection
        do {
            stream = try await session.mux.open(.attach(connection: id))
        } catch {
            return
        }
        do {
            connection = try await ForwardSockets.connect(to: rule.ports.target, group: group)
        } catch {
            let reason = "cannot connect to \(rule.ports.target) on the host: \(ForwardSockets.describe(error))"
            try? await stream.send(.failure(Failure(reason)))
            stream.close()
            forward.notice("\(rule): connection closed: \(reason)")
            return
        }
        await relay(connection, over: stream, forward)
    }
}

/// One open forward: its rule and owner, what it is doing, and its counts.
final class OpenForward: @unchecked Sendable {
    let rule: ForwardRule
    let owner: ForwardOwner
    private let notices: @Sendable (String) -> Void
    private let lock = NIOLock()
    private var _state = ForwardRecord.State.listening
    private var open = 0
    private var total = 0
    private var _task: Task<Void, Never>?
    private var _closeListener: (@Sendable () -> Void)?

    init(rule: ForwardRule, owner: ForwardOwner, notices: @escaping @Sendable (String) -> Void) {
        self.rule = rule
        self.owner = owner
        self.notices = notices
    }

    var state: ForwardRecord.State {
        get { lock.withLock { _state } }
        set { lock.withLock { _state = newValue } }
    }

    var task: Task<Void, Never>? {
        get { lock.withLock { _task } }
        set { lock.withLock { _task = newValue } }
    }

    var closeListener: (@Sendable () -> Void)? {
        get { lock.withLock { _closeListener } }
        set { lock.withLock { _closeListener = newValue } }
    }

    func notice(_ line: String) { notices(line) }

    var hasFailed: Bool {
        if case .failed = state { return true }
        return false
    }

    func connectionOpened() { lock.withLock { open += 1; total += 1 } }
    func connectionClosed() { lock.withLock { open -= 1 } }

    var record: ForwardRecord {
        lock.withLock { ForwardRecord(rule: rule, owner: owner, state: _state, openConnections: open, totalConnections: total) }
    }

    /// Stops listening and ends every connection.
    func stop() {
        let (task, closeListener) = lock.withLock { (_task, _closeListener) }
        closeListener?()
        task?.cancel()
    }
}
