import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabPKI
import IonLabWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The controller daemon: the agent listener, the admin socket, the store and the event stream.
public final class Controller: @unchecked Sendable {
    public let paths: StatePaths
    public let config: ControllerConfig
    let store: Store
    let events: EventLog
    let ca: CertificateAuthority
    let serverIdentity: Identity
    /// Digests that stand in for secrets in whatever is stored.
    let secrets: SecretDigest
    let sessions = SessionRegistry()
    let backendConnections = BackendConnections()
    var vms: VMManager { VMManager(controller: self) }
    private(set) var fleets: FleetRunner!
    let group: EventLoopGroup
    let logger: Logger

    /// Opens an initialized state directory.
    public init(paths: StatePaths, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) throws {
        guard paths.isInitialized else {
            throw ControllerError("\(paths.directory) is not initialized: run `ionlab init` first")
        }
        self.paths = paths
        self.config = FileManager.default.fileExists(atPath: paths.config) ? try ControllerConfig.load(path: paths.config) : ControllerConfig()
        self.ca = CertificateAuthority(identity: try Identity.load(directory: paths.directory, name: paths.caName))
        self.serverIdentity = try Self.serverIdentity(paths: paths, ca: ca, logger: logger)
        self.secrets = try SecretDigest.load(paths: paths)
        self.store = try Store(path: paths.database)
        self.events = EventLog(store: store, logger: logger)
        self.group = group
        self.logger = logger
        self.fleets = FleetRunner(controller: self)
        for vm in try store.vms() where vm.fleet != nil { events.assign(agent: vm.name, fleet: vm.fleet) }
    }

    /// The controller's server certificate, reissued once if it predates certificates that name their role
    /// (agents refuse a server certificate that does not name the controller).
    private static func serverIdentity(paths: StatePaths, ca: CertificateAuthority, logger: Logger) throws -> Identity {
        let identity = try Identity.load(directory: paths.directory, name: paths.serverName)
        if identity.certificate.isControllerCertificate { return identity }
        let fresh = try ca.reissueServerCertificate(replacing: identity.certificate)
        try fresh.save(directory: paths.directory, name: paths.serverName)
        logger.notice("reissued the controller's server certificate so that it names the controller (\(fresh.certificate.serialHex))")
        return fresh
    }

