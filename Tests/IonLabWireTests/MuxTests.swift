import IonLabWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// Two multiplexed connections joined by a real socket pair.
@Suite(.timeLimit(.minutes(1))) struct MuxTests {
    struct Pair {
        let controller: MuxConnection<NotePeer>
        let client: MuxConnection<NotePeer>
        let opened: AsyncStream<(WireStream<Note>, Note)>
        let channels: [Channel]
    }

    /// Wires a controller-side and a client-side mux over a UNIX socket pair, each with a reader task, runs
    /// `body`, then closes both ends.
    func withPair(_ body: (Pair) async throws -> Void) async throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        func wrap(_ fd: Int32) async throws -> NIOAsyncChannel<Frame, Frame> {
            try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton).takingOwnershipOfDescriptor(inputOutput: fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        }
        let left = try await wrap(fds[0])
        let right = try await wrap(fds[1])
        let (opened, continuation) = AsyncStream<(WireStream<Note>, Note)>.makeStream()
        func reader(_ inbound: NIOAsyncChannelInboundStream<Frame>, _ mux: MuxConnection<NotePeer>) -> Task<Void, Never> {
            Task {
                do {
                    for try await frame in inbound {
                        if case .opened(let stream, let message) = try mux.route(frame) { continuation.yield((stream, message)) }
                    }
                } catch {}
                mux.fail(WireError.connectionClosed)
            }
        }
        try await left.executeThenClose { leftInbound, leftOutbound in
            try await right.executeThenClose { rightInbound, rightOutbound in
                let controller = MuxConnection<NotePeer>(writer: leftOutbound, side: .controller)
                let client = MuxConnection<NotePeer>(writer: rightOutbound, side: .client)
                let readers = [reader(leftInbound, controller), reader(rightInbound, client)]
                defer { for task in readers { task.cancel() } }
                try await body(Pair(controller: controller, client: client, opened: opened, channels: [left.channel, right.channel]))
            }
        }
    }

    @Test func streamsCarryMessagesAndDataInOrder() async throws { try await withPair { pair in
        let stream = try await pair.controller.open(.text("stdinEnd"))
        #expect(stream.id % 2 == 0)
        try await stream.send(data: ByteBuffer(string: "hello"), on: .stdout)
        try await stream.send(.text("cancel"))
        var iterator = pair.opened.makeAsyncIterator()
        let (peer, first) = try #require(await iterator.next())
        #expect(first == .text("stdinEnd"))
        guard case .data(.stdout, let bytes) = try await peer.next() else {
            Issue.record("expected stdout data")
            return
        }
        #expect(String(buffer: bytes) == "hello")
        #expect(try await peer.nextMessage() == .text("cancel"))
    } }

    /// A sender can be at most one window ahead of a receiver that does not read.
    @Test func flowControlBoundsWhatASenderCanPush() async throws { try await withPair { pair in
        let stream = try await pair.client.open(.text("stdinEnd"))
        let chunk = ByteBuffer(repeating: 7, count: 64 << 10)
        let sent = ManagedCounter()
        let sender = Task {
            for _ in 0..<(4 * FlowControl.initialWindow / chunk.readableBytes) {
                try await stream.send(data: chunk, on: .content)
                sent.add(chunk.readableBytes)
            }
        }
        var iterator = pair.opened.makeAsyncIterator()
        let (peer, _) = try #require(await iterator.next())
        // The sender fills one window less the message reserve (however slowly a loaded machine lets it), then
        // stalls: the receiver has read nothing.
        let fill = (FlowControl.initialWindow - FlowControl.messageReserve) / chunk.readableBytes * chunk.readableBytes
        let deadline = ContinuousClock.now + .seconds(20)
        while sent.value < fill, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(sent.value == fill)
        var received = 0
        while received < 4 * FlowControl.initialWindow {
            if case .data(_, let bytes) = try await peer.next() { received += bytes.readableBytes }
        }
        try await sender.value
        #expect(sent.value == 4 * FlowControl.initialWindow)
    } }

    /// Tasks that open streams at once may send their first frames in another order than the ids were given:
    /// every one of those streams still opens (a lower id arriving late was once taken for a closed stream, and
    /// its request hung).
    @Test func streamsOpenedConcurrentlyMayArriveOutOfOrder() async throws { try await withPair { pair in
        let ids: [UInt32] = [9, 7, 5, 3, 1]
        for id in ids {
            let routed = try pair.controller.route(Frame(kind: .message, stream: id, payload: try MessageCoding.encode(Note.text("open"))))
            guard case .opened(let stream, _) = routed else {
                Issue.record("stream \(id) did not open")
                return
            }
            #expect(stream.id == id)
        }
        #expect(pair.controller.openStreamCount == ids.count)
    } }

    @Test func aPeerCannotSkipThousandsOfStreamIDs() async throws { try await withPair { pair in
        let frame = Frame(kind: .message, stream: 2 * (PeerStreamIDs.maximumPassedOver + 2) + 1,
                          payload: try MessageCoding.encode(Note.text("cancel")))
        #expect(throws: WireError.self) { try pair.controller.route(frame) }
    } }

    @Test func aClosedConnectionFailsWaitingStreams() async throws { try await withPair { pair in
        let stream = try await pair.client.open(.text("open"))
        let waiting = Task { try await stream.next() }
        try await pair.channels[0].close()
        await #expect(throws: WireError.connectionClosed) { try await waiting.value }
    } }

    // MARK: A hostile peer (issue 9, items 8 and 13)

    /// Messages spend credit like data: a peer that floods a stream nobody reads is stopped at one window,
    /// with a protocol error, instead of growing the stream's queue without end.
    @Test func aPeerFloodingMessagesIsStoppedAtOneWindow() async throws { try await withPair { pair in
        let stream = try await pair.controller.open(.text("open"))
        let payload = try MessageCoding.encode(Note.text("stdinEnd"))
        var accepted = 0
        #expect(throws: WireError.self) {
            while accepted < 1_000_000 {
                _ = try pair.controller.route(Frame(kind: .message, stream: stream.id, payload: payload))
                accepted += 1
            }
        }
        #expect(accepted == FlowControl.initialWindow / FlowControl.cost(payloadBytes: payload.readableBytes))
        #expect(stream.queuedCount == accepted)
    } }

    /// Empty data frames cost their overhead too, so even they cannot queue without bound.
    @Test func emptyDataFramesCannotQueueWithoutBound() async throws { try await withPair { pair in
        let stream = try await pair.controller.open(.text("open"))
        var accepted = 0
        #expect(throws: WireError.self) {
            while accepted < 1_000_000 {
                _ = try pair.controller.route(Frame(kind: .data, stream: stream.id, payload: ByteBuffer(bytes: [DataChannel.stdout.rawValue])))
                accepted += 1
            }
        }
        #expect(accepted <= FlowControl.initialWindow / FlowControl.frameOverhead)
    } }

    /// Grants that would take a window past 2^31 - 1 are a protocol error, not an arithmetic trap.
    @Test func windowGrantsCannotOverflow() async throws { try await withPair { pair in
        let stream = try await pair.controller.open(.text("open"))
        var grant = ByteBuffer()
        grant.writeInteger(UInt32.max)
        #expect(throws: WireError.self) {
            for _ in 0..<4 { _ = try pair.controller.route(Frame(kind: .window, stream: stream.id, payload: grant)) }
        }
        var zero = ByteBuffer()
        zero.writeInteger(UInt32(0))
        let other = try await pair.controller.open(.text("open"))
        #expect(throws: WireError.self) { try pair.controller.route(Frame(kind: .window, stream: other.id, payload: zero)) }
    } }

    /// Jumping ahead again and again cannot make the connection remember ever more passed-over ids.
    @Test func passedOverStreamIDsStayBounded() async throws { try await withPair { pair in
        let payload = try MessageCoding.encode(Note.text("cancel"))
        var id: UInt32 = 1
        for _ in 0..<50 {
            id += 2 * PeerStreamIDs.maximumPassedOver
            _ = try pair.controller.route(Frame(kind: .message, stream: id, payload: payload))
        }
        #expect(pair.controller.rememberedPeerIDs <= Int(PeerStreamIDs.maximumPassedOver))
    } }

    /// Closing a stream tells the peer: its waiting receive fails at once (the agent sending a tree to a CLI
    /// that left no longer waits for a reply that cannot come).
    @Test func closingAStreamEndsThePeersEnd() async throws { try await withPair { pair in
        let stream = try await pair.controller.open(.text("get /x"))
        var iterator = pair.opened.makeAsyncIterator()
        let (peer, _) = try #require(await iterator.next())
        let waiting = Task { try await peer.next() }
        stream.close()
        await #expect(throws: WireError.streamReset(peer.id)) { try await waiting.value }
        await #expect(throws: WireError.streamReset(peer.id)) { try await peer.send(.text("stdinEnd")) }
        #expect(pair.client.openStreamCount == 0)
    } }

    /// What the peer sent before it reset a stream is still delivered, in order, before the reset.
    @Test func itemsQueuedBeforeAResetAreDelivered() async throws { try await withPair { pair in
        let stream = try await pair.client.open(.text("stdinEnd"))
        try await stream.send(.text("cancel"))
        stream.close()
        var iterator = pair.opened.makeAsyncIterator()
        let (peer, first) = try #require(await iterator.next())
        #expect(first == .text("stdinEnd"))
        #expect(try await peer.nextMessage() == .text("cancel"))
        await #expect(throws: WireError.streamReset(peer.id)) { try await peer.next() }
    } }

    /// A job's stdout and stderr forwarders share one stream: both may wait for credit at once, and both
    /// must be woken (one once overwrote the other's wait, and that forwarder hung for good).
    @Test func twoSendersWaitingForCreditAreBothWoken() async throws { try await withPair { pair in
        let stream = try await pair.client.open(.text("stdinEnd"))
        let chunk = ByteBuffer(repeating: 3, count: 256 << 10)
        let total = 3 * FlowControl.initialWindow
        let senders = [DataChannel.stdout, .stderr].map { channel in
            Task { for _ in 0..<(total / chunk.readableBytes) { try await stream.send(data: chunk, on: channel) } }
        }
        var iterator = pair.opened.makeAsyncIterator()
        let (peer, _) = try #require(await iterator.next())
        var received = 0
        while received < 2 * total {
            if case .data(_, let bytes) = try await peer.next() { received += bytes.readableBytes }
            if received % (1 << 20) == 0 { try await Task.sleep(for: .milliseconds(1)) }  // a slow reader
        }
        for sender in senders { try await sender.value }
        #expect(received == 2 * total)
    } }

    /// A sender waiting for credit can be cancelled (it once waited for good).
    @Test func aSenderWaitingForCreditCanBeCancelled() async throws { try await withPair { pair in
        let stream = try await pair.client.open(.text("stdinEnd"))
        let chunk = ByteBuffer(repeating: 1, count: 1 << 20)
        let sender = Task { for _ in 0..<16 { try await stream.send(data: chunk, on: .content) } }
        try await Task.sleep(for: .milliseconds(300))
        sender.cancel()
        await #expect(throws: CancellationError.self) { try await sender.value }
    } }
}

final class ManagedCounter: @unchecked Sendable {
    private var count = 0
    private let lock = NIOLock()
    func add(_ amount: Int) { lock.withLock { count += amount } }
    var value: Int { lock.withLock { count } }
}
