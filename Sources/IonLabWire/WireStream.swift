import NIOConcurrencyHelpers
import NIOCore

/// What a stream delivers: a message, or bytes of one of its data channels.
public enum StreamItem<Message: WireMessage>: Sendable {
    case message(Message)
    case data(DataChannel, ByteBuffer)
}

/// One request's stream on a ``MuxConnection``: ordered messages and flow-controlled data both ways.
///
/// Every frame spends credit (``FlowControl``), so what a peer can queue here is bounded. A stream ends for
/// both sides when either goes away: ``close()`` and ``abort(_:)`` send a reset that fails the peer's end at
/// once, and a failed connection fails every stream.
public final class WireStream<Message: WireMessage>: @unchecked Sendable {
    public typealias Item = StreamItem<Message>
    public let id: UInt32
    let connection: StreamOwner
    private let lock = NIOLock()
    private var inbox = CircularBuffer<(item: Item, payloadBytes: Int)>()
    private var receiver: CheckedContinuation<(item: Item, payloadBytes: Int), Error>?
    /// Why receiving has stopped, if it has.
    private var failure: Error?
    /// Why sending is pointless: the peer reset the stream or the connection failed.
    private var peerGone: Error?
    private var resetSent = false
    private var inbound = InboundWindow()
    private var outbound = OutboundWindow()
    /// Senders waiting for credit, by ticket: a job's stdout and stderr forwarders share one stream.
    private var creditWaiters: [UInt64: CheckedContinuation<Void, Error>] = [:]
    private var nextWaiterTicket: UInt64 = 0

    init(id: UInt32, connection: StreamOwner) {
        self.id = id
        self.connection = connection
    }

    // MARK: Sending

    public func send(_ message: Message) async throws {
        try await sendMessage(payload: MessageCoding.encode(message, allocator: connection.allocator))
    }

    /// Sends an encoded message: this stream's, or the request that opens it.
    func sendMessage(payload: ByteBuffer) async throws {
        try await acquireCredit { $0.reserveMessage(payloadBytes: payload.readableBytes) ? () : nil }
        try await connection.write(Frame(kind: .message, stream: id, payload: payload))
    }

    /// Sends bytes on a data channel, in chunks, waiting for credit as the receiver consumes them.
    public func send(data: ByteBuffer, on channel: DataChannel) async throws {
        var remaining = data
        while remaining.readableBytes > 0 {
            let wanted = min(remaining.readableBytes, Frame.maxDataChunk)
            let granted = try await acquireCredit { $0.reserveData(upTo: wanted) }
            var payload = connection.allocator.buffer(capacity: granted + 1)
            payload.writeInteger(channel.rawValue)
            var chunk = remaining.readSlice(length: granted)!
            payload.writeBuffer(&chunk)
            try await connection.write(Frame(kind: .data, stream: id, payload: payload))
        }
    }

