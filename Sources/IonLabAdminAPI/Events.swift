import Foundation
import IonLabAgentProtocol

/// The kinds of events the controller records. The CLI switches over them: a renamed kind is a compile error
/// on both sides, and the raw values are what the store and `events --json` hold.
public enum EventKind: String, Codable, Sendable, CaseIterable {
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
    /// cloud-init's stages as the console shows them: local (before the network), network, config, final, done.
    case vmCloudInit = "vm.cloud-init"
    case vmCloudInitNetwork = "vm.cloud-init-network"
    case vmCloudInitConfig = "vm.cloud-init-config"
    case vmCloudInitFinal = "vm.cloud-init-final"
    case vmCloudInitDone = "vm.cloud-init-done"
    case vmAgentInstalled = "vm.agent-installed"
    case vmReady = "vm.ready"
    case vmFailed = "vm.failed"
    case vmDestroyed = "vm.destroyed"
    case vmAdopted = "vm.adopted"
    /// A fleet's port forwards for the VM are open (or were already).
    case vmForwards = "vm.forwards"
    case vmSnapshotTaken = "vm.snapshot-taken"
    case vmSnapshotDeleted = "vm.snapshot-deleted"
    /// Put back as a snapshot has it: a running snapshot resumes, and its agent reconnects.
    case vmReverted = "vm.reverted"
    /// A `desktop` gate passed: the user's compositor answers, the session bus runs, the portal is up.
    case desktopReady = "desktop.ready"
    case vmStopped = "vm.stopped"
    case vmSuspended = "vm.suspended"
    case vmResumed = "vm.resumed"
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
    /// A kind this build does not know (a stored event of an older or newer version).
    case unrecognized = "unrecognized"
}

extension EventKind {
    /// Reads a stored kind; one this build does not know reads as ``unrecognized``.
    public init(stored text: String) {
        self = EventKind(rawValue: text) ?? .unrecognized
    }

    public init(from decoder: Decoder) throws {
        self.init(stored: try decoder.singleValueContainer().decode(String.self))
    }
}

/// One entry of the controller's persistent event stream.
public struct Event: Codable, Sendable, Equatable {
    public var seq: Int64
    public var time: Date
    public var kind: EventKind
    public var agent: String?
    public var job: String?
    /// The fleet of the agent or VM, if it belongs to one.
    public var fleet: String?
    public var message: String
    public var detail: EventDetail?

    public init(seq: Int64 = 0, time: Date = Date(), kind: EventKind, agent: String? = nil, job: String? = nil, fleet: String? = nil,
                message: String, detail: EventDetail? = nil) {
        self.seq = seq
        self.time = time
        self.kind = kind
        self.agent = agent
        self.job = job
        self.fleet = fleet
        self.message = message
        self.detail = detail
    }
}

/// What an event carries beyond its line of text, typed by what it is about. The CLI reads these, never
/// the text. In JSON (the store, `events --json`) a detail is one key, its case, holding its payload:
/// `{"step": {"number": 2, "attempt": 1}}`.
public enum EventDetail: Sendable, Equatable {
    /// A workflow step (`step.*`).
    case step(StepDetail)
    /// How long it took since the phase began (a VM's timeline, a VM's workflow).
    case elapsed(Elapsed)
    /// An `up` began.
    case fleetStarted(FleetStart)
    /// Where each VM of a fleet was placed: VM name → backend.
    case placement([String: String])
    /// An `up` ended.
    case fleetComplete(FleetSummary)
    /// A VM of a fleet did not finish its workflow.
    case vmOutcome(VMEnd)
    case health(Health)
    case job(JobDetail)
    case transfer(TransferSummary)
    case packages(PackagesDetail)
    case service(ServiceDetail)
    case verification(VerificationDetail)
    /// Facts a step recorded about a VM (a RustDesk ID and version).
    case facts([String: String])
    case certificate(CertificateDetail)
    case connection(ConnectionDetail)
    /// Repeated refusals not recorded one by one.
    case suppressed(Suppressed)
    case instance(InstanceDetail)
}

