/// How the controller answered an agent's hello.
public enum Greeting: Sendable, Equatable {
    case welcomed
    /// The certificate expired while the agent was away: renew it on this connection, then reconnect.
    case renewalRequired(String)
}

/// The two openings of an agent's connection, shared by the agent and anything that speaks for one.
extension MuxConnection {
    /// Sends `hello` and reads the controller's answer from `frames`; throws a refusal.
    @discardableResult
    public func greet<Frames: AsyncIteratorProtocol>(_ hello: Hello, frames: inout Frames) async throws -> Greeting where Frames.Element == Frame {
        try await sendControl(.hello(hello))
        guard let first = try await frames.next() else { throw WireError.connectionClosed }
        switch try route(first) {
        case .control(.welcome): return .welcomed
        case .control(.renewalRequired(let reason)): return .renewalRequired(reason)
        case .control(.refused(let refusal)): throw refusal
        default: throw WireError.unexpected("reply to hello")
        }
    }

    /// Sends `renew` with a CSR and returns the certificate (PEM) the controller answers with.
    public func renew<Frames: AsyncIteratorProtocol>(csrPEM: String, frames: inout Frames) async throws -> String where Frames.Element == Frame {
        try await sendControl(.renew(csrPEM: csrPEM))
        guard let frame = try await frames.next() else { throw WireError.connectionClosed }
        switch try route(frame) {
        case .control(.renewed(let certificatePEM)): return certificatePEM
        case .control(.refused(let refusal)): throw refusal
        default: throw WireError.unexpected("reply to renew")
        }
    }

    /// Sends `hello` and an enrollment request, and returns the controller's certificate; throws a refusal.
    public func enroll<Frames: AsyncSequence>(_ hello: Hello, _ request: EnrollRequest, frames: Frames) async throws -> EnrollResponse
    where Frames.Element == Frame {
        try await sendControl(.hello(hello))
        try await sendControl(.enroll(request))
        for try await frame in frames {
            switch try route(frame) {
            case .control(.enrolled(let response)): return response
            case .control(.refused(let refusal)): throw refusal
            case .control(let other): throw WireError.unexpected("\(other.name) during enrollment")
            default: throw WireError.unexpected("a stream during enrollment")
            }
        }
        throw WireError.connectionClosed
    }
}
