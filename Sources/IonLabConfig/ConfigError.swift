#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A configuration problem, located: "agent.json: ca_pin: expected a string", or with a line where the
/// format keeps lines ("fleet.yaml:3: vms[0].name: …").
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var line: Int?
    public var field: String
    public var problem: String

    public init(file: String, line: Int?, field: String, problem: String) {
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem
    }

    /// A decoding error, located at its field; `line` finds the line of a field path where the format has lines.
    public init(file: String, decoding error: DecodingError, line: ([CodingKey]) -> Int? = { _ in nil }) {
        switch error {
        case .typeMismatch(let type, let context):
            self.init(file: file, line: line(context.codingPath), field: FieldPath.render(context.codingPath),
                      problem: Self.expected(type, context.debugDescription))
        case .dataCorrupted(let context), .valueNotFound(_, let context):
            self.init(file: file, line: line(context.codingPath), field: FieldPath.render(context.codingPath), problem: context.debugDescription)
        case .keyNotFound(let key, let context):
            self.init(file: file, line: line(context.codingPath), field: FieldPath.render(context.codingPath + [key]),
                      problem: "missing required field")
        @unknown default:
            self.init(file: file, line: line([]), field: "", problem: "\(error)")
        }
    }

    /// "expected a number, found a string": what the field should hold, in a config's words, and what the
    /// decoder says it found ("Expected to decode Double but found a string instead.").
    static func expected(_ type: Any.Type, _ debugDescription: String) -> String {
        let kind: String
        switch type {
        case is any BinaryInteger.Type, is any BinaryFloatingPoint.Type: kind = "a number"
        case is String.Type: kind = "a string"
        case is Bool.Type: kind = "true or false"
        case is [Any].Type: kind = "a list"
        case is [String: Any].Type: kind = "a mapping of fields"
        default: return debugDescription
        }
        guard let found = debugDescription.firstRange(of: "but found ") else { return "expected \(kind)" }
        let rest = debugDescription[found.upperBound...]
        return "expected \(kind), found \(rest.firstRange(of: " instead").map { rest[..<$0.lowerBound] } ?? rest)"
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return field.isEmpty ? "\(location): \(problem)" : "\(location): \(field): \(problem)"
    }
}

/// One component of a field path: a key (camelCase, as the types name it) or a list index.
public struct FieldKey: CodingKey, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public var stringValue: String
    public var intValue: Int?
    public init(stringValue: String) { self.stringValue = stringValue }
    public init(intValue: Int) {
        stringValue = "\(intValue)"
        self.intValue = intValue
    }
    public init(stringLiteral value: String) { self.init(stringValue: value) }
    public init(integerLiteral value: Int) { self.init(intValue: value) }
}

/// Field paths as configs spell them: snake_case keys, `.` between keys, `[i]` for list items
/// (`workflow[1].copy.from`), whatever the Swift names are.
public enum FieldPath {
    public static func render(_ path: [CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + snakeCase(key.stringValue)
            }
        }
        return text
    }

    /// `caPin` → `ca_pin`.
    public static func snakeCase(_ key: String) -> String {
        var result = ""
        for character in key {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}
