import Foundation
import IonLabAgentProtocol
import IonLabSpec

/// What the CLI asks the controller over the admin socket: each request opens a stream of its own.
public enum AdminRequest: Codable, Sendable {
    /// Replies with `agents` in parts of at most 500, then `ok`.
    case listAgents
    case createToken(name: String, endpoints: [String], ttlSeconds: Double?)
    case revoke(name: String)
    /// Streams `execStarted`, output data and `execFinished`, like the agent does.
    case exec(agent: String, spec: ExecSpec)
    /// Streams one `fanoutResult` per targeted agent, then `ok`.
    case execAll(spec: ExecSpec, target: ExecTarget)
    /// A tree stream from the CLI follows, relayed to the agent.
    case put(agent: String, request: PutRequest)
    /// A tree stream from the agent is relayed back to the CLI.
    case get(agent: String, request: GetRequest)
    /// Replays the events that match, then streams new ones if `follow`.
    case events(EventQuery)
    case jobs(agent: String?, limit: Int)
    /// Streams the VM's timeline as `events` until it is ready (or only until it started, without `wait`),
    /// then `vms` with its record.
    case vmCreate(VMCreateRequest)
    case vmList
    case vmDestroy(name: String)
    /// Brings a fleet up (or converges it): streams the fleet's `events` as they happen, then `fleetReport`.
    case fleetUp(FleetUpRequest)
    /// Replies `fleetStatus` for one fleet's VMs, or for every VM.
    case fleetStatus(name: String?)
    /// Destroys a fleet's VMs in parallel and forgets the fleet: streams `events`, then `ok`.
    case fleetDown(name: String)
    /// Creates `name` with the image, backend and resources of `source`; replies like `vmCreate`.
    case vmClone(source: String, name: String, wait: Bool)
    /// Stops, starts, restarts, suspends or resumes a VM. Streams its events, then `vms` with its record;
    /// with `wait`, a start or restart replies once the VM is ready again.
    case vmPower(name: String, action: PowerAction, timeoutSeconds: Double?, wait: Bool)
    /// Replies `vmInfo`: the record, the domain's state as libvirt has it, and the agent.
    case vmInfo(name: String)
    /// Takes, lists, reverts to or deletes a VM's snapshots: `snapshots` then `ok` for a list; a revert
    /// streams `events` then `vms` like `vmPower`; the others reply `ok`.
    case vmSnapshot(name: String, action: SnapshotAction)
    /// Replies `screenshot`, the PNG as data, then `ok`.
    case vmScreenshot(name: String)
    /// Replies `display`: where the graphical console listens, and its password.
    case vmDisplay(name: String)
    /// Presses keys, types or waits for a text on a VM's screen, through the hypervisor: replies `desktop`.
    case vmDesktop(name: String, input: DesktopInput)
    /// A fleet's report as one self-contained HTML page: replies `document`, the page as data, then `ok`.
    case report(fleet: String)
    /// Opens a port forward. A kept one replies `ok` and lives on in the controller; otherwise the reply is
    /// `forwards` with it, then a `notice` for each connection that failed, until the CLI closes the stream.
    case forward(ForwardRule, keep: Bool)
    /// Replies `forwards` with every forward open now, then `ok`.
    case forwards
    /// Closes a forward and forgets it if it was kept.
    case unforward(ForwardRule.Key)
}

/// What `vm stop | start | restart | suspend | resume` asks.
public enum PowerAction: String, Codable, Sendable, CaseIterable {
    /// Shut down through ACPI; forced off after the timeout.
    case stop
    case start
    /// A stop, then a start.
    case restart
    case suspend
    case resume
}

/// Which agents a fan-out reaches.
public enum ExecTarget: Codable, Sendable, Equatable {
    /// Every enrolled agent.
    case all
    /// The VMs of a fleet.
    case fleet(String)
    /// These agents, by name.
    case agents([String])
}

/// Which events to replay and follow.
public struct EventQuery: Codable, Sendable, Equatable {
    /// After this sequence number.
    public var afterSeq: Int64
    /// At or after this time.
    public var since: Date?
    /// Only the events of this fleet (and of its VMs' agents).
    public var fleet: String?
    public var follow: Bool

    public init(afterSeq: Int64 = 0, since: Date? = nil, fleet: String? = nil, follow: Bool = false) {
        self.afterSeq = afterSeq
        self.since = since
        self.fleet = fleet
        self.follow = follow
    }
}

/// An agent as the controller knows it.
public struct AgentStatus: Codable, Sendable {
    public enum State: String, Codable, Sendable { case pending, connected, disconnected, revoked }
    public var name: String
    public var state: State
    public var lastSeen: Date?
    public var connectedSince: Date?
    public var health: Health?
    public var certificateSerial: String?
    public var certificateExpires: Date?

    public init(name: String, state: State, lastSeen: Date? = nil, connectedSince: Date? = nil,
                health: Health? = nil, certificateSerial: String? = nil, certificateExpires: Date? = nil) {
        self.name = name
        self.state = state
        self.lastSeen = lastSeen
        self.connectedSince = connectedSince
        self.health = health
        self.certificateSerial = certificateSerial
        self.certificateExpires = certificateExpires
    }
}

/// A freshly minted enrollment token and what an agent needs besides it.
public struct TokenGrant: Codable, Sendable {
    public var name: String
    public var token: String
    public var expiresAt: Date
    public var endpoints: [String]
    /// SHA-256 of the CA's SubjectPublicKeyInfo, as "sha256:HEX".
    public var caPin: String

    public init(name: String, token: String, expiresAt: Date, endpoints: [String], caPin: String) {
        self.name = name
        self.token = token
        self.expiresAt = expiresAt
        self.endpoints = endpoints
        self.caPin = caPin
    }
}

/// A job as the store keeps it.
public struct JobRecord: Codable, Sendable {
    public var jobID: String
    public var agent: String
    public var argv: [String]
    public var startedAt: Date
    public var finishedAt: Date?
    public var result: ExecResult?

    public init(jobID: String, agent: String, argv: [String], startedAt: Date, finishedAt: Date? = nil,
                result: ExecResult? = nil) {
        self.jobID = jobID
        self.agent = agent
        self.argv = argv
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.result = result
    }
}

/// One agent's outcome in `exec --all`: a result, or why there is none.
public struct FanoutLine: Codable, Sendable {
    public var agent: String
    public var result: ExecResult?
    public var error: String?
    public init(agent: String, result: ExecResult? = nil, error: String? = nil) {
        self.agent = agent
        self.result = result
        self.error = error
    }
}
