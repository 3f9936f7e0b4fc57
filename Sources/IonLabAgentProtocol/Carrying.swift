import IonLabWire
import NIOCore

extension WireStream where Message: AgentStreamCarrier {
    /// Sends an agent stream message, wrapped as this stream's vocabulary carries it.
    public func send(carrying message: AgentStreamMessage) async throws {
        try await send(Message(carrying: message))
    }

    /// The next message, which must carry an agent stream message.
    public func nextCarried() async throws -> AgentStreamMessage {
        try await nextMessage().carriedOrThrow()
    }

    /// The next item, with its message as the agent stream message it carries.
    public func nextCarriedItem() async throws -> StreamItem<AgentStreamMessage> {
        switch try await next() {
        case .data(let channel, let bytes): .data(channel, bytes)
        case .message(let message): .message(try message.carriedOrThrow())
        }
    }
}

extension AgentStreamCarrier {
    func carriedOrThrow() throws -> AgentStreamMessage {
        guard let carried else { throw WireError.unexpected("\(name) where an exec or transfer message belongs") }
        return carried
    }
}

/// One exec request's stream, seen by whoever asked: the job's progress in order, and its controls. The
/// controller reads an agent's stream with it, and the CLI the controller's relay of that stream.
public struct ExecStream<Message: AgentStreamCarrier>: Sendable {
    public enum Update: Sendable {
        case started(pid: Int32)
        case output(DataChannel, ByteBuffer)
        case finished(ExecResult)
    }

    public let stream: WireStream<Message>

    public init(_ stream: WireStream<Message>) { self.stream = stream }

    /// The next update; a `failure` is thrown, and so is anything that has no place on an exec stream.
    public func next() async throws -> Update {
        switch try await stream.nextCarriedItem() {
        case .data(let channel, let bytes): return .output(channel, bytes)
        case .message(.execStarted(_, let pid)): return .started(pid: pid)
        case .message(.execFinished(let result)): return .finished(result)
        case .message(.failure(let failure)): throw failure
        case .message(let other): throw WireError.unexpected("\(other.name) on an exec stream")
        }
    }

    public func send(stdin bytes: ByteBuffer) async throws { try await stream.send(data: bytes, on: .content) }
    public func closeStdin() async throws { try await stream.send(carrying: .stdinEnd) }
    public func cancel() async throws { try await stream.send(carrying: .cancel) }
    /// Tells a job on a pseudo-terminal that the local terminal changed size.
    public func resize(rows: UInt16, columns: UInt16) async throws { try await stream.send(carrying: .resize(rows: rows, columns: columns)) }
    public func close() { stream.close() }
}
