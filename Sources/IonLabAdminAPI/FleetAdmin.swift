import Foundation
import IonLabAgentProtocol
import IonLabSpec

/// What `ionlab up` sends: a spec already loaded and resolved by the CLI (recipes expanded, paths absolute).
public struct FleetUpRequest: Codable, Sendable {
    public var spec: FleetSpec
    /// At most this many VMs provision at once.
    public var parallel: Int

    public init(spec: FleetSpec, parallel: Int) {
        self.spec = spec
        self.parallel = parallel
    }
}

/// How one VM of a fleet ended its `up`.
public struct VMOutcome: Codable, Sendable, Equatable {
    public enum Result: String, Codable, Sendable { case ok, failed, timedOut = "timed out" }

    public var vm: String
    public var backend: String
    public var result: Result
    public var seconds: Double
    /// Steps run now, and steps skipped because an earlier `up` had done them.
    public var stepsRun: Int
    public var stepsSkipped: Int
    /// For a failure: the step, and the last lines of its output or the error.
    public var failedStep: String?
    public var detail: String?
    /// Said once, in this report only (a generated password).
    public var notes: [String]

    public init(vm: String, backend: String, result: Result, seconds: Double, stepsRun: Int = 0, stepsSkipped: Int = 0,
                failedStep: String? = nil, detail: String? = nil, notes: [String] = []) {
        self.vm = vm
        self.backend = backend
        self.result = result
        self.seconds = seconds
        self.stepsRun = stepsRun
        self.stepsSkipped = stepsSkipped
        self.failedStep = failedStep
        self.detail = detail
        self.notes = notes
    }
}

/// The end of an `up`: every VM's outcome, and what the controller spent on it.
public struct FleetReport: Codable, Sendable {
    public var fleet: String
    public var seconds: Double
    public var created: Int
    public var adopted: Int
    public var vms: [VMOutcome]
    /// The controller's own CPU time (user + system) during the `up`.
    public var controllerCPUSeconds: Double

    public init(fleet: String, seconds: Double, created: Int, adopted: Int, vms: [VMOutcome], controllerCPUSeconds: Double) {
        self.fleet = fleet
        self.seconds = seconds
        self.created = created
        self.adopted = adopted
        self.vms = vms
        self.controllerCPUSeconds = controllerCPUSeconds
    }

    public var succeeded: Bool { vms.allSatisfy { $0.result == .ok } }
}

/// A VM as `ionlab status` shows it: where it runs, its agent's liveness and health, and its workflow step.
public struct VMStatus: Codable, Sendable {
    /// `up`: heartbeating; `stale`: connected but quiet past half the down TTL; `down`: quiet past the TTL or
    /// disconnected; `absent`: never connected.
    public enum Agent: String, Codable, Sendable { case up, stale, down, absent }

    public var name: String
    public var fleet: String?
    public var backend: String
    public var state: VMRecord.State
    public var agent: Agent
    public var lastHeartbeat: Date?
    public var health: Health?
    /// The step running now, or how the workflow stands ("done", "failed: step").
    public var step: String?

    public init(name: String, fleet: String?, backend: String, state: VMRecord.State, agent: Agent, lastHeartbeat: Date?,
                health: Health?, step: String?) {
        self.name = name
        self.fleet = fleet
        self.backend = backend
        self.state = state
        self.agent = agent
        self.lastHeartbeat = lastHeartbeat
        self.health = health
        self.step = step
    }
}
