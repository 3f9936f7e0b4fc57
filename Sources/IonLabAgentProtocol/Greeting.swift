import IonLabWire

/// How the controller answered an agent's hello.
public enum Greeting: Sendable, Equatable {
    case welcomed
    /// The certificate expired while the agent was away: renew it on this connection, then reconnect.
    case renewalRequired(String)
}

/// The two openings of an agent's connection, shared by the agent and anything that speaks for one.
extension MuxConnection where Role == AgentRole {
    /// Sends `hello` and reads the controller's answer from `frames`; throws a refusal.
    @discardableResult
    public func greet<Frames: AsyncIteratorProtocol>(_ hello: Hello, frames: inout Frames) async throws -> Greeting where Frames.Element == Frame {
        try await sendControl(.hello(hello))
        guard let first = try await frames.next() else { throw WireError.connectionClosed }
        guard case .control(let reply) = try route(first) else { throw WireError.unexpected("a stream before the reply to hello") }
        switch reply {
        case .welcome: return .welcomed
        case .renewalRequired(let reason): return .renewalRequired(reason)
        case .refused(let refusal): throw refusal
        case .enrolled, .jobReportsAck, .renewed: throw WireError.unexpected("\(reply.name) in reply to hello")
        }
    }

    /// Sends `renew` with a CSR and returns the certificate (PEM) the controller answers with.
    public func renew<Frames: AsyncIteratorProtocol>(csrPEM: String, frames: inout Frames) async throws -> String where Frames.Element == Frame {
        try await sendControl(.renew(csrPEM: csrPEM))
        guard let frame = try await frames.next() else { throw WireError.connectionClosed }
        guard case .control(let reply) = try route(frame) else { throw WireError.unexpected("a stream before the reply to renew") }
        switch reply {
        case .renewed(let certificatePEM): return certificatePEM
        case .refused(let refusal): throw refusal
        case .welcome, .enrolled, .jobReportsAck, .renewalRequired: throw WireError.unexpected("\(reply.name) in reply to renew")
        }
    }

    /// Sends `hello` and an enrollment request, and returns the controller's certificate; throws a refusal.
    public func enroll<Frames: AsyncSequence>(_ hello: Hello, _ request: EnrollRequest, frames: Frames) async throws -> EnrollResponse
    where Frames.Element == Frame {
        try await sendControl(.hello(hello))
        try await sendControl(.enroll(request))
        for try await frame in frames {
            guard case .control(let reply) = try route(frame) else { throw WireError.unexpected("a stream during enrollment") }
            switch reply {
            case .enrolled(let response): return response
            case .refused(let refusal): throw refusal
            case .welcome, .jobReportsAck, .renewed, .renewalRequired: throw WireError.unexpected("\(reply.name) during enrollment")
            }
        }
        throw WireError.connectionClosed
    }
}
