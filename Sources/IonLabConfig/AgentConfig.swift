#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Everything an agent needs to find, trust and join its controller. `ionlab token create` writes it;
/// in a VM it arrives on the cloud-init seed as `agent.json`. JSON, not YAML: the agent reads it with the
/// JSON decoder FoundationEssentials has, so it carries no YAML parser and no full Foundation.
public struct AgentConfig: Codable, Sendable, Equatable {
    public var name: String
    /// Tried in order on every connection attempt.
    public var endpoints: [Endpoint]
    public var caPin: CAPin
    /// The one-time enrollment token; unused once the agent holds a certificate.
    public var token: String?
    public var heartbeatSeconds: Double
    public var reconnectInitialSeconds: Double
    public var reconnectMaxSeconds: Double

    public init(name: String, endpoints: [Endpoint], caPin: CAPin, token: String?, heartbeatSeconds: Double = 10,
                reconnectInitialSeconds: Double = 0.25, reconnectMaxSeconds: Double = 10) {
        self.name = name
        self.endpoints = endpoints
        self.caPin = caPin
        self.token = token
        self.heartbeatSeconds = heartbeatSeconds
        self.reconnectInitialSeconds = reconnectInitialSeconds
        self.reconnectMaxSeconds = reconnectMaxSeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, endpoints, token
        case caPin = "ca_pin", heartbeatSeconds = "heartbeat_seconds"
        case reconnectInitialSeconds = "reconnect_initial_seconds", reconnectMaxSeconds = "reconnect_max_seconds"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name, check: AgentName.validate)
        endpoints = try container.decode([Endpoint].self, forKey: .endpoints, check: Check.nonEmpty)
        caPin = try container.decode(CAPin.self, forKey: .caPin)
        token = try container.decodeIfPresent(String.self, forKey: .token, check: Check.nonEmpty)
        heartbeatSeconds = try container.decodeIfPresent(Double.self, forKey: .heartbeatSeconds, check: Check.seconds) ?? 10
        reconnectInitialSeconds = try container.decodeIfPresent(Double.self, forKey: .reconnectInitialSeconds, check: Check.seconds) ?? 0.25
        reconnectMaxSeconds = try container.decodeIfPresent(Double.self, forKey: .reconnectMaxSeconds, check: Check.seconds) ?? 10
        try decoder.rejectUnknownKeys(CodingKeys.self)
    }

    /// Reads the config, every problem one located line: `agent.json: ca_pin: expected sha256: …`.
    public static func load(path: String) throws -> AgentConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, line: nil, field: "", problem: "cannot read the file (\(FileProblem.reason(error)))")
        }
        return try decode(data, file: path)
    }

    public static func decode(_ data: Data, file: String) throws -> AgentConfig {
        guard data.contains(where: { ![0x20, 0x0a, 0x0d, 0x09].contains($0) }) else {
            throw ConfigError(file: file, line: nil, field: "", problem: "the file is empty")
        }
        do {
            return try JSONDecoder().decode(AgentConfig.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
                throw ConfigError(file: file, line: nil, field: "", problem: "not valid JSON (\(context.debugDescription))")
            }
            throw ConfigError(file: file, decoding: error)
        }
    }

    /// The config as the agent reads it: JSON, keys sorted, one per line.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(self), as: UTF8.self) + "\n"
    }
}

extension Decoder {
    /// Fails on the first key of this object that `Keys` does not name: a misspelt field must not be ignored.
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let present = try container(keyedBy: FieldKey.self).allKeys
        if let unknown = present.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath + [FieldKey(stringValue: unknown)], debugDescription: "unknown field"))
        }
    }
}

/// Why a file could not be read, in a few words ("no such file", "Permission denied").
public enum FileProblem {
    public static func reason(_ error: Error) -> String {
        if let error = error as? CocoaError {
            if error.code == .fileReadNoSuchFile { return "no such file" }
            if let posix = error.userInfo["NSUnderlyingError"] as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        }
        return "\(error)"
    }
}
