/// How the hypervisor's keyboard types: X keysyms (what a chord or a text is made of) as the Linux input
/// keycodes `virDomainSendKey` presses, on a US layout, the layout a fresh image has. Pure: tested key by key.
public enum HypervisorKeyboard {
    static let leftShift: UInt32 = 42

    /// Keys other than characters, by keysym.
    static let named: [UInt32: UInt32] = [
        0xFFEB: 125, 0xFFEC: 126,  // Super_L, Super_R (KEY_LEFTMETA, KEY_RIGHTMETA)
        0xFFE3: 29, 0xFFE4: 97,  // Control
        0xFFE9: 56, 0xFFEA: 100,  // Alt
        0xFFE1: 42, 0xFFE2: 54,  // Shift
        0xFF0D: 28, 0xFF09: 15, 0xFF1B: 1, 0xFF08: 14, 0xFFFF: 111,  // Return, Tab, Escape, BackSpace, Delete
        0xFF50: 102, 0xFF51: 105, 0xFF52: 103, 0xFF53: 106, 0xFF54: 108,  // Home, Left, Up, Right, Down
        0xFF55: 104, 0xFF56: 109, 0xFF57: 107, 0xFF63: 110,  // Page_Up, Page_Down, End, Insert
        0xFFBE: 59, 0xFFBF: 60, 0xFFC0: 61, 0xFFC1: 62, 0xFFC2: 63, 0xFFC3: 64,  // F1 … F6
        0xFFC4: 65, 0xFFC5: 66, 0xFFC6: 67, 0xFFC7: 68, 0xFFC8: 87, 0xFFC9: 88,  // F7 … F12
    ]

    /// Printable ASCII: the key, and whether Shift is held for it.
    static let characters: [Character: (code: UInt32, shift: Bool)] = {
        var table: [Character: (UInt32, Bool)] = [" ": (57, false)]
        let rows: [(String, UInt32)] = [("1234567890", 2), ("qwertyuiop", 16), ("asdfghjkl", 30), ("zxcvbnm", 44)]
        for (keys, first) in rows {
            for (offset, key) in keys.enumerated() {
                table[key] = (first + UInt32(offset), false)
                if key.isLetter { table[Character(key.uppercased())] = (first + UInt32(offset), true) }
            }
        }
        for (shifted, digit) in zip("!@#$%^&*()", "1234567890") { table[shifted] = (table[digit]!.0, true) }
        let punctuation: [(Character, Character, UInt32)] = [
            ("-", "_", 12), ("=", "+", 13), ("[", "{", 26), ("]", "}", 27), (";", ":", 39), ("'", "\"", 40),
            ("`", "~", 41), ("\\", "|", 43), (",", "<", 51), (".", ">", 52), ("/", "?", 53),
        ]
        for (plain, shifted, code) in punctuation {
            table[plain] = (code, false)
            table[shifted] = (code, true)
        }
        return table
    }()

    /// The keycodes of a chord (modifiers, then a key), pressed together.
    public static func chord(_ keysyms: [UInt32]) throws(KeyboardError) -> [UInt32] {
        var codes: [UInt32] = []
        for keysym in keysyms {
            if let code = named[keysym] {
                codes.append(code)
            } else if let scalar = Unicode.Scalar(keysym), scalar.isASCII, let key = characters[Character(scalar)] {
                if key.shift, !codes.contains(leftShift) { codes.append(leftShift) }
                codes.append(key.code)
            } else {
                throw KeyboardError("keysym 0x\(String(keysym, radix: 16)) has no key on the hypervisor's US keyboard")
            }
        }
        return codes
    }

    /// The strokes that type `text`, one per character (with Shift where it needs it); a line break is Return.
    public static func strokes(typing text: String) throws(KeyboardError) -> [[UInt32]] {
        var strokes: [[UInt32]] = []
        for character in text {
            if character == "\n" || character == "\r\n" {
                strokes.append([28])
            } else if character == "\t" {
                strokes.append([15])
            } else if let key = characters[character] {
                strokes.append(key.shift ? [leftShift, key.code] : [key.code])
            } else {
                let shown = character.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? "U+\(String($0.value, radix: 16, uppercase: true))" : String($0) }.joined()
                throw KeyboardError("'\(shown)' cannot be typed on the hypervisor's US keyboard (printable ASCII, tabs and line breaks only)")
            }
        }
        return strokes
    }
}

public struct KeyboardError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
