/// Checks of the fields of a message a peer sent, each throwing ``WireError/invalidField(_:_:)`` with the
/// field's name and never its value.
public enum PeerText {
    public static func length(_ text: String, _ field: String, max: Int) throws {
        let count = text.utf8.count
        guard count <= max else { throw WireError.invalidField(field, "\(count) bytes long, more than \(max)") }
    }

    public static func count(_ count: Int, _ field: String, max: Int) throws {
        guard count <= max else { throw WireError.invalidField(field, "\(count) entries, more than \(max)") }
    }

    /// Printable ASCII (space to tilde), not empty.
    public static func printable(_ text: String, _ field: String, max: Int) throws {
        try length(text, field, max: max)
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
            throw WireError.invalidField(field, "must be printable ASCII and not empty")
        }
    }

    /// Letters, digits, `.`, `_`, `-` and `:`, not empty.
    public static func identifier(_ text: String, _ field: String, max: Int) throws {
        try word(text, field, max: max, also: ".:_-", "must be letters, digits, '.', '_', '-' or ':'")
    }

    /// A DNS name: at most 253 bytes.
    public static func hostname(_ text: String, _ field: String) throws {
        try word(text, field, max: 253, also: "._-", "must be a host name (letters, digits, '.', '-', '_')")
    }

    /// Not empty, at most `max` bytes, ASCII letters and digits and the punctuation in `also` only.
    private static func word(_ text: String, _ field: String, max: Int, also punctuation: String, _ rule: String) throws {
        try length(text, field, max: max)
        let allowed = Set(punctuation.utf8)
        guard !text.isEmpty, text.utf8.allSatisfy({ isAlphanumeric($0) || allowed.contains($0) }) else {
            throw WireError.invalidField(field, rule)
        }
    }

    public static func number(_ value: Double, _ field: String, in range: ClosedRange<Double>) throws {
        guard value.isFinite, range.contains(value) else {
            throw WireError.invalidField(field, "out of range (\(range.lowerBound) to \(range.upperBound))")
        }
    }

    public static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    public static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}
