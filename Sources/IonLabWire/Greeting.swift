/// The two openings of an agent's connection, shared by the agent and anything that speaks for one.
extension MuxConnection {
    /// Sends `hello` and reads the controller's answer from `frames`: returns on `welcome`, throws a refusal.
    public func greet<Frames: AsyncIteratorProtocol>(_ hello: Hello, frames: inout Frames) async throws where Frames.Element == Frame {
        try await sendControl(.hello(hello))
        guard let first = try await frames.next() else { throw WireError.connectionClosed }
        switch try route(first) {
        case .control(.welcome): return
        case .control(.refused(let refusal)): throw refusal
        default: throw WireError.unexpected("reply to hello")
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
