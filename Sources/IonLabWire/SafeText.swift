/// Text that came from a peer, made safe for a terminal or a log: control characters (C0, DEL, C1) and the
/// bidirectional overrides that reorder what a reader sees become visible escapes (`\u{1B}`). One line
/// unless `keepingNewlines`, which keeps line feeds and tabs.
public enum SafeText {
    public static func escaped(_ text: String, keepingNewlines: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: { isUnsafe($0, keepingNewlines: keepingNewlines) }) else { return text }
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar, keepingNewlines: keepingNewlines) {
                result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// JSON text with every character a terminal could act on written as a JSON escape (`\u009b`), so it
    /// stays valid JSON, decodes to the same strings, and prints safely. The encoder already escapes
    /// 0x00-0x1F; DEL, the C1 controls and the bidi overrides it leaves as they are. They can only be inside
    /// strings, where `\uXXXX` means the same character.
    public static func jsonEscaped(_ json: String) -> String {
        guard json.unicodeScalars.contains(where: { isUnsafe($0, keepingNewlines: false) }) else { return json }
        var result = ""
        result.unicodeScalars.reserveCapacity(json.unicodeScalars.count)
        let digits = Array("0123456789abcdef".unicodeScalars)
        for scalar in json.unicodeScalars {
            guard isUnsafe(scalar, keepingNewlines: false) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            result += "\\u"  // every unsafe scalar is below 0x10000: four hex digits
            for shift in stride(from: 12, through: 0, by: -4) { result.unicodeScalars.append(digits[Int(scalar.value >> UInt32(shift)) & 0xF]) }
        }
        return result
    }

    private static func isUnsafe(_ scalar: Unicode.Scalar, keepingNewlines: Bool) -> Bool {
        switch scalar.value {
        case 0x0A, 0x09: return !keepingNewlines
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: return true
        default: return false
        }
    }
}
