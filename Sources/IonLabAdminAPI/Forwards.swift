import IonLabConfig

/// A port forward the controller holds: into an agent's machine (it listens on the host), or, `reverse`,
/// out of it (the agent listens in its machine and each connection reaches the target on the host).
public struct ForwardRule: Codable, Sendable, Hashable, CustomStringConvertible {
    public var agent: String
    public var reverse: Bool
    public var ports: PortForward

    public init(agent: String, reverse: Bool = false, ports: PortForward) {
        self.agent = agent
        self.reverse = reverse
        self.ports = ports
    }

    /// What two forwards may not share: a host address, or an address in one agent's machine.
    public struct Key: Codable, Sendable, Hashable, CustomStringConvertible {
        /// The agent whose machine listens; nil when the host does.
        public var agent: String?
        public var listen: Endpoint

        public init(agent: String?, listen: Endpoint) {
            self.agent = agent
            self.listen = listen
        }

        public var description: String { agent.map { "\($0):\(listen)" } ?? "\(listen)" }
    }

    public var key: Key { Key(agent: reverse ? agent : nil, listen: ports.listen) }

    /// `127.0.0.1:8080 → web 127.0.0.1:80`, or `web 127.0.0.1:9000 → 127.0.0.1:3000` for a reverse one.
    public var description: String {
        reverse ? "\(agent) \(ports.listen) → \(ports.target)" : "\(ports.listen) → \(agent) \(ports.target)"
    }
}

/// Who keeps a forward open.
public enum ForwardOwner: Codable, Sendable, Hashable, CustomStringConvertible {
    /// An `ionlab forward` command, while it runs.
    case command
    /// `ionlab forward --keep`: until removed, across controller restarts.
    case kept
    /// A fleet spec's `forwards`: as long as the fleet has the VM.
    case fleet(String)

    public var description: String {
        switch self {
        case .command: "command"
        case .kept: "kept"
        case .fleet(let name): "fleet \(name)"
        }
    }

    /// Whether the controller stores it and opens it again when it restarts.
    public var persists: Bool { self != .command }
}

/// A forward as the controller has it now.
public struct ForwardRecord: Codable, Sendable {
    public enum State: Codable, Sendable, Equatable {
        case listening
        /// A reverse forward whose agent is away: it listens again when the agent is back.
        case waitingForAgent
        case failed(String)
    }

    public var rule: ForwardRule
    public var owner: ForwardOwner
    public var state: State
    public var openConnections: Int
    public var totalConnections: Int

    public init(rule: ForwardRule, owner: ForwardOwner, state: State, openConnections: Int, totalConnections: Int) {
        self.rule = rule
        self.owner = owner
        self.state = state
        self.openConnections = openConnections
        self.totalConnections = totalConnections
    }

    public var stateText: String {
        switch state {
        case .listening: "listening"
        case .waitingForAgent: "waiting for the agent"
        case .failed(let reason): "failed: \(reason)"
        }
    }
}
