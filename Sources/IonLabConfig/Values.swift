#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A `HOST:PORT` address (`[::1]:7443` for IPv6).
public struct Endpoint: TextValue, Sendable, Hashable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, naming what is wrong.
    public init(parsing text: String) throws {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ValueError("expected [IPV6]:PORT, found '\(text)'")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ValueError("expected HOST:PORT, found '\(text)'") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        host = host.trimmingWhitespace
        guard !host.isEmpty else { throw ValueError("expected HOST:PORT, found '\(text)' (no host)") }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw ValueError("expected HOST:PORT with a port in 1...65535, found '\(text)'")
        }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A name for an agent or VM: lowercase letters, digits, '-', '_' and '.', starting with a letter or digit.
public enum AgentName {
    public static func validate(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
        guard let first = name.first, first.isLetter || first.isNumber, name.count <= 63,
              name.allSatisfy({ allowed.contains($0) }) else {
            throw ValueError("'\(name)' is not a valid name (use 1-63 of a-z, 0-9, '-', '_', '.', starting with a letter or digit)")
        }
    }
}

/// The SHA-256 of a CA's SubjectPublicKeyInfo, written `sha256:` and 64 hex digits.
public struct CAPin: TextValue, Sendable, Hashable {
    public let hex: String

    public init(parsing text: String) throws {
        let hex = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : ""
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit }) else {
            throw ValueError("expected sha256: followed by 64 hex digits, found '\(text)'")
        }
        self.hex = hex.lowercased()
    }

    public init(hex: String) { self.hex = hex.lowercased() }

    public var description: String { "sha256:\(hex)" }
}

/// A value that failed validation; decoding turns it into a located ``ConfigError``.
public struct ValueError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension KeyedDecodingContainer {
    /// Decodes a value and validates it; a ``ValueError`` becomes an error located at this key.
    public func decode<T: Decodable>(_ type: T.Type, forKey key: Key, check: (T) throws -> Void) throws -> T {
        let value = try decode(type, forKey: key)
        try validate(key) { try check(value) }
        return value
    }

    /// Decodes an optional value, validating it when present.
    public func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key, check: (T) throws -> Void) throws -> T? {
        guard let value = try decodeIfPresent(type, forKey: key) else { return nil }
        try validate(key) { try check(value) }
        return value
    }

    /// Runs a check, turning its ``ValueError`` into a decoding error at `key`.
    public func validate(_ key: Key, _ check: () throws -> Void) throws {
        do {
            try check()
        } catch let error as ValueError {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath + [key], debugDescription: error.message))
        }
    }
}

/// Common checks for configuration values.
public enum Check {
    public static func seconds(_ value: Double) throws {
        guard value > 0, value <= 86_400 * 365 else { throw ValueError("must be a positive number of seconds, found \(value)") }
    }

    public static func absolutePath(_ path: String) throws {
        guard path.hasPrefix("/") else { throw ValueError("expected an absolute path, found '\(path)'") }
    }

    public static func nonEmpty<C: Collection>(_ value: C) throws {
        guard !value.isEmpty else { throw ValueError("must not be empty") }
    }

    public static func range(_ range: ClosedRange<Int>) -> (Int) throws -> Void {
        { value in
            guard range.contains(value) else { throw ValueError("must be in \(range.lowerBound)...\(range.upperBound), found \(value)") }
        }
    }
}

/// A value written in configs as one string: parsed by `init(parsing:)`, written back as `description`.
/// A parse failure becomes a located ``ConfigError`` through the decoder.
public protocol TextValue: Codable, CustomStringConvertible {
    init(parsing text: String) throws
}

extension TextValue {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(parsing: text)
        } catch let error as ValueError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension Duration {
    /// A duration from a number of seconds that came from outside (a config, a flag, a peer): NaN and
    /// negatives become zero and anything past ten years is cut there, so converting it never traps.
    public static func clamped(seconds: Double) -> Duration {
        guard seconds.isFinite, seconds > 0 else { return .zero }
        return .milliseconds(Int64(min(seconds, 10 * 365 * 86_400) * 1000))
    }

    /// The duration in seconds, as a Double (for rates and reports).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension StringProtocol {
    /// Without leading and trailing whitespace and newlines (Foundation's `trimmingCharacters(in:)`, which
    /// FoundationEssentials lacks).
    public var trimmingWhitespace: SubSequence {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hex, two digits a byte (digests, serial numbers, pins).
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension Double {
    /// With one decimal, rounded as `%.1f` rounds (for seconds in messages).
    public var oneDecimal: String {
        let tenths = (self * 10).rounded()
        guard tenths.isFinite, abs(tenths) < 1e15 else { return "\(self)" }
        let whole = Int64(tenths)
        return "\(whole < 0 ? "-" : "")\(abs(whole) / 10).\(abs(whole) % 10)"
    }
}
