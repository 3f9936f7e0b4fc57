import Foundation
import IonLabConfig

/// One libvirt host the controller may use, as listed under `backends:` in `controller.yaml`.
public struct BackendConfig: Codable, Sendable, Equatable {
    /// The name used by `--backend` and in listings.
    public var name: String
    /// The libvirt URI: `qemu:///system`, `qemu+ssh://user@host/system`, `test:///default`, ….
    public var uri: String
    /// The storage pool for VM volumes; ionlab creates it as a directory pool at `poolPath` when missing.
    public var pool: String
    public var poolPath: String
    /// How guests are networked: `user` (QEMU user-mode, no bridge) or `network:NAME` (a libvirt network).
    public var network: GuestNetwork
    /// The host guests dial to reach the controller; under user-mode networking 10.0.2.2 is the host's loopback.
    public var controllerAddress: String
    /// Forces a domain type (`qemu` or `kvm`); by default the first one discovery verified, preferring kvm.
    public var domainType: String?

    public init(name: String, uri: String, pool: String = "ionlab", poolPath: String = "/var/lib/libvirt/images/ionlab",
                network: GuestNetwork = .user, controllerAddress: String = "10.0.2.2", domainType: String? = nil) {
        self.name = name
        self.uri = uri
        self.pool = pool
        self.poolPath = poolPath
        self.network = network
        self.controllerAddress = controllerAddress
        self.domainType = domainType
    }

    public static let defaultBackends = [BackendConfig(name: "local", uri: "qemu:///system")]

    enum CodingKeys: String, CodingKey { case name, uri, pool, poolPath, network, controllerAddress, domainType }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let name = try container.decode(String.self, forKey: .name, check: AgentName.validate)
        let uri = try container.decode(String.self, forKey: .uri, check: Self.checkURI)
        let defaults = BackendConfig(name: name, uri: uri)
        self.init(name: name, uri: uri,
                  pool: try container.decodeIfPresent(String.self, forKey: .pool, check: AgentName.validate) ?? defaults.pool,
                  poolPath: try container.decodeIfPresent(String.self, forKey: .poolPath, check: Check.absolutePath) ?? defaults.poolPath,
                  network: try container.decodeIfPresent(GuestNetwork.self, forKey: .network) ?? defaults.network,
                  controllerAddress: try container.decodeIfPresent(String.self, forKey: .controllerAddress, check: Check.nonEmpty)
                      ?? defaults.controllerAddress,
                  domainType: try container.decodeIfPresent(String.self, forKey: .domainType, check: Self.checkDomainType))
    }

    static func checkURI(_ uri: String) throws {
        guard let colon = uri.firstIndex(of: ":"), uri[colon...].hasPrefix("://"), colon > uri.startIndex else {
            throw ValueError("expected a libvirt URI such as qemu:///system, found '\(uri)'")
        }
    }

    static func checkDomainType(_ type: String) throws {
        guard ["qemu", "kvm", "test"].contains(type) else { throw ValueError("expected qemu or kvm, found '\(type)'") }
    }
}

/// How a guest's network interface is wired.
public enum GuestNetwork: TextValue, Sendable, Equatable {
    /// QEMU user-mode networking: no bridge, no address on the host; the guest reaches the host's loopback as 10.0.2.2.
    case user
    /// A libvirt network, by name.
    case network(String)

    public init(parsing text: String) throws {
        if text == "user" {
            self = .user
        } else if text.hasPrefix("network:"), text.count > 8 {
            self = .network(String(text.dropFirst(8)))
        } else {
            throw ValueError("expected 'user' or 'network:NAME', found '\(text)'")
        }
    }

    public var description: String {
        switch self {
        case .user: "user"
        case .network(let name): "network:\(name)"
        }
    }
}
