import Foundation

/// Everything an agent needs to find, trust and join its controller. `ionlab token create` writes it;
/// in a VM it arrives on the cloud-init seed.
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

    enum CodingKeys: String, CodingKey {
        case name, endpoints, caPin, token, heartbeatSeconds, reconnectInitialSeconds, reconnectMaxSeconds
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
    }

    public static func load(path: String) throws -> AgentConfig {
        try StrictYAML.load(AgentConfig.self, path: path)
    }

    /// The config as YAML, with a comment saying what it is.
    public func yaml() -> String {
        var lines = [
            "# ionlab agent configuration for \(name). It holds a one-time enrollment token: keep it private.",
            "name: \(YAMLText.quote(name))",
            "endpoints:",
        ]
        lines += endpoints.map { "  - \(YAMLText.quote($0.description))" }
        lines.append("ca_pin: \(YAMLText.quote(caPin.description))")
        if let token { lines.append("token: \(YAMLText.quote(token))") }
        lines.append("heartbeat_seconds: \(heartbeatSeconds)")
        lines.append("reconnect_initial_seconds: \(reconnectInitialSeconds)")
        lines.append("reconnect_max_seconds: \(reconnectMaxSeconds)")
        return lines.joined(separator: "\n") + "\n"
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
