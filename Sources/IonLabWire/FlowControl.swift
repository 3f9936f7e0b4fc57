/// Per-stream flow control as pure values, tested apart from any I/O.
///
/// Every frame on a request stream, message or data, costs its payload plus a fixed overhead, so a stream's
/// queue holds at most one window of bytes and at most `window / frameOverhead` items, whatever the peer
/// sends. Window sizes follow HTTP/2 (RFC 9113 §6.9.1): never past 2³¹ − 1, and a zero grant is an error.
public enum FlowControl {
    /// Bytes a sender may have in flight on one stream before the receiver grants more.
    public static let initialWindow = 4 << 20
    /// The largest a window may grow.
    public static let maximumWindow = Int(Int32.max)
    /// What every frame costs besides its payload: it bounds how many items a stream can queue.
    public static let frameOverhead = 256
    /// Credit that data may not use, so a message (`fileEnd`, `cancel`, `failure`) can always follow data.
    public static let messageReserve = 16 << 10

    /// The credit a frame with this many payload bytes costs.
    public static func cost(payloadBytes: Int) -> Int { payloadBytes + frameOverhead }
}

/// The sending side of one stream: the credit the peer granted and not yet spent.
public struct OutboundWindow: Sendable, Equatable {
    public private(set) var credit: Int

    public init(credit: Int = FlowControl.initialWindow) { self.credit = credit }

    /// Reserves credit for a data frame of up to `wanted` content bytes (plus its channel byte), keeping the
    /// message reserve free. Returns the content bytes granted, or nil when the sender must wait.
    public mutating func reserveData(upTo wanted: Int) -> Int? {
        let usable = credit - FlowControl.messageReserve - FlowControl.cost(payloadBytes: 1)
        guard wanted > 0, usable > 0 else { return nil }
        let granted = min(wanted, usable)
        credit -= FlowControl.cost(payloadBytes: granted + 1)
        return granted
    }

    /// Reserves credit for a message frame of `payloadBytes`; false when the sender must wait.
    public mutating func reserveMessage(payloadBytes: Int) -> Bool {
        let cost = FlowControl.cost(payloadBytes: payloadBytes)
        guard cost <= credit else { return false }
        credit -= cost
        return true
    }

    /// Adds the peer's grant. A zero grant, or one that takes the window past its maximum, is a protocol error.
    public mutating func grant(_ increment: UInt32, stream: UInt32) throws {
        guard increment > 0 else { throw WireError.unexpected("a zero window grant on stream \(stream)") }
        let (sum, overflow) = credit.addingReportingOverflow(Int(increment))
        guard !overflow, sum <= FlowControl.maximumWindow else {
            throw WireError.unexpected("a window grant of \(increment) on stream \(stream), which takes its window past 2^31 - 1")
        }
        credit = sum
    }
}

/// The receiving side of one stream: what the peer may still send, and when to grant more.
public struct InboundWindow: Sendable, Equatable {
    public private(set) var credit: Int
    private var consumedSinceGrant = 0
    private let size: Int

    public init(size: Int = FlowControl.initialWindow) {
        self.size = size
        self.credit = size
    }

    /// Accounts for a frame that arrived; more than the peer's credit is a protocol error.
    public mutating func receive(payloadBytes: Int, stream: UInt32) throws {
        let cost = FlowControl.cost(payloadBytes: payloadBytes)
        guard cost <= credit else { throw WireError.flowControlViolation(stream: stream, bytes: cost, credit: credit) }
        credit -= cost
    }

    /// The application took a frame off the queue. Returns the grant to send once half the window has been
    /// consumed (grants are batched so a stream of small frames does not double the frame count).
    public mutating func consume(payloadBytes: Int) -> UInt32? {
        consumedSinceGrant += FlowControl.cost(payloadBytes: payloadBytes)
        guard consumedSinceGrant >= size / 2 else { return nil }
        defer { consumedSinceGrant = 0 }
        credit += consumedSinceGrant
        return UInt32(consumedSinceGrant)
    }
}

/// Which stream ids the peer has opened, in bounded memory and time.
///
/// Each side opens streams with ids of its own parity, in increasing order. Tasks that open streams at once
/// may send their first frames out of order, so ids passed over by a higher one stay claimable, but only the
/// most recent ``maximumPassedOver`` of them: older ones are forgotten (their frames are then taken for late
/// frames of a closed stream), and a single jump past more than that many ids is a protocol error. The ids are
/// kept as runs, so a jump costs the same whatever its length.
public struct PeerStreamIDs: Sendable {
    public static let maximumPassedOver: UInt32 = 4096

    /// The parity of the peer's ids (0 or 1).
    private let parity: UInt32
    private var highest: UInt32?
    /// Passed-over ids as runs `first...last` (ids of the peer's parity, two apart), in increasing order.
    private var runs: [(first: UInt32, last: UInt32)] = []
    private var remembered = 0

    public init(peerParity: UInt32) { self.parity = peerParity & 1 }

    /// Whether a frame for `id`, which has no open stream, opens a new one. False for ids of this side and
    /// for ids the peer opened before (late frames of closed streams).
    public mutating func claim(_ id: UInt32) throws -> Bool {
        guard id != 0, id & 1 == parity else { return false }
        if let highest, id <= highest { return remove(id) }
        let next = highest.map { $0 &+ 2 } ?? (parity == 0 ? 2 : 1)
        let skipped = (id - next) / 2
        guard skipped <= Self.maximumPassedOver else {
            throw WireError.unexpected("stream \(id) skips more than \(Self.maximumPassedOver) stream ids")
        }
        if skipped > 0 {
            runs.append((next, id - 2))
            remembered += Int(skipped)
        }
        highest = id
        forgetOldest()
        return true
    }

    /// Drops the oldest passed-over ids beyond the limit.
    private mutating func forgetOldest() {
        while remembered > Int(Self.maximumPassedOver), let oldest = runs.first {
            let excess = remembered - Int(Self.maximumPassedOver)
            let count = Int((oldest.last - oldest.first) / 2) + 1
            if count <= excess {
                runs.removeFirst()
                remembered -= count
            } else {
                runs[0].first = oldest.first + 2 * UInt32(excess)
                remembered -= excess
            }
        }
    }

    /// Claims a passed-over id: found by binary search, its run split around it.
    private mutating func remove(_ id: UInt32) -> Bool {
        var low = 0, high = runs.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let run = runs[middle]
            if id < run.first {
                high = middle - 1
            } else if id > run.last {
                low = middle + 1
            } else {
                var replacement: [(first: UInt32, last: UInt32)] = []
                if id > run.first { replacement.append((run.first, id - 2)) }
                if id < run.last { replacement.append((id + 2, run.last)) }
                runs.replaceSubrange(middle...middle, with: replacement)
                remembered -= 1
                return true
            }
        }
        return false
    }

    /// How many passed-over ids are remembered, for tests.
    public var rememberedCount: Int { remembered }
}
