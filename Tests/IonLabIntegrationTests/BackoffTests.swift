@testable import IonLabAgent
import Testing

/// The agent's reconnect waits, as a pure rule: the lab's agents cap them at a second, so the growth and the
/// cap are proved here rather than by a controller that stays away.
@Suite struct BackoffTests {
    /// The n-th wait lies in [c/2, c] for c = min(maximum, initial·2ⁿ).
    @Test func waitsDoubleUpToTheirCeilingWithJitter() {
        var backoff = Backoff(initial: 0.25, maximum: 10)
        let ceilings: [Double] = [0.25, 0.5, 1, 2, 4, 8, 10, 10, 10]
        for ceiling in ceilings {
            let wait = backoff.next()
            #expect(wait >= ceiling / 2 && wait <= ceiling, "\(wait) outside [\(ceiling / 2), \(ceiling)]")
        }
    }

    /// A session that came up starts the waits over, and hundreds of failures neither overflow nor pass the cap.
    @Test func aResetStartsOverAndManyFailuresStayAtTheCap() {
        var backoff = Backoff(initial: 0.25, maximum: 1)
        for _ in 0..<500 { #expect(backoff.next() <= 1) }
        backoff.reset()
        #expect(backoff.next() <= 0.25)
    }
}
