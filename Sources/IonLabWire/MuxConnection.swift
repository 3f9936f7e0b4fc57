import NIOConcurrencyHelpers
import NIOCore

/// Where a routed inbound frame went.
public enum Routed<Role: WireRole>: Sendable {
    /// A message on stream 0, for the connection's owner.
    case control(Role.Received)
    /// The peer opened a stream with this request.
    case opened(WireStream<Role.StreamMessage>, Role.Accepts)
    /// Delivered to an open stream, or dropped because that stream is already closed.
    case delivered
}

/// Multiplexes request streams over one frame channel, with per-stream flow control.
///
/// Each side opens streams with ids of its own parity (the controller even, its peers odd), so ids never
/// collide. Every frame on a stream spends credit that the receiver grants back as it consumes them, so a
/// stream never queues more than ``FlowControl/initialWindow`` bytes, however fast the sender is; the ids a peer passed
/// over are remembered in bounded memory (``PeerStreamIDs``).
public final class MuxConnection<Role: WireRole>: StreamOwner, @unchecked Sendable {
    public typealias Stream = WireStream<Role.StreamMessage>

    /// Which ids this side uses for the streams it opens.
    public enum Side: Sendable {
        case controller
        case client

        var firstID: UInt32 { self == .controller ? 2 : 1 }
    }

    let writer: NIOAsyncChannelOutboundWriter<Frame>
    public let allocator = ByteBufferAllocator()
    private let lock = NIOLock()
    private var streams: [UInt32: Stream] = [:]
    private var nextLocalID: UInt32
    private var peerIDs: PeerStreamIDs
    private var failure: Error?

    public init(writer: NIOAsyncChannelOutboundWriter<Frame>, side: Side) {
        self.writer = writer
        self.nextLocalID = side.firstID
        self.peerIDs = PeerStreamIDs(peerParity: side.firstID &+ 1)
    }

    /// Opens a new stream with a request.
    public func open(_ request: Role.Opens) async throws -> Stream {
        let stream: Stream = try lock.withLock {
            if let failure { throw failure }
            guard nextLocalID < UInt32.max - 1 else { throw WireError.streamIDsExhausted }
            let stream = Stream(id: nextLocalID, connection: self)
            streams[nextLocalID] = stream
            nextLocalID += 2
            return stream
        }
        do {
            try await stream.sendMessage(payload: MessageCoding.encode(request, allocator: allocator))
        } catch {
            stream.close()
            throw error
        }
        return stream
    }

    /// Sends a message on stream 0.
    public func sendControl(_ message: Role.Sent) async throws {
        try await write(Frame(kind: .message, stream: 0, payload: MessageCoding.encode(message, allocator: allocator)))
    }

    func write(_ frame: Frame) async throws {
        if let failure = lock.withLock({ failure }) { throw failure }
        try await writer.write(frame)
    }

    /// Tells the peer a stream was abandoned. Fire and forget: the stream's own frames were written before.
    func sendReset(stream: UInt32) {
        Task { try? await self.write(Frame(kind: .reset, stream: stream, payload: ByteBuffer())) }
    }

    /// Routes one inbound frame. Throws protocol errors, after which the connection must close.
    public func route(_ frame: Frame) throws -> Routed<Role> {
        if frame.stream == 0 {
            guard frame.kind == .message else { throw WireError.unexpected("\(frame.kind) frame on stream 0") }
            return .control(try MessageCoding.decode(frame.payload, as: Role.Received.self))
        }
        let existing: Stream? = lock.withLock { streams[frame.stream] }
        if let existing {
            try existing.receive(frame)
            return .delivered
        }
        // Resets and grants for a stream that already ended are normal; they never open one.
        if frame.kind == .reset || frame.kind == .window { return .delivered }
        guard try lock.withLock({ try peerIDs.claim(frame.stream) }) else { return .delivered }  // late frames of a closed stream
        guard frame.kind == .message else { throw WireError.unexpected("\(frame.kind) frame opening stream \(frame.stream)") }
        let request = try MessageCoding.decode(frame.payload, as: Role.Accepts.self)
        let stream = Stream(id: frame.stream, connection: self)
        try stream.receivedOpening(payloadBytes: frame.payload.readableBytes)
        lock.withLock { streams[frame.stream] = stream }
        return .opened(stream, request)
    }

    /// Fails every open stream; later sends throw `error`.
    public func fail(_ error: Error) {
        let open: [Stream] = lock.withLock {
            if failure == nil { failure = error }
            defer { streams.removeAll() }
            return Array(streams.values)
        }
        for stream in open { stream.fail(error) }
    }

    func remove(streamID: UInt32) {
        lock.withLock { _ = streams.removeValue(forKey: streamID) }
    }

    /// How many passed-over peer stream ids are remembered, for tests.
    public var rememberedPeerIDs: Int { lock.withLock { peerIDs.rememberedCount } }

    /// The number of open streams, for tests and metrics.
    public var openStreamCount: Int { lock.withLock { streams.count } }
}

/// What a stream needs of its connection, whatever the connection's role.
protocol StreamOwner: AnyObject, Sendable {
    var allocator: ByteBufferAllocator { get }
    func write(_ frame: Frame) async throws
    func sendReset(stream: UInt32)
    func remove(streamID: UInt32)
}