extension EventDetail: Codable {
    enum Key: String, CodingKey {
        case step, elapsed, fleetStarted, placement, fleetComplete, vmOutcome, health, job, transfer, packages, service
        case verification, facts, certificate, connection, suppressed, instance
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        guard container.allKeys.count == 1, let key = container.allKeys.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "an event detail has exactly one kind"))
        }
        switch key {
        case .step: self = .step(try container.decode(StepDetail.self, forKey: key))
        case .elapsed: self = .elapsed(try container.decode(Elapsed.self, forKey: key))
        case .fleetStarted: self = .fleetStarted(try container.decode(FleetStart.self, forKey: key))
        case .placement: self = .placement(try container.decode([String: String].self, forKey: key))
        case .fleetComplete: self = .fleetComplete(try container.decode(FleetSummary.self, forKey: key))
        case .vmOutcome: self = .vmOutcome(try container.decode(VMEnd.self, forKey: key))
        case .health: self = .health(try container.decode(Health.self, forKey: key))
        case .job: self = .job(try container.decode(JobDetail.self, forKey: key))
        case .transfer: self = .transfer(try container.decode(TransferSummary.self, forKey: key))
        case .packages: self = .packages(try container.decode(PackagesDetail.self, forKey: key))
        case .service: self = .service(try container.decode(ServiceDetail.self, forKey: key))
        case .verification: self = .verification(try container.decode(VerificationDetail.self, forKey: key))
        case .facts: self = .facts(try container.decode([String: String].self, forKey: key))
        case .certificate: self = .certificate(try container.decode(CertificateDetail.self, forKey: key))
        case .connection: self = .connection(try container.decode(ConnectionDetail.self, forKey: key))
        case .suppressed: self = .suppressed(try container.decode(Suppressed.self, forKey: key))
        case .instance: self = .instance(try container.decode(InstanceDetail.self, forKey: key))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        switch self {
        case .step(let value): try container.encode(value, forKey: .step)
        case .elapsed(let value): try container.encode(value, forKey: .elapsed)
        case .fleetStarted(let value): try container.encode(value, forKey: .fleetStarted)
        case .placement(let value): try container.encode(value, forKey: .placement)
        case .fleetComplete(let value): try container.encode(value, forKey: .fleetComplete)
        case .vmOutcome(let value): try container.encode(value, forKey: .vmOutcome)
        case .health(let value): try container.encode(value, forKey: .health)
        case .job(let value): try container.encode(value, forKey: .job)
        case .transfer(let value): try container.encode(value, forKey: .transfer)
        case .packages(let value): try container.encode(value, forKey: .packages)
        case .service(let value): try container.encode(value, forKey: .service)
        case .verification(let value): try container.encode(value, forKey: .verification)
        case .facts(let value): try container.encode(value, forKey: .facts)
        case .certificate(let value): try container.encode(value, forKey: .certificate)
        case .connection(let value): try container.encode(value, forKey: .connection)
        case .suppressed(let value): try container.encode(value, forKey: .suppressed)
        case .instance(let value): try container.encode(value, forKey: .instance)
        }
    }
}

public struct StepDetail: Codable, Sendable, Equatable {
    /// 1-based.
    public var number: Int
    public var attempt: Int?
    public var seconds: Double?
    /// Why it was skipped.
    public var reason: String?
    /// The end of the step's output, when it failed.
    public var output: String?
    public var timedOut: Bool?

    public init(number: Int, attempt: Int? = nil, seconds: Double? = nil, reason: String? = nil, output: String? = nil,
                timedOut: Bool? = nil) {
        self.number = number
        self.attempt = attempt
        self.seconds = seconds
        self.reason = reason
        self.output = output
        self.timedOut = timedOut
    }
}

public struct Elapsed: Codable, Sendable, Equatable {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
}

public struct FleetStart: Codable, Sendable, Equatable {
    public var vms: Int
    /// How many are created (the rest exist already).
    public var creating: Int
    /// How many provision at once.
    public var parallel: Int

    public init(vms: Int, creating: Int, parallel: Int) {
        self.vms = vms
        self.creating = creating
        self.parallel = parallel
    }
}

public struct FleetSummary: Codable, Sendable, Equatable {
    public var seconds: Double
    public var ok: Int
    public var failed: Int
    public var created: Int
    public var adopted: Int
    public var controllerCPUSeconds: Double

    public init(seconds: Double, ok: Int, failed: Int, created: Int, adopted: Int, controllerCPUSeconds: Double) {
        self.seconds = seconds
        self.ok = ok
        self.failed = failed
        self.created = created
        self.adopted = adopted
        self.controllerCPUSeconds = controllerCPUSeconds
    }
}

