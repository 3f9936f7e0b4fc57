import IonLabConfig
import IonLabPictureTools
import IonLabPictures

/// Waits until OCR reads a text on a screen: takes the screen, reads it, and again until the text is there or
/// the time is up. A screen that did not change since the last reading is not read again.
struct ScreenTextWait {
    /// The screen now: the hypervisor's, or a frame from the guest's VNC server.
    let take: @Sendable () async throws -> Picture
    var reader = ScreenTextReader()
    /// Between two looks at an unchanged screen: pacing, so that a still screen is not taken hundreds of times.
    var pause: Duration = .milliseconds(250)

    struct Outcome {
        var found: Bool
        /// What was read last (on the picture below).
        var read: ScreenText
        var picture: Picture
        var seconds: Double
        var readings: Int
    }

    func wait(for text: String, within seconds: Double) async throws -> Outcome {
        let clock = ContinuousClock()
        let started = clock.now
        let end = started + .clamped(seconds: seconds)
        var picture = try await take()
        var read = try await reader.find(text, on: picture)
        var readings = 1
        while !read.contains(text), clock.now < end {
            try await Task.sleep(for: pause)
            let next = try await take()
            guard next != picture else { continue }
            picture = next
            read = try await reader.find(text, on: picture)
            readings += 1
        }
        return Outcome(found: read.contains(text), read: read, picture: picture, seconds: (clock.now - started).seconds, readings: readings)
    }
}

/// Waits for a screen to answer a key: until it changes (a window opening), then until it keeps still, so that
/// what is typed next reaches the window the key opened. A key that changes nothing waits ``changePatience``.
struct ScreenSettling {
    let take: @Sendable () async throws -> Picture
    static let changePatience: Duration = .seconds(5)
    /// Still for this long means settled.
    static let still: Duration = .milliseconds(800)
    static let settlePatience: Duration = .seconds(15)
    /// Between two looks: pacing.
    var pause: Duration = .milliseconds(100)

    struct Outcome {
        /// Seconds from the key to the first change, or nil if none came.
        var changedAfter: Double?
    }

    func settle(after before: Picture) async throws -> Outcome {
        let clock = ContinuousClock()
        let started = clock.now
        var current = before
        while current == before {
            guard clock.now - started < Self.changePatience else { return Outcome(changedAfter: nil) }
            try await Task.sleep(for: pause)
            current = try await take()
        }
        let changed = (clock.now - started).seconds
        var stillSince = clock.now
        while clock.now - stillSince < Self.still, clock.now - started < Self.settlePatience {
            try await Task.sleep(for: pause)
            let next = try await take()
            if next != current {
                current = next
                stillSince = clock.now
            }
        }
        return Outcome(changedAfter: changed)
    }
}
