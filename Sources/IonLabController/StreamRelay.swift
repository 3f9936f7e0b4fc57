import IonLabAgentProtocol
import IonLabWire

/// Forwards a stream's items to another stream, with backpressure: the next item is taken from `source`
/// (which grants its sender credit) only after the previous one was accepted by `target`. The two streams
/// may speak different vocabularies (the CLI's admin stream, the agent's stream); what passes between them
/// is what both carry, the agent's stream messages.
enum StreamRelay {
    /// Forwards until a message for which `isLast` is true has been forwarded; returns that message.
    @discardableResult
    static func forward<Source: AgentStreamCarrier, Target: AgentStreamCarrier>(
        from source: WireStream<Source>, to target: WireStream<Target>, until isLast: (AgentStreamMessage) -> Bool
    ) async throws -> AgentStreamMessage {
        while true {
            switch try await source.nextCarriedItem() {
            case .data(let channel, let bytes):
                try await target.send(data: bytes, on: channel)
            case .message(let message):
                try await target.send(carrying: message)
                if isLast(message) { return message }
            }
        }
    }

    /// Relays a tree transfer between two streams: the tree from `sender` to `receiver`, and the receiver's
    /// reply back. A failure on either side is passed on and then ends both directions.
    static func relayTransfer<Sender: AgentStreamCarrier, Receiver: AgentStreamCarrier>(
        from sender: WireStream<Sender>, to receiver: WireStream<Receiver>
    ) async throws {
        try await withThrowingTaskGroup(of: AgentStreamMessage.self) { group in
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

    static func isTransferEnd(_ message: AgentStreamMessage) -> Bool {
        switch message {
        case .treeEnd, .failure: true
        case .execStarted, .execFinished, .stdinEnd, .cancel, .resize, .putReady, .entry, .fileEnd, .transferDone, .eof, .listening, .accepted: false
        }
    }

    static func isTransferReply(_ message: AgentStreamMessage) -> Bool {
        switch message {
        case .transferDone, .failure: true
        case .execStarted, .execFinished, .stdinEnd, .cancel, .resize, .putReady, .entry, .fileEnd, .treeEnd, .eof, .listening, .accepted: false
        }
    }
}
