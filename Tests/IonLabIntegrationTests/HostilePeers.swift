import Crypto
import Foundation
import IonLabAgent
import IonLabAgentProtocol
import IonLabConfig
import IonLabPKI
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import X509

/// A peer that speaks the wire protocol on purpose wrongly, from the agent's side: it connects like an agent
/// (with a certificate it enrolled for with a real token, or none), then sends whatever a test wants.
final class FakeAgent: @unchecked Sendable {
    let channel: NIOAsyncChannel<Frame, Frame>
    let mux: MuxConnection<AgentRole>
    private var iterator: NIOAsyncChannelInboundStream<Frame>.AsyncIterator

    private init(channel: NIOAsyncChannel<Frame, Frame>) {
        self.channel = channel
        self.mux = MuxConnection<AgentRole>(writer: channel.outbound, side: .client)
        self.iterator = channel.inbound.makeAsyncIterator()
    }

    /// Opens TLS to the lab's controller, trusting it by its pin, with `identity` as client certificate.
    static func connect(_ lab: Lab, identity: Identity?) async throws -> FakeAgent {
        let connector = AgentConnector(endpoints: [try Endpoint(parsing: lab.endpoint)], pin: try lab.pin, group: MultiThreadedEventLoopGroup.singleton)
        return FakeAgent(channel: try await connector.connect(identity: identity))
    }

    /// The token `ionlab token create NAME` minted, read from the config it wrote.
    static func token(_ lab: Lab, for name: String) async throws -> String {
        try await AgentConfig.load(path: try lab.agentConfig(name)).token ?? ""
    }

    /// Enrolls `name` with a real token and `key`, and returns the identity.
    static func enroll(_ lab: Lab, name: String, token: String, key: P256.Signing.PrivateKey = .init()) async throws -> Identity {
        let peer = try await connect(lab, identity: nil)
        defer { peer.close() }
        try await peer.send(.hello(Hello(role: .agent, software: "fake agent")))
        try await peer.send(.enroll(EnrollRequest(name: name, token: token, csrPEM: try AgentKeys.csr(for: key, name: name))))
        switch try await peer.next() {
        case .control(.enrolled(let response))?:
            return Identity(certificate: try Certificate(pemEncoded: response.certificatePEM), privateKey: key)
        case .control(.refused(let refusal))?:
            throw refusal
        case let other:
            throw LabError("unexpected answer to enroll: \(String(describing: other))")
        }
    }

    /// An enrolled, connected and welcomed fake agent.
    static func session(_ lab: Lab, name: String) async throws -> FakeAgent {
        let identity = try await enroll(lab, name: name, token: try token(lab, for: name))
        let peer = try await connect(lab, identity: identity)
        let greeting = try await peer.hello()
        guard greeting == .welcomed else { throw LabError("\(name) was not welcomed: \(greeting)") }
        return peer
    }

    func hello() async throws -> Greeting {
        try await mux.greet(Hello(role: .agent, software: "fake agent", bootID: "fake-boot"), frames: &iterator)
    }

    /// Sends a message on stream 0, whatever it says.
    func send(_ message: AgentControl) async throws { try await mux.sendControl(message) }

    /// Writes a frame as given, bypassing every rule the mux keeps.
    func write(_ frame: Frame) async throws { try await channel.outbound.write(frame) }

    /// The next routed frame; nil once the controller closed the connection.
    func next() async throws -> Routed<AgentRole>? {
        guard let frame = try await iterator.next() else { return nil }
        return try mux.route(frame)
    }

