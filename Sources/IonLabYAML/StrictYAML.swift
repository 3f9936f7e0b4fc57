import Foundation
import IonLabConfig
import Yams

/// Decodes YAML into `Decodable` types strictly: snake_case keys map to camelCase properties, unknown keys
/// are errors, and every error names the file, the line and the field.
public enum StrictYAML {
    public static func decode<T: Decodable>(_ type: T.Type, from text: String, file: String) throws -> T {
        try decode(type, from: text, file: file) { $0 }
    }

    /// Decodes, then passes the value through `check`; a `FieldProblem` it throws is located like a decoding error.
    public static func decode<T: Decodable, R>(_ type: T.Type, from text: String, file: String, check: (T) throws -> R) throws -> R {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                throw ConfigError(file: file, line: nil, field: "", problem: "the file is empty")
            }
            root = composed
        } catch let error as YamlError {
            throw ConfigError(file: file, line: Self.line(of: error), field: "", problem: "not valid YAML: \(Self.problem(of: error))")
        }
        let tracker = KeyTracker(root: root)
        let decoder = NodeDecoder(node: root, path: [], file: file, tracker: tracker)
        let value: T
        do {
            value = try T(from: decoder)
        } catch let error as ConfigError {
            throw error
        } catch let error as DecodingError {
            throw decoder.configError(from: error)
        }
        try tracker.rejectUnknownKeys(file: file)
        do {
            return try check(value)
        } catch let problem as FieldProblem {
            throw ConfigError(file: file, line: tracker.line(of: problem.path), field: FieldPath.render(problem.path), problem: problem.problem)
        }
    }

    /// Reads and decodes a file, with the same located errors.
    public static func load<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        try load(type, path: path) { $0 }
    }

    /// Reads and decodes a file, then checks the value as `decode(_:from:file:check:)` does.
    public static func load<T: Decodable, R>(_ type: T.Type, path: String, check: (T) throws -> R) throws -> R {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, line: nil, field: "", problem: "cannot read the file (\(FileProblem.reason(error)))")
        }
        return try decode(type, from: text, file: path, check: check)
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _), .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    /// `ca_pin` → `caPin`.
    static func camelCase(_ key: String) -> String {
        let parts = key.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count > 1 else { return key }
        return String(parts[0]) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}

/// Remembers, for every mapping decoded, which keys the types asked about.
final class KeyTracker {
    let root: Node
    init(root: Node) { self.root = root }

    /// The line where the value at `path` starts, or where its nearest existing parent does.
    func line(of path: [CodingKey]) -> Int? {
        var node = root
        var line = root.mark?.line
        for key in path {
            if let index = key.intValue, case .sequence(let items) = node, index < items.count {
                node = items[index]
            } else if case .mapping(let mapping) = node,
                      let pair = mapping.first(where: { [FieldPath.snakeCase(key.stringValue), key.stringValue].contains($0.key.string) }) {
                node = pair.value
            } else {
                break
            }
            line = node.mark?.line ?? line
        }
        return line
    }

    struct Mapping {
        var path: String
        var keys: [(name: String, line: Int?)]
        var asked: Set<String> = []
        var askedForAll = false
    }
    var mappings: [Mapping] = []

    func register(path: String, keys: [(name: String, line: Int?)]) -> Int {
        mappings.append(Mapping(path: path, keys: keys))
        return mappings.count - 1
    }

    func rejectUnknownKeys(file: String) throws {
        for mapping in mappings where !mapping.askedForAll {
            for key in mapping.keys where !mapping.asked.contains(key.name) {
                let field = mapping.path.isEmpty ? key.name : "\(mapping.path).\(key.name)"
                throw ConfigError(file: file, line: key.line, field: field, problem: "unknown field")
            }
        }
    }
}

struct NodeDecoder: Decoder {
    let node: Node
    let path: [CodingKey]
    let file: String
    let tracker: KeyTracker
    var codingPath: [CodingKey] { path }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    var line: Int? { node.mark?.line }
    var fieldPath: String { FieldPath.render(path) }

    func fail(_ problem: String) -> ConfigError {
        ConfigError(file: file, line: line, field: fieldPath, problem: problem)
    }

    func configError(from error: DecodingError) -> ConfigError {
        ConfigError(file: file, decoding: error, line: tracker.line(of:))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let mapping) = node else { throw fail("expected a mapping of fields, found \(node.kindName)") }
        return KeyedDecodingContainer(KeyedNodeContainer<Key>(decoder: self, mapping: mapping))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .sequence(let sequence) = node else { throw fail("expected a list, found \(node.kindName)") }
        return UnkeyedNodeContainer(decoder: self, items: Array(sequence))
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { ScalarContainer(decoder: self) }

