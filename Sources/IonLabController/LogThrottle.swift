import Foundation
import NIOConcurrencyHelpers

/// Keeps a flood of failing peers from flooding the log: at most `limit` lines per `interval`, then one
/// line saying how many were left out.
final class LogThrottle: Sendable {
    private struct State {
        var windowStart = Date.distantPast
        var logged = 0
        var suppressed = 0
    }

    let limit: Int
    let interval: TimeInterval
    private let state = NIOLockedValueBox(State())

    init(limit: Int = 20, interval: TimeInterval = 60) {
        self.limit = limit
        self.interval = interval
    }

    /// Whether to log this line; when a new window opens, also how many lines the last one left out.
    func admit(now: Date = Date()) -> (log: Bool, suppressedBefore: Int) {
        state.withLockedValue { state in
            var suppressed = 0
            if now.timeIntervalSince(state.windowStart) >= interval {
                suppressed = state.suppressed
                state = State(windowStart: now)
            }
            guard state.logged < limit else {
                state.suppressed += 1
                return (false, 0)
            }
            state.logged += 1
            return (true, suppressed)
        }
    }
}
