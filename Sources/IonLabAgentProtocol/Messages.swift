import IonLabConfig
import IonLabWire

/// What an agent sends the controller on stream 0.
public enum AgentControl: WireMessage {
    /// The first message on every connection (an admin client sends it too).
    case hello(Hello)
    /// After `hello`, on a connection without a client certificate: a token and a CSR.
    case enroll(EnrollRequest)
    case heartbeat(Health)
    /// Results of jobs, until the controller acknowledges them.
    case jobReports([ExecResult])
    /// A CSR for a new certificate with a new key: when the current one is two-thirds through its life, or
    /// when the controller answered `hello` with `renewalRequired`.
    case renew(csrPEM: String)
}

/// What the controller sends an agent on stream 0.
public enum ControllerControl: WireMessage {
    case welcome(Welcome)
    case refused(Refusal)
    case enrolled(EnrollResponse)
    case jobReportsAck([String])
    case renewed(certificatePEM: String)
    /// The answer to the hello of an agent whose certificate expired while it was away (within the recovery
    /// window): it may only `renew` on this connection, with a new key, and reconnect with the new certificate.
    case renewalRequired(String)
}

/// What the controller opens a stream of the agent channel with. The agent opens none.
public enum AgentRequest: WireMessage {
    /// Runs a job: `execStarted`, its output as data, then `execFinished`; stdin and `cancel` flow back.
    case exec(ExecSpec)
    /// Copies a tree into the agent's machine: `putReady`, the tree from the controller, then `transferDone`.
    case put(PutRequest)
    /// Copies a tree out: the tree from the agent, then `transferDone` from the controller.
    case get(GetRequest)
    /// Opens a TCP connection from the agent's machine (a port forward): its bytes flow both ways as data,
    /// `eof` half-closes a direction, and `failure` ends it (refused, unreachable).
    case connect(Endpoint)
    /// Listens in the agent's machine (a reverse port forward): `listening`, then `accepted` for each
    /// connection, which the controller joins with an `attach` stream of its own, so that the agent never
    /// opens a stream and the controller decides what it takes on.
    case listen(Endpoint)
    /// Joins a connection that a `listen` stream announced; from then on as `connect`.
    case attach(connection: UInt64)
}

/// What request streams of the agent channel carry after the request. A stream ends with `execFinished`,
/// `transferDone` or `failure`.
public enum AgentStreamMessage: WireMessage {
    case execStarted(jobID: String, pid: Int32)
    case execFinished(ExecResult)
    case stdinEnd
    case cancel
    /// The local terminal of an exec on a pseudo-terminal changed size.
    case resize(rows: UInt16, columns: UInt16)
    case putReady(path: String)
    case entry(TreeEntry)
    case fileEnd(sha256: String)
    case treeEnd(TransferSummary)
    case transferDone(TransferSummary)
    /// The sender of a forwarded connection's bytes has no more (a TCP half-close).
    case eof
    /// A reverse forward listens on this port.
    case listening(port: UInt16)
    /// A reverse forward accepted a connection, to be joined with `attach`.
    case accepted(connection: UInt64)
    case failure(Failure)
}

/// The agent's end of the agent channel.
public enum AgentRole: WireRole {
    public typealias Sent = AgentControl
    public typealias Received = ControllerControl
    public typealias Opens = NoMessage
    public typealias Accepts = AgentRequest
    public typealias StreamMessage = AgentStreamMessage
}

/// The controller's end of the agent channel.
public enum ControllerRole: WireRole {
    public typealias Sent = ControllerControl
    public typealias Received = AgentControl
    public typealias Opens = AgentRequest
    public typealias Accepts = NoMessage
    public typealias StreamMessage = AgentStreamMessage
}

/// A request stream of the agent channel.
public typealias AgentStream = WireStream<AgentStreamMessage>

/// A stream vocabulary that carries agent stream messages: the agent channel's own, and the admin API's,
/// which relays exec output and tree transfers between the CLI and an agent. Transfers and relays are
/// written once against it.
public protocol AgentStreamCarrier: WireMessage {
    init(carrying message: AgentStreamMessage)
    /// The agent stream message this one carries, if it carries one.
    var carried: AgentStreamMessage? { get }
}

extension AgentStreamMessage: AgentStreamCarrier {
    public init(carrying message: AgentStreamMessage) { self = message }
    public var carried: AgentStreamMessage? { self }
}

/// The first message on every connection, in both directions.
public struct Hello: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable { case agent, controller, admin }
    public var protocolVersion: Int
    public var role: Role
    public var software: String
    /// Set by an agent: the boot it runs in, and jobs still running or finished but unreported.
    public var bootID: String?
    public var runningJobs: [String]?
    /// Set by an agent: how long its process has run, so the controller can place its start in a boot's
    /// timeline.
    public var ageSeconds: Double?

    public init(protocolVersion: Int = ProtocolVersion.current, role: Role, software: String,
                bootID: String? = nil, runningJobs: [String]? = nil, ageSeconds: Double? = nil) {
        self.protocolVersion = protocolVersion
        self.role = role
        self.software = software
        self.bootID = bootID
        self.runningJobs = runningJobs
        self.ageSeconds = ageSeconds
    }
}

/// The protocol versions this build speaks.
public enum ProtocolVersion {
    public static let current = 1
    public static let supported: ClosedRange<Int> = 1...1

    /// Checks a peer's announced version.
    public static func check(_ peer: Int) throws {
        guard supported.contains(peer) else { throw WireError.unsupportedVersion(peer: peer, supported: supported) }
    }
}

/// The controller's answer to an authenticated agent or admin hello.
public struct Welcome: Codable, Sendable {
    public var protocolVersion: Int
    public var name: String
    public var software: String
    public init(protocolVersion: Int = ProtocolVersion.current, name: String, software: String) {
        self.protocolVersion = protocolVersion
        self.name = name
        self.software = software
    }
}

/// Why a peer refuses a connection or an enrollment.
public struct Refusal: Codable, Sendable, Error, CustomStringConvertible {
    public enum Code: String, Codable, Sendable {
        case unsupportedVersion, revoked, unknownAgent, untrustedCertificate, expiredCertificate
        case badToken, tokenExpired, tokenUsed, tokenForAnotherAgent, protocolError, notEnrolled, busy
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Terminal refusals mean retrying cannot help; the agent stops.
    public var isTerminal: Bool { code != .busy }
    public var description: String { message }
}

public struct EnrollRequest: Codable, Sendable {
    public var name: String
    public var token: String
    public var csrPEM: String
    public init(name: String, token: String, csrPEM: String) {
        self.name = name
        self.token = token
        self.csrPEM = csrPEM
    }
}

public struct EnrollResponse: Codable, Sendable {
    public var certificatePEM: String
    public var caPEM: String
    public init(certificatePEM: String, caPEM: String) {
        self.certificatePEM = certificatePEM
        self.caPEM = caPEM
    }
}

/// A request-level error that ends one stream but not the connection.
public struct Failure: Codable, Sendable, Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
