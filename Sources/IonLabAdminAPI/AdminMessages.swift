import IonLabAgentProtocol
import IonLabWire

/// What the CLI sends the controller on stream 0 of the admin socket: only its hello.
public enum AdminClientControl: WireMessage {
    case hello(Hello)

    public func check() throws {
        switch self {
        case .hello(let hello): try hello.check()
        }
    }
}

/// What the controller answers on stream 0 of the admin socket.
public enum AdminServerControl: WireMessage {
    case welcome(Welcome)
    case refused(Refusal)

    public func check() throws {
        switch self {
        case .welcome(let welcome): try welcome.check()
        case .refused(let refusal): try refusal.check()
        }
    }
}

/// What an admin request stream carries after the CLI's request (``AdminRequest``): the controller's
/// replies, and, for exec and copies, the agent's stream messages relayed as they are.
public enum AdminStreamMessage: WireMessage {
    /// An exec's progress or a tree transfer's items, relayed between the CLI and an agent.
    case agent(AgentStreamMessage)
    case agents([AgentStatus])
    case token(TokenGrant)
    case events([Event])
    case jobs([JobRecord])
    case fanoutResult(FanoutLine)
    case vms([VMRecord])
    case fleetReport(FleetReport)
    case fleetStatus([VMStatus])
    case vmInfo(VMInfo)
    case forwards([ForwardRecord])
    case snapshots([SnapshotInfo])
    case screenshot(ScreenshotHeader)
    case display(DisplayInfo)
    case desktop(DesktopResult)
    case document(DocumentHeader)
    /// A line for the user while a request goes on: a forwarded connection that failed, say. It may quote a
    /// guest.
    case notice(String)
    /// The end of a request that succeeded, with a line for the user.
    case ok(String)
    /// The end of a request that failed.
    case failure(Failure)

    /// Relayed agent messages were checked as the controller received them; they are checked again here,
    /// and so are failures, which may quote a guest. The rest the controller composes itself.
    public func check() throws {
        switch self {
        case .agent(let message): try message.check()
        case .failure(let failure): try failure.check()
        case .notice(let line): try PeerText.length(line, "notice", max: PeerLimits.message)
        case .agents, .token, .events, .jobs, .fanoutResult, .vms, .fleetReport, .fleetStatus, .vmInfo, .forwards, .snapshots, .screenshot, .display, .desktop, .document, .ok: break
        }
    }
}

extension AdminStreamMessage: AgentStreamCarrier {
    /// A relayed failure is the request's failure.
    public init(carrying message: AgentStreamMessage) {
        if case .failure(let failure) = message {
            self = .failure(failure)
        } else {
            self = .agent(message)
        }
    }

    public var carried: AgentStreamMessage? {
        switch self {
        case .agent(let message): message
        case .failure(let failure): .failure(failure)
        default: nil
        }
    }
}

/// The CLI's end of the admin socket.
public enum AdminClientRole: WireRole {
    public typealias Sent = AdminClientControl
    public typealias Received = AdminServerControl
    public typealias Opens = AdminRequest
    public typealias Accepts = NoMessage
    public typealias StreamMessage = AdminStreamMessage
}

/// The controller's end of the admin socket.
public enum AdminServerRole: WireRole {
    public typealias Sent = AdminServerControl
    public typealias Received = AdminClientControl
    public typealias Opens = NoMessage
    public typealias Accepts = AdminRequest
    public typealias StreamMessage = AdminStreamMessage
}

/// A request stream of the admin socket.
public typealias AdminStream = WireStream<AdminStreamMessage>

extension AdminRequest: WireMessage {
    /// Requests are checked where they are served, each failing only its own stream.
    public func check() throws {}
}
