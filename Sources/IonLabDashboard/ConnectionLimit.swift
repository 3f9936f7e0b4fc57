import NIOCore
import Synchronization

/// Closes a connection beyond the limit as soon as it opens: the HTTP side holds at most so many at once,
/// however many a client opens.
final class ConnectionLimit: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    /// Connections open now, shared by every connection's handler.
    final class Counter: Sendable {
        let limit: Int
        private let open = Mutex(0)
        init(limit: Int) { self.limit = limit }

        func take() -> Bool {
            open.withLock { count in
                guard count < limit else { return false }
                count += 1
                return true
            }
        }

        func give() { open.withLock { $0 -= 1 } }
    }

    private let counter: Counter
    private let held = Mutex(false)

    init(counter: Counter) { self.counter = counter }

    func handlerAdded(context: ChannelHandlerContext) {
        if counter.take() {
            held.withLock { $0 = true }
        } else {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if held.withLock({ let was = $0; $0 = false; return was }) { counter.give() }
    }
}