    /// Waits until `reserve` gets what it needs from the outbound window. Any number of senders may wait; a
    /// grant wakes them all to try again, a failure fails them all, and cancellation ends one wait.
    private func acquireCredit<T>(_ reserve: @escaping (inout OutboundWindow) -> T?) async throws -> T {
        while true {
            let reserved: T? = try lock.withLock {
                if let peerGone { throw peerGone }
                return reserve(&outbound)
            }
            if let reserved { return reserved }
            let ticket: UInt64 = lock.withLock {
                defer { nextWaiterTicket += 1 }
                return nextWaiterTicket
            }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                    let now: Result<Void, Error>? = lock.withLock {
                        if let peerGone { return .failure(peerGone) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        var probe = outbound
                        if reserve(&probe) != nil { return .success(()) }
                        creditWaiters[ticket] = continuation
                        return nil
                    }
                    if let now { continuation.resume(with: now) }
                }
            } onCancel: {
                let waiter = self.lock.withLock { self.creditWaiters.removeValue(forKey: ticket) }
                waiter?.resume(throwing: CancellationError())
            }
        }
    }

    // MARK: Receiving

    /// The next item from the peer. Throws when the stream or the connection fails, or the task is cancelled.
    public func next() async throws -> Item {
        let next: (item: Item, payloadBytes: Int) = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<(item: Item, payloadBytes: Int), Error>? = lock.withLock {
                    if let queued = inbox.popFirst() { return .success(queued) }
                    if let failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    receiver = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            self.failReceiving(CancellationError())
        }
        try await consumed(next.payloadBytes)
        return next.item
    }

    /// The next item, which must be a message.
    public func nextMessage() async throws -> Message {
        switch try await next() {
        case .message(let message): return message
        case .data: throw WireError.unexpected("data where a message was expected on stream \(id)")
        }
    }

    /// Gives credit back for a consumed frame; grants go out once half the window has been consumed.
    private func consumed(_ payloadBytes: Int) async throws {
        guard let grant = lock.withLock({ inbound.consume(payloadBytes: payloadBytes) }) else { return }
        var payload = connection.allocator.buffer(capacity: 4)
        payload.writeInteger(grant)
        try? await connection.write(Frame(kind: .window, stream: id, payload: payload))
    }

    /// Called by the connection's reader for each frame of this stream; throws protocol errors.
    func receive(_ frame: Frame) throws {
        var payload = frame.payload
        let payloadBytes = payload.readableBytes
        let item: Item
        switch frame.kind {
        case .message:
            try lock.withLock { try inbound.receive(payloadBytes: payloadBytes, stream: id) }
            item = .message(try MessageCoding.decode(payload, as: Message.self))
        case .data:
            guard let raw = payload.readInteger(as: UInt8.self), let channel = DataChannel(rawValue: raw) else {
                throw WireError.malformedMessage("data frame without a valid channel on stream \(id)")
            }
            try lock.withLock { try inbound.receive(payloadBytes: payloadBytes, stream: id) }
            item = .data(channel, payload)
        case .window:
            guard payload.readableBytes == 4, let grant = payload.readInteger(as: UInt32.self) else {
                throw WireError.truncatedFrame("window frame of \(payloadBytes) bytes")
            }
            let waiters: [CheckedContinuation<Void, Error>] = try lock.withLock {
                try outbound.grant(grant, stream: id)
                defer { creditWaiters.removeAll() }
                return Array(creditWaiters.values)
            }
            for waiter in waiters { waiter.resume() }
            return
        case .reset:
            guard payloadBytes == 0 else { throw WireError.truncatedFrame("reset frame with a payload") }
            peerReset()
            return
        }
        let waiting: CheckedContinuation<(item: Item, payloadBytes: Int), Error>? = lock.withLock {
            if failure != nil { return nil }
            if let receiver {
                self.receiver = nil
                return receiver
            }
            inbox.append((item, payloadBytes))
            return nil
        }
        waiting?.resume(returning: (item, payloadBytes))
    }

    /// Accounts for the opening message, which the connection hands to its owner instead of queueing it.
    func receivedOpening(payloadBytes: Int) throws {
        try lock.withLock {
            try inbound.receive(payloadBytes: payloadBytes, stream: id)
            _ = inbound.consume(payloadBytes: payloadBytes)
        }
    }

    // MARK: Ending

    /// Ends the stream: the peer is told (its end fails at once) unless it already went away, and later
    /// frames from it are dropped.
    public func close() {
        end(WireError.unexpected("use of closed stream \(id)"))
    }

    /// Ends the stream like ``close()``, failing pending and later receives and sends here with `error`.
    public func abort(_ error: Error) {
        end(error)
    }

    private func end(_ error: Error) {
        let sendReset: Bool = lock.withLock {
            defer { resetSent = true }
            return peerGone == nil && !resetSent
        }
        connection.remove(streamID: id)
        failReceiving(error)
        failSending(error)
        if sendReset { connection.sendReset(stream: id) }
    }

    /// The peer reset the stream.
    func peerReset() {
        connection.remove(streamID: id)
        fail(WireError.streamReset(id))
    }

    /// The connection failed: nothing more can be sent or received.
    func fail(_ error: Error) {
        failReceiving(error)
        failSending(error)
    }

    /// Stops receiving: a waiting receiver (and later ones, once the queue is drained) get `error`.
    private func failReceiving(_ error: Error) {
        let receiver: CheckedContinuation<(item: Item, payloadBytes: Int), Error>? = lock.withLock {
            if failure == nil { failure = error }
            defer { self.receiver = nil }
            return self.receiver
        }
        receiver?.resume(throwing: error)
    }

    /// Stops sending: waiting and later senders get `error`.
    private func failSending(_ error: Error) {
        let waiters: [CheckedContinuation<Void, Error>] = lock.withLock {
            if peerGone == nil { peerGone = error }
            defer { creditWaiters.removeAll() }
            return Array(creditWaiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Items queued and not yet taken, for tests.
    public var queuedCount: Int { lock.withLock { inbox.count } }
}
