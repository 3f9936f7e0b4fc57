import NIOConcurrencyHelpers
import NIOCore

/// What a stream delivers: a message, or bytes of one of its data channels.
public enum StreamItem: Sendable {
    case message(Message)
    case data(DataChannel, ByteBuffer)
}

/// One request's stream on a ``MuxConnection``: ordered messages and flow-controlled data both ways.
public final class WireStream: @unchecked Sendable {
    public let id: UInt32
    let connection: MuxConnection
    private let lock = NIOLock()
    private var inbox = CircularBuffer<StreamItem>()
    private var receiver: CheckedContinuation<StreamItem, Error>?
    private var failure: Error?
    /// Bytes the peer may still send before we grant more.
    private var receiveCredit = MuxConnection.initialWindow
    private var consumedSinceGrant = 0
    /// Bytes we may still send before the peer grants more.
    private var sendCredit = MuxConnection.initialWindow
    private var creditWaiters: [CheckedContinuation<Void, Error>] = []

    init(id: UInt32, connection: MuxConnection) {
        self.id = id
        self.connection = connection
    }

    // MARK: Sending

    public func send(_ message: Message) async throws {
        try await connection.send(message, stream: id)
    }

    /// Sends bytes on a data channel, in chunks, waiting for credit as the receiver consumes them.
    public func send(data: ByteBuffer, on channel: DataChannel) async throws {
        var remaining = data
        while remaining.readableBytes > 0 {
            let granted = try await acquireCredit(upTo: min(remaining.readableBytes, Frame.maxDataChunk))
            var payload = connection.allocator.buffer(capacity: granted + 1)
            payload.writeInteger(channel.rawValue)
            var chunk = remaining.readSlice(length: granted)!
            payload.writeBuffer(&chunk)
            try await connection.write(Frame(kind: .data, stream: id, payload: payload))
        }
    }

    private func acquireCredit(upTo wanted: Int) async throws -> Int {
        while true {
            let granted: Int? = try lock.withLock {
                if let failure { throw failure }
                guard sendCredit > 0 else { return nil }
                let granted = min(wanted, sendCredit)
                sendCredit -= granted
                return granted
            }
            if let granted { return granted }
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let resumeNow: Result<Void, Error>? = lock.withLock {
                    if let failure { return .failure(failure) }
                    if sendCredit > 0 { return .success(()) }
                    creditWaiters.append(continuation)
                    return nil
                }
                if let resumeNow { continuation.resume(with: resumeNow) }
            }
        }
    }

    // MARK: Receiving

    /// The next item from the peer. Throws when the connection fails or the task is cancelled.
    public func next() async throws -> StreamItem {
        let item: StreamItem = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<StreamItem, Error>? = lock.withLock {
                    if let item = inbox.popFirst() { return .success(item) }
                    if let failure { return .failure(failure) }
                    receiver = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            self.fail(CancellationError(), local: true)
        }
        if case .data(_, let bytes) = item { try await consumed(bytes.readableBytes) }
        return item
    }

    /// The next item, which must be a message.
    public func nextMessage() async throws -> Message {
        switch try await next() {
        case .message(let message): return message
        case .data: throw WireError.unexpected("data where a message was expected on stream \(id)")
        }
    }

    /// Grants credit back once half the window has been consumed.
    private func consumed(_ count: Int) async throws {
        let grant: Int = lock.withLock {
            consumedSinceGrant += count
            guard consumedSinceGrant >= MuxConnection.initialWindow / 2 else { return 0 }
            defer { consumedSinceGrant = 0 }
            receiveCredit += consumedSinceGrant
            return consumedSinceGrant
        }
        guard grant > 0 else { return }
        var payload = connection.allocator.buffer(capacity: 4)
        payload.writeInteger(UInt32(grant))
        try await connection.write(Frame(kind: .window, stream: id, payload: payload))
    }

    /// Called by the connection's reader for each frame of this stream.
    func receive(_ frame: Frame) throws {
        var payload = frame.payload
        let item: StreamItem
        switch frame.kind {
        case .message:
            item = .message(try MessageCoding.decode(payload))
        case .data:
            guard let raw = payload.readInteger(as: UInt8.self), let channel = DataChannel(rawValue: raw) else {
                throw WireError.malformedMessage("data frame without a valid channel on stream \(id)")
            }
            let count = payload.readableBytes
            try lock.withLock {
                guard count <= receiveCredit else {
                    throw WireError.flowControlViolation(stream: id, bytes: count, credit: receiveCredit)
                }
                receiveCredit -= count
            }
            item = .data(channel, payload)
        case .window:
            guard let grant = payload.readInteger(as: UInt32.self) else { throw WireError.truncatedFrame("window") }
            let waiters: [CheckedContinuation<Void, Error>] = lock.withLock {
                sendCredit += Int(grant)
                defer { creditWaiters.removeAll() }
                return creditWaiters
            }
            for waiter in waiters { waiter.resume() }
            return
        }
        let waiting: CheckedContinuation<StreamItem, Error>? = lock.withLock {
            if failure != nil { return nil }
            if let receiver {
                self.receiver = nil
                return receiver
            }
            inbox.append(item)
            return nil
        }
        waiting?.resume(returning: item)
    }

    // MARK: Ending

    /// Stops receiving on this stream. Late frames from the peer are dropped.
    /// Fails this stream locally: pending and later receives and sends throw `error`.
    public func abort(_ error: Error) {
        fail(error, local: true)
    }

    public func close() {
        connection.remove(self)
        fail(WireError.unexpected("use of closed stream \(id)"), local: false)
    }

    func fail(_ error: Error, local: Bool = false) {
        let (receiver, waiters): (CheckedContinuation<StreamItem, Error>?, [CheckedContinuation<Void, Error>]) = lock.withLock {
            if failure == nil { failure = error }
            defer {
                self.receiver = nil
                creditWaiters.removeAll()
            }
            return (self.receiver, creditWaiters)
        }
        receiver?.resume(throwing: error)
        for waiter in waiters { waiter.resume(throwing: error) }
        if local { connection.remove(self) }
    }
}
