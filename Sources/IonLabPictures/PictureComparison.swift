/// Whether two pictures of one screen show the same thing, within a tolerance that a moved cursor, a blinking
/// caret or a scaler's rounding stays inside, and a window opened, closed or moved does not.
public struct PictureComparison: Sendable, Equatable {
    /// A pixel differs when one of its channels differs by more than this (of 255).
    public var channelThreshold: Int
    /// The pictures match when at most this share of their pixels differ.
    public var maximumDifferingShare: Double

    public init(channelThreshold: Int = 48, maximumDifferingShare: Double = 0.01) {
        self.channelThreshold = channelThreshold
        self.maximumDifferingShare = maximumDifferingShare
    }

    /// What a comparison found.
    public struct Outcome: Sendable, Equatable {
        /// The share of pixels that differ (1 when the sizes differ).
        public var differingShare: Double
        public var matches: Bool
        /// "1280×800, 0.12% of the pixels differ by more than 48 (at most 1% may)", or why the sizes do not match.
        public var summary: String
    }

    public func compare(_ picture: Picture, with other: Picture) -> Outcome {
        guard picture.width == other.width, picture.height == other.height else {
            return Outcome(differingShare: 1, matches: false,
                           summary: "the pictures are \(picture.width)×\(picture.height) and \(other.width)×\(other.height)")
        }
        let count = picture.width * picture.height
        var differing = 0
        picture.rgb.withUnsafeBufferPointer { a in
            other.rgb.withUnsafeBufferPointer { b in
                for pixel in 0..<count {
                    let i = pixel * 3
                    if abs(Int(a[i]) - Int(b[i])) > channelThreshold || abs(Int(a[i + 1]) - Int(b[i + 1])) > channelThreshold
                        || abs(Int(a[i + 2]) - Int(b[i + 2])) > channelThreshold {
                        differing += 1
                    }
                }
            }
        }
        let share = count == 0 ? 0 : Double(differing) / Double(count)
        let summary = "\(picture.width)×\(picture.height), \(Self.percent(share)) of the pixels differ by more than \(channelThreshold)"
            + " (at most \(Self.percent(maximumDifferingShare)) may)"
        return Outcome(differingShare: share, matches: share <= maximumDifferingShare, summary: summary)
    }

    /// "0.12%", "1%", "100%".
    static func percent(_ share: Double) -> String {
        let value = (share * 10_000).rounded() / 100
        return value == value.rounded() ? "\(Int(value))%" : "\(value)%"
    }
}
