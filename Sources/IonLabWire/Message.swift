/// Every message of the protocol. The agent channel and the admin socket share this vocabulary; each
/// endpoint accepts only the cases that belong to it and answers others with a protocol error.
public enum Message: Codable, Sendable {
    // Handshake and enrollment, on stream 0.
    case hello(Hello)
    case welcome(Welcome)
    case refused(Refusal)
    case enroll(EnrollRequest)
    case enrolled(EnrollResponse)

    // Agent lifecycle, on stream 0.
    case heartbeat(Health)
    case jobReports([ExecResult])
    case jobReportsAck([String])
    case renew(csrPEM: String)
    case renewed(certificatePEM: String)
    /// The answer to the hello of an agent whose certificate expired while it was away (within the recovery
    /// window): it may only `renew` on this connection, with a new key, and reconnect with the new certificate.
    case renewalRequired(String)

    // Requests. Each opens a stream; the stream ends with a final message.
    case exec(ExecSpec)
    case execStarted(jobID: String, pid: Int32)
    case execFinished(ExecResult)
    case stdinEnd
    case cancel
    case put(PutRequest)
    case putReady(path: String)
    case get(GetRequest)
    case entry(TreeEntry)
    case fileEnd(sha256: String)
    case treeEnd(TransferSummary)
    case transferDone(TransferSummary)
    case failure(Failure)

    // Admin socket only.
    case admin(AdminRequest)
    case agents([AgentStatus])
    case token(TokenGrant)
    case events([Event])
    case jobs([JobRecord])
    case fanoutResult(FanoutLine)
    case vms([VMRecord])
    case fleetReport(FleetReport)
    case fleetStatus([VMStatus])
    case ok(String)
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

    public init(protocolVersion: Int = ProtocolVersion.current, role: Role, software: String,
                bootID: String? = nil, runningJobs: [String]? = nil) {
        self.protocolVersion = protocolVersion
        self.role = role
        self.software = software
        self.bootID = bootID
        self.runningJobs = runningJobs
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