    func child(_ node: Node, key: CodingKey) -> NodeDecoder {
        NodeDecoder(node: node, path: path + [key], file: file, tracker: tracker)
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try T(from: self)
        } catch let error as DecodingError {
            throw configError(from: error)
        }
    }
}

/// A problem with a decoded value that checks beyond the file's syntax find (a missing file, an unknown name),
/// at a field path such as `workflow[1].copy.from`.
public struct FieldProblem: Error {
    public var path: [FieldKey]
    public var problem: String
    public init(_ path: [FieldKey], _ problem: String) {
        self.path = path
        self.problem = problem
    }
}

struct IndexKey: CodingKey {
    var stringValue: String { "\(intValue!)" }
    var intValue: Int?
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let values: [String: Node]
    let mappingIndex: Int
    var codingPath: [CodingKey] { decoder.path }

    init(decoder: NodeDecoder, mapping: Node.Mapping) {
        self.decoder = decoder
        var values: [String: Node] = [:]
        var keys: [(name: String, line: Int?)] = []
        for (key, value) in mapping {
            let name = key.string ?? "\(key)"
            values[name] = value
            keys.append((name, key.mark?.line))
        }
        self.values = values
        self.mappingIndex = decoder.tracker.register(path: decoder.fieldPath, keys: keys)
    }

    /// The YAML key for a coding key: its snake_case spelling, or the key as written.
    private func yamlKey(_ key: Key) -> String? {
        let snake = FieldPath.snakeCase(key.stringValue)
        for candidate in [snake, key.stringValue] {
            decoder.tracker.mappings[mappingIndex].asked.insert(candidate)
        }
        if values[snake] != nil { return snake }
        if values[key.stringValue] != nil { return key.stringValue }
        return nil
    }

    var allKeys: [Key] {
        decoder.tracker.mappings[mappingIndex].askedForAll = true
        return values.keys.compactMap { Key(stringValue: StrictYAML.camelCase($0)) ?? Key(stringValue: $0) }
    }

    func contains(_ key: Key) -> Bool { yamlKey(key) != nil }

    private func node(for key: Key) throws -> Node {
        guard let name = yamlKey(key), let node = values[name] else {
            throw ConfigError(file: decoder.file, line: decoder.line, field: FieldPath.render(codingPath + [key]),
                              problem: "missing required field")
        }
        return node
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        guard let name = yamlKey(key), let node = values[name] else { return true }
        return node.isNull
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder.child(try node(for: key), key: key).decode(type)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let name = yamlKey(key), let node = values[name], !node.isNull else { return nil }
        return try decoder.child(node, key: key).decode(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder.child(try node(for: key), key: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try decoder.child(try node(for: key), key: key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> Decoder { decoder.child(try node(for: key), key: key) }
}

struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let items: [Node]
    var currentIndex = 0
    var codingPath: [CodingKey] { decoder.path }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func nextDecoder() throws -> NodeDecoder {
        guard !isAtEnd else { throw decoder.fail("the list has too few items") }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], key: IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try nextDecoder().decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try nextDecoder().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try nextDecoder().unkeyedContainer() }
    mutating func superDecoder() throws -> Decoder { try nextDecoder() }
}

struct ScalarContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [CodingKey] { decoder.path }

    private func scalar(_ expected: String) throws -> String {
        guard case .scalar(let scalar) = decoder.node else {
            throw decoder.fail("expected \(expected), found \(decoder.node.kindName)")
        }
        return scalar.string
    }

    func decodeNil() -> Bool { decoder.node.isNull }

    func decode(_ type: Bool.Type) throws -> Bool {
        let text = try scalar("true or false")
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw decoder.fail("expected true or false, found '\(text)'")
        }
    }

    func decode(_ type: String.Type) throws -> String { try scalar("a string") }

    func decode(_ type: Double.Type) throws -> Double {
        let text = try scalar("a number")
        guard let value = Double(text) else { throw decoder.fail("expected a number, found '\(text)'") }
        return value
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let text = try scalar("an integer")
        let digits = text.replacingOccurrences(of: "_", with: "")
        guard let value = T(digits) else {
            let isNumber = !digits.isEmpty && digits.drop { $0 == "-" || $0 == "+" }.allSatisfy(\.isNumber)
            throw decoder.fail(isNumber ? "expected an integer in \(T.min)...\(T.max), found '\(text)'" : "expected an integer, found '\(text)'")
        }
        return value
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decode(type) }
}

extension Node {
    var kindName: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar): return isNull ? "nothing" : "'\(scalar.string)'"
        case .alias: return "an alias"
        }
    }

    var isNull: Bool {
        guard case .scalar(let scalar) = self else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}

/// Writing YAML scalars safely.
public enum YAMLText {
    /// A double-quoted scalar, escaped as JSON (a subset of YAML).
    public static func quote(_ text: String) -> String {
        let data = try! JSONEncoder().encode(text)
        return String(decoding: data, as: UTF8.self)
    }
}
