import Foundation

/// The controller's settings, read from `controller.yaml` in its state directory.
public struct ControllerConfig: Codable, Sendable, Equatable {
    /// Where the agent listener binds.
    public var listen: Endpoint
    /// Addresses agents are told to dial; the listen address when empty.
    public var advertise: [Endpoint]
    public var agentCertificateSeconds: Double
    public var tokenTtlSeconds: Double
    /// An agent with no heartbeat for this long is marked down.
    public var agentDownAfterSeconds: Double

    public static let defaultListen = Endpoint(host: "127.0.0.1", port: 7443)

    public init(listen: Endpoint = ControllerConfig.defaultListen, advertise: [Endpoint] = [],
                agentCertificateSeconds: Double = 86_400, tokenTtlSeconds: Double = 7_200, agentDownAfterSeconds: Double = 35) {
        self.listen = listen
        self.advertise = advertise
        self.agentCertificateSeconds = agentCertificateSeconds
        self.tokenTtlSeconds = tokenTtlSeconds
        self.agentDownAfterSeconds = agentDownAfterSeconds
    }

    enum CodingKeys: String, CodingKey {
        case listen, advertise, agentCertificateSeconds, tokenTtlSeconds, agentDownAfterSeconds
    }

    public init(from decoder: Decoder) throws {
        let defaults = ControllerConfig()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        listen = try container.decodeIfPresent(Endpoint.self, forKey: .listen) ?? defaults.listen
        advertise = try container.decodeIfPresent([Endpoint].self, forKey: .advertise) ?? []
        agentCertificateSeconds = try container.decodeIfPresent(Double.self, forKey: .agentCertificateSeconds, check: Check.seconds)
            ?? defaults.agentCertificateSeconds
        tokenTtlSeconds = try container.decodeIfPresent(Double.self, forKey: .tokenTtlSeconds, check: Check.seconds) ?? defaults.tokenTtlSeconds
        agentDownAfterSeconds = try container.decodeIfPresent(Double.self, forKey: .agentDownAfterSeconds, check: Check.seconds)
            ?? defaults.agentDownAfterSeconds
    }

    /// The endpoints written into agent configs.
    public var agentEndpoints: [Endpoint] { advertise.isEmpty ? [listen] : advertise }

    public static func load(path: String) throws -> ControllerConfig {
        try StrictYAML.load(ControllerConfig.self, path: path)
    }

    public func yaml() -> String {
        var lines = [
            "# ionlab controller configuration (see controller-config/controller.yaml for every setting).",
            "listen: \(YAMLText.quote(listen.description))",
        ]
        if !advertise.isEmpty {
            lines.append("advertise:")
            lines += advertise.map { "  - \(YAMLText.quote($0.description))" }
        }
        lines.append("agent_certificate_seconds: \(Int(agentCertificateSeconds))")
        lines.append("token_ttl_seconds: \(Int(tokenTtlSeconds))")
        lines.append("agent_down_after_seconds: \(Int(agentDownAfterSeconds))")
        return lines.joined(separator: "\n") + "\n"
    }
}
