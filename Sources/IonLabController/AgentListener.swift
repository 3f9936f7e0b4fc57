import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabControllerConfig
import IonLabPKI
import IonLabWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import X509

/// Accepts agent connections: TLS 1.3, then a versioned hello, then either enrollment (no client
/// certificate) or an authenticated session (a certificate from our CA that is known and not revoked).
///
/// Every guest can reach this listener, so until a peer has authenticated it gets little: one deadline for
/// the whole handshake (``ControllerConfig/authenticationTimeoutSeconds``), frames of at most
/// ``Frame/unauthenticatedMaxPayload``, and a place among a bounded number of unauthenticated connections
/// (``UnauthenticatedConnections``). A connection's failure is logged in one (throttled) line and never
/// affects the others.
struct AgentListener {
    /// An accepted connection, and the end of its TLS handshake.
    struct Connection: Sendable {
        let channel: NIOAsyncChannel<Frame, Frame>
        let handshake: EventLoopFuture<Void>
        /// The peer's address, read at accept time: a channel the peer already closed no longer knows it.
        let remote: String
        /// Raised to the full frame size once the peer has authenticated.
        let frameLimit: FrameSizeLimit
    }

    /// What the listener hands each connection to.
    struct Services: Sendable {
        let enrollment: Enrollment
        let sessions: SessionRegistry
        let jobs: JobLedger
        let events: EventLog
        let store: Store
        let config: ControllerConfig
        let logger: Logger
    }

    let services: Services
    let server: NIOAsyncChannel<Connection, Never>
    let unauthenticated: UnauthenticatedConnections
    let throttle = LogThrottle()
    /// Refusals are events, but anyone can cause them: at most 20 a minute are recorded one by one.
    let refusals = LogThrottle()

    var enrollment: Enrollment { services.enrollment }
    var sessions: SessionRegistry { services.sessions }
    var events: EventLog { services.events }
    var config: ControllerConfig { services.config }
    var logger: Logger { services.logger }

