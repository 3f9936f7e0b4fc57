import IonLabWire

/// The wire tests' own vocabulary: the wire carries messages of any protocol, and is tested apart from the
/// protocols above it.
enum Note: WireMessage, Equatable {
    case text(String)
    case number(Int)

    /// One value is refused, to show that decoding runs a vocabulary's checks.
    func check() throws {
        if case .number(let value) = self, value < 0 { throw WireError.invalidField("number", "must not be negative") }
    }
}

/// Both ends speak notes everywhere, and either may open streams.
enum NotePeer: WireRole {
    typealias Sent = Note
    typealias Received = Note
    typealias Opens = Note
    typealias Accepts = Note
    typealias StreamMessage = Note
}

/// An end that accepts no streams.
enum ClosedPeer: WireRole {
    typealias Sent = Note
    typealias Received = Note
    typealias Opens = Note
    typealias Accepts = NoMessage
    typealias StreamMessage = Note
}
