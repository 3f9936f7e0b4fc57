import NIOConcurrencyHelpers
import NIOCore

/// Bounds the connections that have not authenticated yet. When the bound is reached, a new connection
/// closes the oldest (as sshd's MaxStartups drops): peers that stall cannot lock agents out, because an agent
/// finishes its handshake in milliseconds while a stalling peer is always the oldest.
final class UnauthenticatedConnections: Sendable {
    struct Ticket: Sendable, Hashable { fileprivate let id: UInt64 }

    private struct State {
        var nextID: UInt64 = 0
        var open: [UInt64: Channel] = [:]
        /// Admission order; ids that already left are skipped when evicting.
        var order = CircularBuffer<UInt64>()
        var evicted = 0
    }

    let limit: Int
    private let state = NIOLockedValueBox(State())

    init(limit: Int) { self.limit = max(1, limit) }

    /// Admits a connection, closing the oldest unauthenticated ones beyond the limit.
    func admit(_ channel: Channel) -> Ticket {
        let (ticket, victims): (Ticket, [Channel]) = state.withLockedValue { state in
            let id = state.nextID
            state.nextID += 1
            state.open[id] = channel
            state.order.append(id)
            var victims: [Channel] = []
            while state.open.count > limit, let oldest = state.order.popFirst() {
                if let victim = state.open.removeValue(forKey: oldest) {
                    victims.append(victim)
                    state.evicted += 1
                }
            }
            if state.order.count > 2 * limit + 64 { state.order = CircularBuffer(state.order.filter { state.open[$0] != nil }) }
            return (Ticket(id: id), victims)
        }
        for victim in victims { victim.close(promise: nil) }
        return ticket
    }

    /// The connection authenticated, enrolled or closed: it no longer counts.
    func leave(_ ticket: Ticket) {
        state.withLockedValue { _ = $0.open.removeValue(forKey: ticket.id) }
    }

    var count: Int { state.withLockedValue { $0.open.count } }

    /// Connections closed to make room since the last call.
    func takeEvictedCount() -> Int {
        state.withLockedValue { state in
            defer { state.evicted = 0 }
            return state.evicted
        }
    }
}
