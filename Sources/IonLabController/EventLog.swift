import Foundation
import IonLabWire
import Logging
import NIOConcurrencyHelpers

/// The kinds of events the controller records.
public enum EventKind: String, Sendable {
    case controllerStarted = "controller.started"
    case tokenCreated = "token.created"
    case agentEnrolled = "agent.enrolled"
    case agentConnected = "agent.connected"
    case agentDisconnected = "agent.disconnected"
    case agentRefused = "agent.refused"
    case agentRevoked = "agent.revoked"
    case agentDown = "agent.down"
    case agentUp = "agent.up"
    case certificateRenewed = "agent.certificate-renewed"
    case jobStarted = "job.started"
    case jobFinished = "job.finished"
    case jobLost = "job.lost"
    case protocolError = "protocol.error"
    case vmProvisioning = "vm.provisioning"
    case vmDefined = "vm.defined"
    case vmStarted = "vm.started"
    case vmKernelUp = "vm.kernel-up"
    case vmCloudInit = "vm.cloud-init"
    case vmAgentInstalled = "vm.agent-installed"
    case vmReady = "vm.ready"
    case vmFailed = "vm.failed"
    case vmDestroyed = "vm.destroyed"
    case vmAdopted = "vm.adopted"
    case fleetStarted = "fleet.started"
    case fleetPlaced = "fleet.placed"
    case healthCheck = "health.check"
    case stepStarted = "step.started"
    case stepDone = "step.done"
    case stepSkipped = "step.skipped"
    case stepFailed = "step.failed"
    case packageInstalling = "package.installing"
    case packageInstalled = "package.installed"
    case remoteDesktopReady = "remote-desktop.ready"
    case deploying = "deploy.started"
    case deployed = "deploy.done"
    case serviceStarted = "service.started"
    case verificationComplete = "verify.complete"
    case warning = "fleet.warning"
    case error = "fleet.error"
    case vmWorkflowDone = "vm.workflow-done"
    case fleetComplete = "fleet.complete"
    case fleetDown = "fleet.down"
}

/// The persistent event stream: every event is stored, logged, then handed to live followers in order.
public final class EventLog: Sendable {
    let store: Store
    let logger: Logger
    private let state = NIOLockedValueBox<[UUID: AsyncStream<Event>.Continuation]>([:])
    /// Which fleet each fleet VM's agent belongs to, so that its events carry the fleet.
    private let fleets = NIOLockedValueBox<[String: String]>([:])

    init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// From now on, events of `agent` carry `fleet` (nil: none).
    func assign(agent: String, fleet: String?) {
        fleets.withLockedValue { $0[agent] = fleet }
    }

    /// Records an event. Storage failures are logged, never thrown: events must not break operations.
    @discardableResult
    func emit(_ kind: EventKind, agent: String? = nil, job: String? = nil, fleet: String? = nil, _ message: String,
              fields: [String: String] = [:]) -> Event? {
        let fleet = fleet ?? agent.flatMap { agent in fleets.withLockedValue { $0[agent] } }
        // Messages and fields often quote what a guest said: each is kept to a bounded size.
        let event = Event(kind: kind.rawValue, agent: agent, job: job, fleet: fleet, message: Self.bounded(message),
                          fields: Dictionary(fields.prefix(Self.maximumFields).map { (String($0.key.prefix(64)), Self.bounded($0.value)) },
                                             uniquingKeysWith: { first, _ in first }))
        let who = agent.map { "\($0): " } ?? ""
        logger.info("\(kind.rawValue) \(who)\(Format.escaped(event.message))")
        return state.withLockedValue { followers in
            do {
                let stored = try store.append(event)
                for follower in followers.values { follower.yield(stored) }
                return stored
            } catch {
                logger.error("cannot store event \(kind.rawValue): \(error)")
                return nil
            }
        }
    }

    static let maximumFields = 32
    static let maximumText = 4096

    /// At most ``maximumText`` bytes of UTF-8, cut at a character.
    static func bounded(_ text: String) -> String {
        guard text.utf8.count > maximumText else { return text }
        var cut = ""
        for character in text {
            guard cut.utf8.count + character.utf8.count < maximumText - 3 else { break }
            cut.append(character)
        }
        return cut + "…"
    }

    /// Live events from now on. Call `stop` when done.
    func follow() -> (events: AsyncStream<Event>, stop: @Sendable () -> Void) {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingOldest(100_000))
        state.withLockedValue { $0[id] = continuation }
        let stop: @Sendable () -> Void = { [state] in
            state.withLockedValue { $0.removeValue(forKey: id) }?.finish()
        }
        return (stream, stop)
    }
}
