import IonLabPictures

/// Reads the text on a picture of a screen with tesseract (Debian's tesseract-ocr), on the controller's host:
/// what a guest says its screen shows is not evidence, what its screen shows is.
public struct ScreenTextReader: Sendable {
    static let tesseract = HostTool(name: "tesseract", package: "tesseract-ocr tesseract-ocr-eng")
    /// Bounds one reading: a 1280×800 screen takes about 1.1 s here.
    public var timeoutSeconds: Double

    public init(timeoutSeconds: Double = 60) {
        self.timeoutSeconds = timeoutSeconds
    }

    /// The text tesseract reads on `picture`, at twice its size, dark on light (``Picture/readingCopy(scale:inverted:)``).
    public func read(_ picture: Picture) async throws(ToolError) -> ScreenText {
        try await read(picture, inverted: picture.readsInverted)
    }

    /// Whether `text` is on `picture`: read as ``read(_:)`` reads it, and when that misses it, read again with
    /// the other polarity (a screen's light text on a dark bar, or its dark text on a light window). The text
    /// returned is both readings'.
    public func find(_ text: String, on picture: Picture) async throws(ToolError) -> ScreenText {
        let first = try await read(picture)
        guard !first.contains(text) else { return first }
        let second = try await read(picture, inverted: !picture.readsInverted)
        return ScreenText(text: first.text + "\n" + second.text, seconds: first.seconds + second.seconds)
    }

    private func read(_ picture: Picture, inverted: Bool) async throws(ToolError) -> ScreenText {
        let clock = ContinuousClock()
        let started = clock.now
        // One thread: beside the VMs it shares two cores with, OpenMP's threads make it slower, not faster.
        let output = try await Self.tesseract.run(["stdin", "stdout", "-l", "eng", "--psm", "3"],
                                                 input: picture.readingCopy(scale: 2, inverted: inverted),
                                                 timeout: timeoutSeconds, limit: 256 << 10, environment: ["OMP_THREAD_LIMIT": "1"])
        guard output.status == 0 else {
            throw ToolError("tesseract failed (status \(output.status))" + (output.lastError.isEmpty ? "" : ": \(output.lastError)"))
        }
        let elapsed = clock.now - started
        return ScreenText(text: String(decoding: output.stdout, as: UTF8.self),
                          seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

/// What was read on a screen, and how long reading it took.
public struct ScreenText: Sendable, Equatable {
    /// As tesseract printed it: lines, with blank lines between blocks.
    public var text: String
    public var seconds: Double

    public init(text: String, seconds: Double) {
        self.text = text
        self.seconds = seconds
    }

    /// Whether `needle` is on the screen: the same characters in order, wherever the lines break. Whitespace
    /// counts for nothing on either side (tesseract reads `MARK-7KX3W9` as `MARK -7KX3W9` at times); every
    /// other character counts, and so does its case: a marker is read exactly or not at all.
    public func contains(_ needle: String) -> Bool {
        let wanted = Self.withoutWhitespace(needle)
        return !wanted.isEmpty && Self.withoutWhitespace(text).contains(wanted)
    }

    /// The text on one line, its whitespace collapsed: what a verdict quotes.
    public var oneLine: String { Self.collapsed(text) }

    static func collapsed(_ text: String) -> String {
        text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    static func withoutWhitespace(_ text: String) -> String {
        String(text.unicodeScalars.filter { !$0.properties.isWhitespace })
    }
}
