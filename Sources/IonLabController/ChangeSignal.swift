import Foundation
import NIOConcurrencyHelpers

/// Wakes the tasks waiting for something to change, which then look again at what they wait for: a
/// condition variable for tasks. The controller's lifecycle signal fires when an agent connects, disconnects
/// or first reports its health, and when a VM becomes ready, so that nobody polls for those.
final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextTicket: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    func notify() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLockedValue { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The value `condition` gives once it gives one (looked at now and after every change), or nil once
    /// `timeout` has passed or the task is cancelled.
    func wait<T>(for condition: () -> T?, timeout: Duration) async -> T? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let generation = state.withLockedValue { $0.generation }
            if let value = condition() { return value }
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return nil }
            await change(after: generation, until: deadline)
        }
    }

    /// Returns at the first change after `generation`, at `deadline`, or on cancellation.
    func change(after generation: UInt64, until deadline: ContinuousClock.Instant) async {
        let ticket: UInt64 = state.withLockedValue { state in
            defer { state.nextTicket &+= 1 }
            return state.nextTicket
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            self?.wake(ticket)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let changed: Bool = state.withLockedValue { state in
                    guard state.generation == generation, !Task.isCancelled else { return true }
                    state.waiters[ticket] = continuation
                    return false
                }
                if changed { continuation.resume() }
            }
        } onCancel: {
            self.wake(ticket)
        }
    }

    /// The current generation, to wait for a change after it.
    var generation: UInt64 { state.withLockedValue { $0.generation } }

    private func wake(_ ticket: UInt64) {
        state.withLockedValue { $0.waiters.removeValue(forKey: ticket) }?.resume()
    }
}
