import IonLabWire

/// Forwards a stream's items to another stream, with backpressure: the next item is taken from `source`
/// (which grants its sender credit) only after the previous one was accepted by `target`.
enum StreamRelay {
    /// Forwards until a message for which `isLast` is true has been forwarded; returns that message.
    @discardableResult
    static func forward(from source: WireStream, to target: WireStream, until isLast: (Message) -> Bool) async throws -> Message {
        while true {
            switch try await source.next() {
            case .data(let channel, let bytes):
                try await target.send(data: bytes, on: channel)
            case .message(let message):
                try await target.send(message)
                if isLast(message) { return message }
            }
        }
    }

    /// Relays a tree transfer between two streams: the tree from `sender` to `receiver`, and the receiver's
    /// reply back. A failure on either side is passed on and then ends both directions.
    static func relayTransfer(from sender: WireStream, to receiver: WireStream) async throws {
        try await withThrowingTaskGroup(of: Message.self) { group in
            group.addTask { try await forward(from: sender, to: receiver, until: isTransferEnd) }
            group.addTask { try await forward(from: receiver, to: sender, until: isTransferReply) }
            var failure: Failure?
            do {
                while let last = try await group.next() {
                    if case .failure(let reason) = last, failure == nil {
                        failure = reason
                        sender.abort(reason)
                        receiver.abort(reason)
                    }
                }
            } catch {
                if failure == nil { throw error }
            }
        }
    }

    static func isTransferEnd(_ message: Message) -> Bool {
        switch message {
        case .treeEnd, .failure: return true
        default: return false
        }
    }

    static func isTransferReply(_ message: Message) -> Bool {
        switch message {
        case .transferDone, .failure: return true
        default: return false
        }
    }
}