public struct VMEnd: Codable, Sendable, Equatable {
    public var result: VMOutcome.Result
    /// The step it stopped at.
    public var step: String?

    public init(result: VMOutcome.Result, step: String?) {
        self.result = result
        self.step = step
    }
}

public struct JobDetail: Codable, Sendable, Equatable {
    public var outcome: ExecResult.Outcome
    public var exitCode: Int32?
    /// The end of the job's output.
    public var output: String

    public init(outcome: ExecResult.Outcome, exitCode: Int32?, output: String) {
        self.outcome = outcome
        self.exitCode = exitCode
        self.output = output
    }
}

public struct PackagesDetail: Codable, Sendable, Equatable {
    /// What was asked for: names, a .deb, a URL.
    public var source: String
    /// "NAME VERSION" of each package installed, once they are.
    public var installed: [String]

    public init(source: String, installed: [String]) {
        self.source = source
        self.installed = installed
    }
}

public struct ServiceDetail: Codable, Sendable, Equatable {
    public var unit: String
    public var activeState: String?
    public var subState: String?
    public var mainPID: Int?

    public init(unit: String, activeState: String?, subState: String?, mainPID: Int?) {
        self.unit = unit
        self.activeState = activeState
        self.subState = subState
        self.mainPID = mainPID
    }
}

/// A verify step's outcome: how many probes passed, and each probe's verdict in the spec's order.
public struct VerificationDetail: Codable, Sendable, Equatable {
    public var passed: Int
    public var probes: Int
    /// The step's name and its verdicts: absent from the events of builds that recorded only the counts.
    public var step: String?
    public var verdicts: [ProbeVerdict]?

    public init(passed: Int, probes: Int, step: String? = nil, verdicts: [ProbeVerdict]? = nil) {
        self.passed = passed
        self.probes = probes
        self.step = step
        self.verdicts = verdicts
    }
}

extension VerificationDetail {
    /// Of a fleet's `verify.complete` events, each VM's last one of each verify step, in the workflow's order
    /// (`steps`): a step skipped by a re-run keeps the verdict of the run that did it. A VM whose events name no
    /// step (a controller from before steps were named) keeps its last one.
    public static func latest(_ events: [Event], steps: [String]) -> [String: [Event]] {
        var byVM: [String: [String: Event]] = [:]
        for event in events where event.kind == .verificationComplete {
            byVM[event.agent ?? "", default: [:]][of(event)?.step ?? ""] = event
        }
        return byVM.mapValues { byStep in
            let current = steps.compactMap { byStep[$0] }
            return current.isEmpty ? byStep[""].map { [$0] } ?? [] : current
        }
    }

    /// The verification an event carries, if it is a `verify.complete` with its detail.
    public static func of(_ event: Event) -> VerificationDetail? {
        if case .verification(let detail) = event.detail { return detail }
        return nil
    }
}

/// One probe's verdict: the guest's verify script reports these, and the controller's own probes make them.
public struct ProbeVerdict: Codable, Sendable, Equatable {
    /// What was checked, as people read it: `port 8080`, `remote desktop on port 5900`.
    public var label: String
    public var passed: Bool
    /// What was found: the reason when it failed.
    public var detail: String

    public init(label: String, passed: Bool, detail: String) {
        self.label = label
        self.passed = passed
        self.detail = detail
    }
}

public struct CertificateDetail: Codable, Sendable, Equatable {
    public var serial: String
    public var remote: String?
    /// Issued to an agent whose certificate had expired while it was away.
    public var recovered: Bool

    public init(serial: String, remote: String?, recovered: Bool) {
        self.serial = serial
        self.remote = remote
        self.recovered = recovered
    }
}

public struct ConnectionDetail: Codable, Sendable, Equatable {
    public var remote: String
    public var bootID: String?
    public var software: String
    /// How long the agent's process had run when it said hello: when it started, on the controller's clock.
    public var agentAgeSeconds: Double?

    public init(remote: String, bootID: String?, software: String, agentAgeSeconds: Double? = nil) {
        self.remote = remote
        self.bootID = bootID
        self.software = software
        self.agentAgeSeconds = agentAgeSeconds
    }
}

public struct Suppressed: Codable, Sendable, Equatable {
    public var count: Int
    public init(count: Int) { self.count = count }
}

public struct InstanceDetail: Codable, Sendable, Equatable {
    /// cloud-init's instance id of this provision.
    public var id: String
    public init(id: String) { self.id = id }
}