    /// Serves agents and the admin socket until the task is cancelled.
    public func run(onReady: @Sendable () -> Void = {}) async throws {
        let listener = try await AgentListener.bind(controller: self)
        let admin = try await AdminServer.bind(controller: self)
        events.emit(.controllerStarted, "listening on \(config.listen) for agents, \(paths.adminSocket) for the CLI")
        onReady()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await listener.run() }
            group.addTask { try await admin.run() }
            group.addTask { try await self.watchHeartbeats() }
            group.addTask { try await self.pruneHistory() }
            // VMs still booting when the controller last stopped are watched again until ready.
            for vm in try store.vms() where vm.state == .provisioning {
                group.addTask { await self.vms.followBoot(vm) }
            }
        }
    }

    /// Saves heartbeats in batches and marks silent agents down (and up again when they return).
    private func watchHeartbeats() async throws {
        while true {
            try await Task.sleep(for: .seconds(2))
            let now = Date()
            var beats: [(agent: String, seen: Date, health: Health)] = []
            for session in sessions.all {
                if let beat = session.takeUnsavedHeartbeat() { beats.append((session.name, beat.seen, beat.health)) }
                switch session.updateLiveness(now: now, downAfter: config.agentDownAfterSeconds) {
                case .wentDown(let silence):
                    events.emit(.agentDown, agent: session.name, "no heartbeat for \(Int(silence))s")
                case .cameBack, .unchanged:
                    break
                }
            }
            do {
                try store.saveHeartbeats(beats)
            } catch {
                logger.error("cannot save heartbeats: \(error)")
            }
        }
    }

    /// Applies the retention policy at start and every ten minutes.
    private func pruneHistory() async throws {
        let policy = RetentionPolicy(eventCount: config.eventRetentionCount, eventAge: config.eventRetentionDays * 86_400,
                                     jobCount: config.jobRetentionCount, jobAge: config.jobRetentionDays * 86_400,
                                     certificateGrace: config.agentRecoverySeconds + 86_400)
        while true {
            do {
                let pruned = try store.prune(policy)
                if pruned.events + pruned.jobs > 0 {
                    logger.info("retention: removed \(pruned.events) events and \(pruned.jobs) finished jobs beyond the policy")
                }
            } catch {
                logger.error("cannot apply the retention policy: \(error)")
            }
            try await Task.sleep(for: .seconds(600))
        }
    }

    // MARK: Operations behind the admin API

    func createToken(name: String, endpoints: [Endpoint], ttl: Double?) throws -> TokenGrant {
        try AgentName.validate(name)
        let token = EnrollmentToken.generate()
        let expires = Date().addingTimeInterval(ttl ?? config.tokenTtlSeconds)
        try store.addToken(hash: EnrollmentToken.hash(token), agent: name, expires: expires)
        events.emit(.tokenCreated, agent: name, "enrollment token created, valid until \(Format.time(expires))")
        let dial = endpoints.isEmpty ? config.agentEndpoints : endpoints
        return TokenGrant(name: name, token: token, expiresAt: expires, endpoints: dial.map(\.description), caPin: ca.pin.description)
    }

    func revoke(name: String) async throws {
        guard try store.revoke(agent: name) else { throw ControllerError("no agent named '\(name)'") }
        events.emit(.agentRevoked, agent: name, "certificates revoked; its next connection is refused")
        if let session = sessions.session(named: name) {
            await session.refuse(Refusal(.revoked, "agent \(name) was revoked"))
        }
    }

    func statuses() throws -> [AgentStatus] {
        try store.agents().map { record in
            let session = sessions.session(named: record.name)
            let state: AgentStatus.State
            switch record.state {
            case .revoked: state = .revoked
            case .pending: state = .pending
            case .enrolled: state = session == nil ? .disconnected : .connected
            }
            return AgentStatus(name: record.name, state: state, lastSeen: session?.lastHeartbeat ?? record.lastSeen,
                               connectedSince: session?.connectedAt, health: session?.health ?? record.health)
        }
    }

    func connectedSession(_ name: String) throws -> AgentSession {
        if let session = sessions.session(named: name) { return session }
        guard let record = try store.agent(name) else { throw Failure("no agent named '\(name)'") }
        let seen = record.lastSeen.map { ", last seen \(Format.time($0))" } ?? ""
        throw Failure("agent \(name) is not connected (\(record.state.rawValue)\(seen))")
    }

    // MARK: Jobs

    func jobStarted(_ spec: ExecSpec, agent: String) throws {
        try store.jobStarted(id: spec.jobID, agent: agent, argv: spec.argv)
        events.emit(.jobStarted, agent: agent, job: spec.jobID, Format.oneLine(spec.argv.joined(separator: " ")))
    }

    /// Stores a result (once) and emits its event; the agent is told to forget it.
    func jobFinished(_ result: ExecResult, agent: String) {
        do {
            if try store.jobFinished(result, agent: agent) {
                let kind: EventKind = result.outcome == .lost ? .jobLost : .jobFinished
                events.emit(kind, agent: agent, job: result.jobID, result.summary,
                            detail: .job(JobDetail(outcome: result.outcome, exitCode: result.exitCode, output: String(result.outputTail.suffix(2048)))))
            }
        } catch {
            logger.error("cannot store the result of job \(result.jobID): \(error)")
        }
    }
}

/// A controller-side error with a one-line message.
public struct ControllerError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Format {
    /// `127.0.0.1:5000` or `[::1]:5000`.
    static func peer(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "unknown peer" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// ``Format/error(_:)`` for errors of a peer's connection, where a TLS close without notice is common.
    static func connectionError(_ error: Error) -> String {
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls { return "the peer closed the connection" }
        return Format.error(error)
    }
}