    /// Listens on the configured address with the controller's server certificate.
    static func bind(_ services: Services, identity: Identity, group: EventLoopGroup) async throws -> AgentListener {
        let context = try TLSSetup.serverContext(identity: identity, ca: services.enrollment.ca)
        let listen = services.config.listen
        do {
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.so_keepalive), value: 1)
                .bind(host: listen.host, port: listen.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let waiter = HandshakeWaiter(promise: channel.eventLoop.makePromise())
                        let limit = FrameSizeLimit(Frame.unauthenticatedMaxPayload)
                        try channel.pipeline.syncOperations.addHandlers([TLSSetup.serverHandler(context: context), waiter])
                        try channel.pipeline.syncOperations.addFrameCodec(limit: limit)
                        return Connection(channel: try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel), handshake: waiter.done,
                                          remote: Format.peer(channel.remoteAddress), frameLimit: limit)
                    }
                }
            return AgentListener(services: services, server: server,
                                 unauthenticated: UnauthenticatedConnections(limit: services.config.maxUnauthenticatedConnections))
        } catch {
            throw ControllerError("cannot listen on \(listen): \(Format.connectionError(error))")
        }
    }

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await handle(connection) }
                }
            }
        }
    }

    /// Logs a failure of a peer that never authenticated, throttled: anyone can cause these.
    private func warnUnauthenticated(_ line: String) {
        let (log, suppressed) = throttle.admit()
        if suppressed > 0 {
            logger.warning("\(suppressed) more unauthenticated connections failed in the last minute (not logged one by one)")
        }
        if log { logger.warning("\(Format.escaped(line))") }
    }

    /// Records a refusal as an event, throttled: a flood of refused peers cannot push real history out.
    private func recordRefusal(agent: String?, _ message: String) {
        let (record, suppressed) = refusals.admit()
        if suppressed > 0 {
            events.emit(.agentRefused, "\(suppressed) more connections were refused in the last minute (not recorded one by one)",
                                   detail: .suppressed(Suppressed(count: suppressed)))
        }
        if record { events.emit(.agentRefused, agent: agent, message) }
    }

    /// Anything a peer does wrong ends its own connection with a logged line, never more.
    private func handle(_ connection: Connection) async {
        let channel = connection.channel.channel
        let remote = connection.remote
        let ticket = unauthenticated.admit(channel)
        let evicted = unauthenticated.takeEvictedCount()
        if evicted > 0 {
            warnUnauthenticated("\(evicted) unauthenticated connection(s) closed to make room (limit \(unauthenticated.limit))")
        }
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(config.authenticationTimeoutSeconds * 1000))) {
            channel.close(promise: nil)
        }
        let authenticated = AuthenticationEnd { deadline.cancel(); unauthenticated.leave(ticket) }
        defer { authenticated.now() }
        do {
            try await connection.handshake.get()
        } catch {
            warnUnauthenticated("agent connection from \(remote) failed: TLS handshake: \(Format.connectionError(error))")
            try? await connection.channel.channel.close()
            return
        }
        var agentName: String?
        do {
            let peer = try await TLSSetup.peerCertificate(of: channel).get()
            // A certificate is judged before anything is read: only a known agent earns full-size frames.
            let judged = try peer.map { (certificate: $0, standing: try enrollment.judge($0)) }
            if case .agent? = judged?.standing { connection.frameLimit.raise() }
            try await connection.channel.executeThenClose { inbound, outbound in
                let mux = MuxConnection<ControllerRole>(writer: outbound, side: .controller)
                defer { mux.fail(WireError.connectionClosed) }
                var frames = inbound.makeAsyncIterator()
                guard let first = try await frames.next() else { return }
                guard case .control(.hello(let hello)) = try mux.route(first) else {
                    throw WireError.unexpected("first message is not a hello")
                }
                do {
                    try ProtocolVersion.check(hello.protocolVersion)
                } catch let error as WireError {
                    try await mux.sendControl(.refused(Refusal(.unsupportedVersion, "controller: \(error)")))
                    throw error
                }
                switch judged {
                case nil:
                    agentName = try await enroll(mux: mux, frames: &frames, remote: remote)
                case (_, .refused(let code, let reason, let name))?:
                    agentName = name
                    recordRefusal(agent: name, "\(remote): \(reason)")
                    try await mux.sendControl(.refused(Refusal(code, reason)))
                case (let certificate, .recoverable(let name))?:
                    agentName = name
                    try await recover(name, presented: certificate, mux: mux, frames: &frames, remote: remote)
                case (let certificate, .agent(let name))?:
                    agentName = name
                    let session = AgentSession(name: name, remote: remote, hello: hello, mux: mux, channel: channel,
                                               serial: certificate.serialHex)
                    try await serve(session, hello: hello, frames: &frames, authenticated: authenticated)
                }
            }
        } catch {
            let who = agentName.map { "agent \($0) (\(remote))" } ?? "agent connection from \(remote)"
            if case WireError.connectionClosed = error { return }
            if agentName == nil {
                warnUnauthenticated("\(who): \(Format.connectionError(error)); connection closed")
            } else {
                logger.warning("\(Format.escaped(who)): \(Format.connectionError(error)); connection closed")
            }
            if let agentName, error is WireError {
                events.emit(.protocolError, agent: agentName, Format.connectionError(error))
            }
        }
    }

    // MARK: Enrollment

    private func enroll(mux: MuxConnection<ControllerRole>, frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator, remote: String) async throws -> String? {
        guard let frame = try await frames.next() else { return nil }
        // The name is checked as the message is decoded (`enroll.name`): nothing unchecked reaches the store.
        guard case .control(.enroll(let request)) = try mux.route(frame) else {
            try await mux.sendControl(.refused(Refusal(.notEnrolled, "no client certificate: enroll with a token first")))
            return nil
        }
        do {
            try await mux.sendControl(.enrolled(try enrollment.enroll(request, from: remote)))
        } catch let refusal as Refusal {
            // The name is only claimed (the token did not check out), so the event is nobody's.
            recordRefusal(agent: nil, "enrollment as \(request.name) from \(remote) refused: \(refusal.message)")
            try await mux.sendControl(.refused(refusal))
        }
        return request.name
    }

    /// An agent back after its certificate expired: it proved its key in the TLS handshake, and its
    /// certificate is ours, unrevoked and recently expired. It may trade it for a new one on this
    /// connection, and do nothing else.
    private func recover(_ name: String, presented: Certificate, mux: MuxConnection<ControllerRole>,
                         frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator, remote: String) async throws {
        try await mux.sendControl(.renewalRequired("certificate \(presented.serialHex) expired at \(Format.time(presented.notValidAfter)); renew it"))
        guard let frame = try await frames.next() else { return }
        guard case .control(.renew(let csrPEM)) = try mux.route(frame) else {
            throw WireError.unexpected("anything but renew from an agent with an expired certificate")
        }
        do {
            try await mux.sendControl(.renewed(certificatePEM: try enrollment.recover(agent: name, presented: presented, csrPEM: csrPEM, remote: remote)))
        } catch let refusal as Refusal {
            recordRefusal(agent: name, "\(remote): \(refusal.message)")
            try await mux.sendControl(.refused(refusal))
        }
    }

    // MARK: Session

    private func serve(_ session: AgentSession, hello: Hello, frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator,
                       authenticated: AuthenticationEnd) async throws {
        if let replaced = sessions.register(session) {
            replaced.close()
        }
        // Registered first, then checked again: a revocation that the first check missed either shows here or
        // finds this session registered and closes it. Either way no revoked agent is welcomed.
        guard try enrollment.isInGoodStanding(serial: session.serial) else {
            _ = sessions.remove(session)
            try await session.mux.sendControl(.refused(Refusal(.revoked, "agent \(session.name) was revoked")))
            return
        }
        try await session.mux.sendControl(.welcome(Welcome(name: session.name, software: "ionlab controller")))
        authenticated.now()
        events.emit(.agentConnected, agent: session.name, "connected from \(session.remote) (\(hello.software))",
                               detail: .connection(ConnectionDetail(remote: session.remote, bootID: hello.bootID, software: hello.software,
                                                                     agentAgeSeconds: hello.ageSeconds)))
        // An agent with more jobs than a hello may list sends none: then nothing can be judged lost.
        if let known = hello.runningJobs { services.jobs.markLost(of: session.name, known: Set(known)) }
        var reason = "connection closed"
        defer {
            if sessions.remove(session) {
                try? services.store.touch(agent: session.name)
                events.emit(.agentDisconnected, agent: session.name, reason)
            }
        }
        do {
            while let frame = try await frames.next() {
                switch try session.mux.route(frame) {
                case .control(let message):
                    try await handleControl(message, from: session)
                case .opened(_, let nothing):
                    switch nothing {}  // agents open no streams: an opening does not even decode here
                case .delivered:
                    break
                }
            }
        } catch {
            reason = Format.connectionError(error)
            throw error
        }
    }

    private func handleControl(_ message: AgentControl, from session: AgentSession) async throws {
        switch message {
        case .heartbeat(let health):
            let change = session.heartbeat(health)
            if change.cameBack { events.emit(.agentUp, agent: session.name, "heartbeats resumed") }
            if change.first { sessions.changes.notify() }
        case .jobReports(let results):
            for result in results { services.jobs.finished(result, agent: session.name) }
            try await session.mux.sendControl(.jobReportsAck(results.map(\.jobID)))
        case .renew(let csrPEM):
            // An agent renews once per connection (it uses the new certificate from the next one).
            guard session.markRenewed() else { throw WireError.unexpected("a second renewal on one connection") }
            let certificate: Certificate
            do {
                certificate = try enrollment.renew(agent: session.name, presented: session.serial, csrPEM: csrPEM, remote: session.remote)
            } catch let refusal as Refusal {
                await session.refuse(refusal)
                throw refusal
            }
            try await session.mux.sendControl(.renewed(certificatePEM: try certificate.serializeAsPEM().pemString))
        case .hello, .enroll:
            throw WireError.unexpected("\(message.name) from a welcomed agent")
        }
    }
}

/// The moment a connection stops being unauthenticated (welcomed, or finished): its deadline is cancelled
/// and it leaves the bounded set. Idempotent.
final class AuthenticationEnd: @unchecked Sendable {
    private var action: (() -> Void)?
    private let lock = NSLock()

    init(_ action: @escaping () -> Void) { self.action = action }

    func now() {
        let action: (() -> Void)? = lock.withLock {
            defer { self.action = nil }
            return self.action
        }
        action?()
    }
}
