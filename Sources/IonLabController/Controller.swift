import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabControllerConfig
import IonLabDashboard
import IonLabPKI
import IonLabWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The controller daemon, composed once at start: each service gets the few others it needs, and nothing
/// reaches back into the controller. `run` serves agents and the admin socket with them.
public final class Controller: Sendable {
    public let paths: StatePaths
    public let config: ControllerConfig
    let store: Store
    let events: EventLog
    let serverIdentity: Identity
    let sessions: SessionRegistry
    let jobs: JobLedger
    let enrollment: Enrollment
    let agents: AgentDirectory
    let vms: VMManager
    let fleets: FleetRunner
    let fleetStatus: FleetStatus
    let forwards: ForwardManager
    let group: EventLoopGroup
    let logger: Logger
    /// Prometheus metrics, served with `run(http:)`.
    public let metrics: LabMetrics

    /// Opens an initialized state directory.
    public init(paths: StatePaths, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) throws {
        guard paths.isInitialized else {
            throw ControllerError("\(paths.directory) is not initialized: run `ionlab init` first")
        }
        let config = FileManager.default.fileExists(atPath: paths.config) ? try ControllerConfig.load(path: paths.config) : ControllerConfig()
        let ca = CertificateAuthority(identity: try Identity.load(directory: paths.directory, name: paths.caName))
        let store = try Store(path: paths.database)
        let metrics = LabMetrics()
        let events = EventLog(store: store, logger: logger, metrics: metrics)
        let sessions = SessionRegistry(changes: ChangeSignal())
        let jobs = JobLedger(store: store, events: events, logger: logger)
        let enrollment = Enrollment(ca: ca, store: store, events: events, config: config)
        let agents = AgentDirectory(store: store, sessions: sessions, events: events)
        let vms = VMManager(config: config, paths: paths, store: store, events: events, connections: BackendConnections(),
                            enrollment: enrollment, agents: agents, sessions: sessions)
        self.paths = paths
        self.config = config
        self.serverIdentity = try Self.serverIdentity(paths: paths, ca: ca, logger: logger)
        self.store = store
        self.events = events
        self.sessions = sessions
        self.jobs = jobs
        self.enrollment = enrollment
        self.agents = agents
        self.vms = vms
        self.forwards = ForwardManager(store: store, sessions: sessions, group: group, logger: logger)
        self.fleets = FleetRunner(store: store, events: events, secrets: try SecretDigest.load(paths: paths), provisioner: vms,
                                  agents: SessionExecutor(sessions: sessions, jobs: jobs), forwards: forwards,
                                  pictures: "\(paths.directory)/pictures", screens: vms)
        self.fleetStatus = FleetStatus(store: store, sessions: sessions, downAfterSeconds: config.agentDownAfterSeconds)
        self.group = group
        self.logger = logger
        self.metrics = metrics
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

    /// Serves agents and the admin socket (and, given `http`, the dashboard's HTTP side) until the task is cancelled.
    public func run(http: Endpoint? = nil, onReady: @Sendable () -> Void = {}) async throws {
        let dashboard = try http.map { endpoint in
            DashboardServer(host: endpoint.host, port: endpoint.port, token: try DashboardToken.loadOrCreate(paths), metrics: metrics,
                            source: ControllerDashboard(controller: self))
        }
        let listener = try await AgentListener.bind(
            AgentListener.Services(enrollment: enrollment, sessions: sessions, jobs: jobs, events: events, store: store, config: config, logger: logger),
            identity: serverIdentity, group: group)
        let admin = try await AdminServer.bind(controller: self)
        events.emit(.controllerStarted, "listening on \(config.listen) for agents, \(paths.adminSocket) for the CLI")
        await forwards.restore()
        onReady()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await listener.run() }
            group.addTask { try await admin.run() }
            if let dashboard {
                let logger = self.logger
                group.addTask {
                    try await dashboard.run { port in logger.notice("serving the dashboard on http://\(dashboard.host):\(port)") }
                }
            }
            group.addTask { try await self.watchHeartbeats() }
            group.addTask { try await self.pruneHistory() }
            group.addTask { await self.vms.probeBackends() }
            // VMs still booting when the controller last stopped are watched again until ready.
            for vm in try store.vms() where vm.state == .provisioning {
                group.addTask { await self.vms.followBoot(vm) }
            }
        }
    }

    /// The present, for a scrape: agents by state, and how long ago each connected agent was last heard.
    func agentsSnapshot() -> LabMetrics.Snapshot {
        do {
            let statuses = try agents.statuses()
            let now = Date()
            return LabMetrics.Snapshot(
                agentsByState: Dictionary(statuses.map { ($0.state.rawValue, 1) }, uniquingKeysWith: +),
                heartbeatAgeSeconds: Dictionary(uniqueKeysWithValues: statuses.compactMap { status in
                    guard status.state == .connected, let seen = status.lastSeen else { return nil }
                    return (status.name, max(0, now.timeIntervalSince(seen)))
                }))
        } catch {
            logger.error("cannot read the agents for /metrics: \(error)")
            return LabMetrics.Snapshot(agentsByState: [:], heartbeatAgeSeconds: [:])
        }
    }

    /// Reverts a VM to a snapshot. A snapshot of a shut-off VM leaves it shut off, which its events then say.
    func revert(_ name: String, to snapshot: String) async throws -> VMRecord {
        let record = try await vms.revert(name, to: snapshot)
        if record.state == .stopped { events.emit(.vmStopped, agent: name, "shut off, as snapshot \(snapshot) has it") }
        return record
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
