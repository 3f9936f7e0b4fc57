/// Makes a guest's serial console safe for the operator's terminal, byte by byte and across reads: colour
/// sequences (SGR, `ESC [ digits ; m`) pass, as `less -R` lets them; every other control byte becomes a
/// visible `\xNN` (C1 controls in UTF-8 too), and the carriage return of a CRLF is dropped.
public struct ConsoleFilter: Sendable {
    private enum State: Sendable { case text, escape, csi([UInt8]), carriageReturn, c2 }
    private var state = State.text
    /// The longest colour sequence passed through; longer ones are escaped.
    static let maximumSequence = 32

    public init() {}

    public mutating func filter(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        for byte in bytes { feed(byte, into: &out) }
        return out
    }

    private mutating func feed(_ byte: UInt8, into out: inout [UInt8]) {
        switch state {
        case .escape:
            if byte == UInt8(ascii: "[") {
                state = .csi([])
                return
            }
            state = .text
            out += Self.visible(0x1B)
            feed(byte, into: &out)
        case .csi(var parameters):
            if byte == UInt8(ascii: "m") {
                out += [0x1B, UInt8(ascii: "[")] + parameters + [byte]
                state = .text
            } else if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ";"),
                      parameters.count < Self.maximumSequence {
                parameters.append(byte)
                state = .csi(parameters)
            } else {
                state = .text
                out += Self.visible(0x1B) + [UInt8(ascii: "[")] + parameters
                feed(byte, into: &out)
            }
        case .carriageReturn:
            state = .text
            if byte != UInt8(ascii: "\n") { out += Self.visible(0x0D) }
            feed(byte, into: &out)
        case .c2:
            state = .text
            if (0x80...0x9F).contains(byte) {
                out += Self.visible(0xC2) + Self.visible(byte)
            } else {
                out.append(0xC2)
                feed(byte, into: &out)
            }
        case .text:
            switch byte {
            case 0x1B: state = .escape
            case 0x0D: state = .carriageReturn
            case 0xC2: state = .c2
            case 0x0A, 0x09: out.append(byte)
            case 0x00...0x1F, 0x7F: out += Self.visible(byte)
            default: out.append(byte)
            }
        }
    }

    static func visible(_ byte: UInt8) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        return [UInt8(ascii: "\\"), UInt8(ascii: "x"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]]
    }
}