    /// Reads until the controller closes the connection; true if it did within `timeout` seconds.
    func closedByController(within timeout: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    while try await self.next() != nil {}
                } catch {}
                return Date() < deadline
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(timeout))
                return false
            }
            let first = await group.next()!
            group.cancelAll()
            self.close()
            return first
        }
    }

    /// Serves requests the controller opens with `answer`, until the connection ends.
    func serve(_ answer: @escaping @Sendable (AgentStream, AgentRequest) async throws -> Void) -> Task<Void, Never> {
        Task {
            do {
                while let routed = try await self.next() {
                    if case .opened(let stream, let request) = routed {
                        Task { try? await answer(stream, request) }
                    }
                }
            } catch {}
            self.mux.fail(WireError.connectionClosed)
        }
    }

    func close() {
        channel.outbound.finish()
        channel.channel.close(promise: nil)
    }

    deinit { close() }
}

/// A peer that speaks the wire protocol from the controller's side: a TLS listener with whatever
/// certificate a test gives it, which records every message agents send and can send them anything.
final class FakeController: @unchecked Sendable {
    let port: Int
    private let server: Channel
    private let received = NIOLockedValueBox<[String]>([])
    private let connections = NIOLockedValueBox<[NIOAsyncChannel<Frame, Frame>]>([])
    private let (accepted, acceptedContinuation) = AsyncStream<NIOAsyncChannel<Frame, Frame>>.makeStream()
    private var acceptedIterator: AsyncStream<NIOAsyncChannel<Frame, Frame>>.AsyncIterator

    /// Listens on `port` with `identity` (its chain ends with `ca`).
    init(port: Int, identity: Identity, ca: CertificateAuthority) async throws {
        self.port = port
        acceptedIterator = accepted.makeAsyncIterator()
        let context = try TLSSetup.serverContext(identity: identity, ca: ca)
        let continuation = acceptedContinuation
        server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSSetup.serverHandler(context: context))
                    try channel.pipeline.syncOperations.addFrameCodec()
                    continuation.yield(try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }

    /// The names of the messages agents sent, in order.
    var messages: [String] { received.withLockedValue { $0 } }

    /// Waits (at most `seconds`: an agent that died never comes, and the test must fail, not hang) for the
    /// next agent, reads its hello, welcomes it, and returns its mux with a reader running.
    func welcomeNextAgent(within seconds: Double = 60) async throws -> MuxConnection<ControllerRole> {
        let accepted = try await withThrowingTaskGroup(of: NIOAsyncChannel<Frame, Frame>?.self) { group in
            group.addTask { await self.nextAccepted() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let connection = accepted else { throw LabError("no agent connected to the fake controller within \(Int(seconds)) s") }
        connections.withLockedValue { $0.append(connection) }
        let mux = MuxConnection<ControllerRole>(writer: connection.outbound, side: .controller)
        var frames = connection.inbound.makeAsyncIterator()
        guard let first = try await frames.next(), case .control(let hello) = try mux.route(first) else {
            throw LabError("no hello from the agent")
        }
        received.withLockedValue { $0.append(hello.name) }
        try await mux.sendControl(.welcome(Welcome(name: "fake", software: "fake controller")))
        let reader = frames
        Task { [received] in
            var frames = reader
            do {
                while let frame = try await frames.next() {
                    if case .control(let message) = try mux.route(frame) { received.withLockedValue { $0.append(message.name) } }
                }
            } catch {}
            mux.fail(WireError.connectionClosed)
        }
        return mux
    }

    private func nextAccepted() async -> NIOAsyncChannel<Frame, Frame>? { await acceptedIterator.next() }

    /// Records what the next agent sends until it closes, without answering anything.
    func listenSilently() {
        let received = self.received
        var iterator = acceptedIterator
        Task {
            while let connection = await iterator.next() {
                connection.outbound.finish()
                Task {
                    do {
                        for try await frame in connection.inbound where frame.kind == .message {
                            received.withLockedValue { $0.append((try? MessageCoding.decode(frame.payload, as: AgentControl.self).name) ?? "?") }
                        }
                    } catch {}
                }
            }
        }
    }

    func stop() {
        server.close(promise: nil)
        for connection in connections.withLockedValue({ $0 }) {
            connection.outbound.finish()
            connection.channel.close(promise: nil)
        }
        acceptedContinuation.finish()
    }
}
