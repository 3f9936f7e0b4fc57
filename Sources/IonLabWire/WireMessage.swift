/// A vocabulary of messages that frames carry as JSON. The wire knows nothing of what they mean; each
/// protocol above it (the agent channel, the admin API) defines its own.
public protocol WireMessage: Codable, Sendable {
    /// Checks the fields of a message a peer sent, before anyone stores, prints or computes with them;
    /// throws ``WireError/invalidField(_:_:)``. Called on every decode.
    func check() throws
}

extension WireMessage {
    /// The case name, for errors and logs.
    public var name: String {
        let text = String(describing: self)
        return String(text.prefix { $0 != "(" })
    }
}

/// One end of a protocol: what it sends on stream 0 and what its peer sends there, the requests each end
/// may open a stream with, and what request streams carry after that. A ``MuxConnection`` is typed by its
/// role, so a message that does not belong on a connection, or travels the wrong way on it, does not
/// decode there at all.
public protocol WireRole: Sendable {
    /// Control messages this end sends on stream 0.
    associatedtype Sent: WireMessage
    /// Control messages the peer sends on stream 0.
    associatedtype Received: WireMessage
    /// The first message of a stream this end opens.
    associatedtype Opens: WireMessage
    /// The first message of a stream the peer opens.
    associatedtype Accepts: WireMessage
    /// The messages of request streams after the first, in both directions.
    associatedtype StreamMessage: WireMessage
}

/// The vocabulary of no messages: for an end that opens no streams, or accepts none. Nothing decodes as it.
public enum NoMessage: WireMessage {
    public init(from decoder: Decoder) throws {
        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "nothing is expected here"))
    }

    public func encode(to encoder: Encoder) throws {}
    public func check() throws {}
}
