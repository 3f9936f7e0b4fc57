import Foundation
import IonLabConfig
import IonLabPKI
import IonLabWire
import NIOCore
import NIOPosix
import NIOSSL
import X509

/// Accepts agent connections: TLS 1.3, then a versioned hello, then either enrollment (no client
/// certificate) or an authenticated session (a certificate from our CA that is known and not revoked).
/// A connection's failure is logged in one line and never affects the others.
struct AgentListener {
    /// An accepted connection, and the end of its TLS handshake.
    struct Connection: Sendable {
        let channel: NIOAsyncChannel<Frame, Frame>
        let handshake: EventLoopFuture<Void>
        /// The peer's address, read at accept time: a channel the peer already closed no longer knows it.
        let remote: String
    }

    let controller: Controller
    let server: NIOAsyncChannel<Connection, Never>

    static func bind(controller: Controller) async throws -> AgentListener {
        let context = try TLSSetup.serverContext(identity: controller.serverIdentity, ca: controller.ca)
        let listen = controller.config.listen
        do {
            let server = try await ServerBootstrap(group: controller.group)
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.so_keepalive), value: 1)
                .bind(host: listen.host, port: listen.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let waiter = HandshakeWaiter(promise: channel.eventLoop.makePromise())
                        try channel.pipeline.syncOperations.addHandlers([TLSSetup.serverHandler(context: context), waiter])
                        try channel.pipeline.syncOperations.addFrameCodec()
                        return Connection(channel: try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel), handshake: waiter.done,
                                          remote: Format.peer(channel.remoteAddress))
                    }
                }
            return AgentListener(controller: controller, server: server)
        } catch {
            throw ControllerError("cannot listen on \(listen): \(Format.error(error))")
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

    /// Anything a peer does wrong ends its own connection with a logged line, never more.
    private func handle(_ connection: Connection) async {
        let channel = connection.channel.channel
        let remote = connection.remote
        // A peer must finish the handshake and say hello promptly.
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(15)) { channel.close(promise: nil) }
        do {
            try await connection.handshake.get()
        } catch {
            deadline.cancel()
            controller.logger.warning("agent connection from \(remote) failed: TLS handshake: \(Format.error(error))")
            try? await connection.channel.channel.close()
            return
        }
        var agentName: String?
        do {
            let peer = try await TLSSetup.peerCertificate(of: channel).get()
            try await connection.channel.executeThenClose { inbound, outbound in
                let mux = MuxConnection(writer: outbound, side: .controller)
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
                deadline.cancel()
                guard let peer else {
                    agentName = try await enroll(mux: mux, frames: &frames, remote: remote)
                    return
                }
                let session: AgentSession
                do {
                    let name = try authenticate(peer)
                    agentName = name
                    session = AgentSession(name: name, remote: remote, hello: hello, mux: mux, channel: channel)
                } catch let refusal as Refusal {
                    controller.events.emit(.agentRefused, agent: agentName, "\(remote): \(refusal.message)")
                    try await mux.sendControl(.refused(refusal))
                    return
                }
                try await serve(session, hello: hello, frames: &frames)
            }
        } catch {
            deadline.cancel()
            let who = agentName.map { "agent \($0) (\(remote))" } ?? "agent connection from \(remote)"
            if case WireError.connectionClosed = error { return }
            controller.logger.warning("\(who): \(Format.error(error)); connection closed")
            if let agentName, error is WireError {
                controller.events.emit(.protocolError, agent: agentName, Format.error(error))
            }
        }
    }

    // MARK: Enrollment

    private func enroll(mux: MuxConnection, frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator, remote: String) async throws -> String? {
        guard let frame = try await frames.next() else { return nil }
        guard case .control(.enroll(let request)) = try mux.route(frame) else {
            try await mux.sendControl(.refused(Refusal(.notEnrolled, "no client certificate: enroll with a token first")))
            return nil
        }
        do {
            let certificate = try issueCertificate(for: request)
            try await mux.sendControl(.enrolled(EnrollResponse(certificatePEM: try certificate.serializeAsPEM().pemString,
                                                               caPEM: try controller.ca.certificate.serializeAsPEM().pemString)))
            controller.events.emit(.agentEnrolled, agent: request.name, "enrolled from \(remote); certificate \(certificate.serialHex)",
                                   fields: ["serial": certificate.serialHex, "remote": remote])
        } catch let refusal as Refusal {
            controller.events.emit(.agentRefused, agent: request.name, "enrollment from \(remote) refused: \(refusal.message)")
            try await mux.sendControl(.refused(refusal))
        }
        return request.name
    }

    private func issueCertificate(for request: EnrollRequest) throws -> Certificate {
        var issued: Certificate?
        do {
            try controller.store.spendToken(hash: EnrollmentToken.hash(request.token), agent: request.name) {
                let certificate = try controller.ca.signAgentCertificate(csrPEM: request.csrPEM, name: request.name,
                                                                         lifetime: controller.config.agentCertificateSeconds)
                issued = certificate
                return (certificate.serialHex, certificate.notValidAfter)
            }
        } catch let problem as TokenProblem {
            switch problem {
            case .unknown: throw Refusal(.badToken, "the enrollment token is not valid for this controller")
            case .expired(let time): throw Refusal(.tokenExpired, "the enrollment token for \(request.name) expired at \(Format.time(time))")
            case .used(let time): throw Refusal(.tokenUsed, "the enrollment token for \(request.name) was already used at \(Format.time(time))")
            case .otherAgent(let owner): throw Refusal(.tokenForAnotherAgent, "the enrollment token belongs to agent '\(owner)', not '\(request.name)'")
            }
        } catch let error as PKIError {
            throw Refusal(.protocolError, error.message)
        }
        return issued!
    }

    // MARK: Authentication

    /// The agent a certificate belongs to; throws a refusal that tells the agent why not.
    private func authenticate(_ certificate: Certificate) throws -> String {
        do {
            try controller.ca.verifyClientCertificate(certificate)
        } catch let error as PKIError {
            let expired = Date() > certificate.notValidAfter && certificate.issuer == controller.ca.certificate.subject
            throw Refusal(expired ? .expiredCertificate : .untrustedCertificate, error.message)
        }
        let serial = certificate.serialHex
        guard let record = try controller.store.certificate(serial: serial) else {
            throw Refusal(.unknownAgent, "certificate \(serial) (\(certificate.commonName ?? "no name")) is not known to this controller")
        }
        if let revoked = record.revokedAt {
            throw Refusal(.revoked, "certificate \(serial) of agent \(record.agent) was revoked at \(Format.time(revoked))")
        }
        guard certificate.commonName == record.agent else {
            throw Refusal(.unknownAgent, "certificate \(serial) names '\(certificate.commonName ?? "")', not agent '\(record.agent)'")
        }
        return record.agent
    }

    // MARK: Session

    private func serve(_ session: AgentSession, hello: Hello, frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator) async throws {
        try await session.mux.sendControl(.welcome(Welcome(name: session.name, software: "ionlab controller")))
        if let replaced = controller.sessions.register(session) {
            replaced.close()
        }
        controller.events.emit(.agentConnected, agent: session.name, "connected from \(session.remote) (\(hello.software))",
                               fields: ["remote": session.remote, "boot_id": hello.bootID ?? "", "software": hello.software])
        markLostJobs(of: session.name, known: Set(hello.runningJobs ?? []))
        var reason = "connection closed"
        defer {
            if controller.sessions.remove(session) {
                try? controller.store.touch(agent: session.name)
                controller.events.emit(.agentDisconnected, agent: session.name, reason)
            }
        }
        do {
            while let frame = try await frames.next() {
                switch try session.mux.route(frame) {
                case .control(let message):
                    try await handleControl(message, from: session)
                case .opened(let stream, let message):
                    try? await stream.send(.failure(Failure("the controller does not accept \(message.name) requests")))
                    stream.close()
                case .delivered:
                    break
                }
            }
        } catch {
            reason = Format.error(error)
            throw error
        }
    }

    /// Jobs the store thinks run on this agent, which the agent no longer knows, ended without a result.
    private func markLostJobs(of agent: String, known: Set<String>) {
        for id in (try? controller.store.runningJobs(agent: agent)) ?? [] where !known.contains(id) {
            controller.jobFinished(ExecResult(jobID: id, outcome: .lost, error: "the agent no longer knows this job"), agent: agent)
        }
    }

    private func handleControl(_ message: Message, from session: AgentSession) async throws {
        switch message {
        case .heartbeat(let health):
            if session.heartbeat(health) {
                controller.events.emit(.agentUp, agent: session.name, "heartbeats resumed")
            }
        case .jobReports(let results):
            for result in results { controller.jobFinished(result, agent: session.name) }
            try await session.mux.sendControl(.jobReportsAck(results.map(\.jobID)))
        case .renew(let csrPEM):
            let certificate = try controller.ca.signAgentCertificate(csrPEM: csrPEM, name: session.name,
                                                                     lifetime: controller.config.agentCertificateSeconds)
            try controller.store.addCertificate(serial: certificate.serialHex, agent: session.name, notAfter: certificate.notValidAfter)
            try await session.mux.sendControl(.renewed(certificatePEM: try certificate.serializeAsPEM().pemString))
            controller.events.emit(.certificateRenewed, agent: session.name,
                                   "certificate \(certificate.serialHex) issued, valid until \(Format.time(certificate.notValidAfter))",
                                   fields: ["serial": certificate.serialHex])
        default:
            throw WireError.unexpected("\(message.name) from an agent")
        }
    }
}
