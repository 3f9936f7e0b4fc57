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
    /// With `toleratingEdits`, a reading within that many misread characters counts as found
    /// (``ScreenText/reading(of:toleratingEdits:)``).
    public func find(_ text: String, on picture: Picture, toleratingEdits edits: Int = 0) async throws(ToolError) -> ScreenText {
        let first = try await read(picture)
        guard first.reading(of: text, toleratingEdits: edits) == nil else { return first }
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

    /// Where `marker` was read with at most `edits` characters misread, added or dropped: the text read there
    /// (the marker itself when it was read exactly), or nil. Whitespace counts for nothing, as in
    /// ``contains(_:)``. For random markers, which tesseract reads one letter wrong now and then (`axacdc` as
    /// `axacde`); a text a person asked for is matched exactly.
    public func reading(of marker: String, toleratingEdits edits: Int) -> String? {
        if contains(marker) { return Self.withoutWhitespace(marker) }
        let wanted = Array(Self.withoutWhitespace(marker).unicodeScalars)
        let read = Array(Self.withoutWhitespace(text).unicodeScalars)
        guard edits > 0, wanted.count > edits, !read.isEmpty else { return nil }
        // Sellers' approximate substring match: row i holds, for each end in `read`, the fewest edits that turn
        // some substring ending there into wanted[..<i], and where the cheapest such substring starts.
        var previous = (0...read.count).map { (cost: 0, start: $0) }
        for i in 1...wanted.count {
            var row = [(cost: i, start: 0)]
            row.reserveCapacity(read.count + 1)
            for j in 1...read.count {
                let replaced = (cost: previous[j - 1].cost + (wanted[i - 1] == read[j - 1] ? 0 : 1), start: previous[j - 1].start)
                let dropped = (cost: previous[j].cost + 1, start: previous[j].start)
                let added = (cost: row[j - 1].cost + 1, start: row[j - 1].start)
                row.append([replaced, dropped, added].min { $0.cost < $1.cost }!)
            }
            previous = row
        }
        // The cheapest end; among equals, the substring nearest the marker's length (a letter read wrong rather
        // than one dropped and the next taken in).
        func rank(_ end: Int) -> (Int, Int) { (previous[end].cost, abs(end - previous[end].start - wanted.count)) }
        guard let end = (1...read.count).min(by: { rank($0) < rank($1) }), previous[end].cost <= edits else { return nil }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: read[previous[end].start..<end])
        return String(scalars)
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
