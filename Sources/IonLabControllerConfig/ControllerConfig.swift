import Foundation
import IonLabConfig
import IonLabYAML

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
    /// The libvirt hosts VMs may be placed on.
    public var backends: [BackendConfig]
    /// How long discovery waits for each backend.
    public var probeTimeoutSeconds: Double
    /// The image catalog; relative paths are relative to the state directory.
    public var imageCatalog: String
    /// The agent bundle (`agent-dist/out`: binary, unit, cloud-init files) put on seed ISOs; found automatically when unset.
    public var agentBundle: String?
    /// How long a connection may take from accept to an authenticated session or a finished enrollment.
    public var authenticationTimeoutSeconds: Double
    /// Connections still authenticating, at most; beyond, the oldest is closed for the newest.
    public var maxUnauthenticatedConnections: Int
    /// How long after its certificate expired an agent that was away may still renew it with that certificate.
    public var agentRecoverySeconds: Double
    /// Events kept: the newest this many, none older than this many days.
    public var eventRetentionCount: Int
    public var eventRetentionDays: Double
    /// Finished jobs kept, likewise; a running job is always kept.
    public var jobRetentionCount: Int
    public var jobRetentionDays: Double

    public static let defaultListen = Endpoint(host: "127.0.0.1", port: 7443)

    public init(listen: Endpoint = ControllerConfig.defaultListen, advertise: [Endpoint] = [],
                agentCertificateSeconds: Double = 86_400, tokenTtlSeconds: Double = 7_200, agentDownAfterSeconds: Double = 35,
                backends: [BackendConfig] = BackendConfig.defaultBackends, probeTimeoutSeconds: Double = 45,
                imageCatalog: String = "images.yaml", agentBundle: String? = nil, authenticationTimeoutSeconds: Double = 10,
                maxUnauthenticatedConnections: Int = 256, agentRecoverySeconds: Double = 30 * 86_400,
                eventRetentionCount: Int = 250_000, eventRetentionDays: Double = 30,
                jobRetentionCount: Int = 50_000, jobRetentionDays: Double = 30) {
        self.listen = listen
        self.advertise = advertise
        self.agentCertificateSeconds = agentCertificateSeconds
        self.tokenTtlSeconds = tokenTtlSeconds
        self.agentDownAfterSeconds = agentDownAfterSeconds
        self.backends = backends
        self.probeTimeoutSeconds = probeTimeoutSeconds
        self.imageCatalog = imageCatalog
        self.agentBundle = agentBundle
        self.authenticationTimeoutSeconds = authenticationTimeoutSeconds
        self.maxUnauthenticatedConnections = maxUnauthenticatedConnections
        self.agentRecoverySeconds = agentRecoverySeconds
        self.eventRetentionCount = eventRetentionCount
        self.eventRetentionDays = eventRetentionDays
        self.jobRetentionCount = jobRetentionCount
        self.jobRetentionDays = jobRetentionDays
    }

    enum CodingKeys: String, CodingKey {
        case listen, advertise, agentCertificateSeconds, tokenTtlSeconds, agentDownAfterSeconds
        case backends, probeTimeoutSeconds, imageCatalog, agentBundle
        case authenticationTimeoutSeconds, maxUnauthenticatedConnections, agentRecoverySeconds
        case eventRetentionCount, eventRetentionDays, jobRetentionCount, jobRetentionDays
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
        backends = try container.decodeIfPresent([BackendConfig].self, forKey: .backends, check: Self.checkBackends) ?? defaults.backends
        probeTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .probeTimeoutSeconds, check: Check.seconds)
            ?? defaults.probeTimeoutSeconds
        imageCatalog = try container.decodeIfPresent(String.self, forKey: .imageCatalog, check: Check.nonEmpty) ?? defaults.imageCatalog
        agentBundle = try container.decodeIfPresent(String.self, forKey: .agentBundle, check: Check.absolutePath)
        authenticationTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .authenticationTimeoutSeconds, check: Check.seconds)
            ?? defaults.authenticationTimeoutSeconds
        maxUnauthenticatedConnections = try container.decodeIfPresent(Int.self, forKey: .maxUnauthenticatedConnections,
                                                                      check: Check.range(1...100_000)) ?? defaults.maxUnauthenticatedConnections
        agentRecoverySeconds = try container.decodeIfPresent(Double.self, forKey: .agentRecoverySeconds) { value in
            guard value >= 0, value <= 86_400 * 365 else { throw ValueError("must be 0 (no recovery) to a year of seconds, found \(value)") }
        } ?? defaults.agentRecoverySeconds
        eventRetentionCount = try container.decodeIfPresent(Int.self, forKey: .eventRetentionCount, check: Check.range(100...100_000_000))
            ?? defaults.eventRetentionCount
        eventRetentionDays = try container.decodeIfPresent(Double.self, forKey: .eventRetentionDays, check: Self.checkDays) ?? defaults.eventRetentionDays
        jobRetentionCount = try container.decodeIfPresent(Int.self, forKey: .jobRetentionCount, check: Check.range(100...100_000_000))
            ?? defaults.jobRetentionCount
        jobRetentionDays = try container.decodeIfPresent(Double.self, forKey: .jobRetentionDays, check: Self.checkDays) ?? defaults.jobRetentionDays
    }

    static func checkDays(_ days: Double) throws {
        guard days > 0, days <= 3650 else { throw ValueError("must be more than 0 and at most 3650 days, found \(days)") }
    }

    static func checkBackends(_ backends: [BackendConfig]) throws {
        try Check.nonEmpty(backends)
        var seen = Set<String>()
        for backend in backends where !seen.insert(backend.name).inserted {
            throw ValueError("backend '\(backend.name)' is listed twice")
        }
    }

    public func backend(named name: String?) throws -> BackendConfig {
        guard let name else { return backends[0] }
        guard let backend = backends.first(where: { $0.name == name }) else {
            throw ValueError("no backend '\(name)' in the controller config (known: \(backends.map(\.name).joined(separator: ", ")))")
        }
        return backend
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
        lines.append("probe_timeout_seconds: \(Int(probeTimeoutSeconds))")
        lines.append("image_catalog: \(YAMLText.quote(imageCatalog))")
        if let agentBundle { lines.append("agent_bundle: \(YAMLText.quote(agentBundle))") }
        lines.append("authentication_timeout_seconds: \(Int(authenticationTimeoutSeconds))")
        lines.append("max_unauthenticated_connections: \(maxUnauthenticatedConnections)")
        lines.append("agent_recovery_seconds: \(Int(agentRecoverySeconds))")
        lines.append("event_retention_count: \(eventRetentionCount)")
        lines.append("event_retention_days: \(eventRetentionDays.formatted)")
        lines.append("job_retention_count: \(jobRetentionCount)")
        lines.append("job_retention_days: \(jobRetentionDays.formatted)")
        lines.append("backends:")
        for backend in backends {
            lines.append("  - name: \(YAMLText.quote(backend.name))")
            lines.append("    uri: \(YAMLText.quote(backend.uri))")
            lines.append("    pool: \(YAMLText.quote(backend.pool))")
            lines.append("    pool_path: \(YAMLText.quote(backend.poolPath))")
            lines.append("    network: \(YAMLText.quote(backend.network.description))")
            lines.append("    controller_address: \(YAMLText.quote(backend.controllerAddress))")
            if let type = backend.domainType { lines.append("    domain_type: \(YAMLText.quote(type))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Double {
    /// `30` for whole numbers, `0.5` otherwise: how a person writes it in YAML.
    var formatted: String { self == rounded() ? String(Int(self)) : String(self) }
}
