import Foundation
import IonLabAdminAPI

/// What the dashboard page shows, as one JSON document (`GET /api/overview`): every VM as the controller sees
/// it now. One read, so a row's state, liveness and timeline agree with each other.
public struct DashboardOverview: Codable, Sendable {
    public var generatedAt: Date
    /// Every fleet the controller knows, with or without VMs.
    public var fleets: [String]
    public var vms: [DashboardVM]

    public init(generatedAt: Date, fleets: [String], vms: [DashboardVM]) {
        self.generatedAt = generatedAt
        self.fleets = fleets
        self.vms = vms
    }
}

/// One VM's row: its status (backend, state, agent liveness, health, current step), where its boot stands,
/// its facts, and its timeline.
public struct DashboardVM: Codable, Sendable {
    public var status: VMStatus
    /// The last boot milestone reached ("kernel", "cloud-init config", "ready"), or the state when not booting.
    public var phase: String
    /// What steps learned ("rustdesk.id").
    public var facts: [String: String]
    /// When the timeline's bars start: the last boot's beginning.
    public var origin: Date?
    public var timeline: [TimelineBar]
    /// Whether the VM runs, so that its screen can be taken.
    public var hasScreen: Bool

    public init(status: VMStatus, phase: String, facts: [String: String], origin: Date?, timeline: [TimelineBar], hasScreen: Bool) {
        self.status = status
        self.phase = phase
        self.facts = facts
        self.origin = origin
        self.timeline = timeline
        self.hasScreen = hasScreen
    }
}

/// One bar of a VM's timeline, in seconds from its origin: a boot phase (ending at a milestone) or a step.
public struct TimelineBar: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case boot, step }
    public enum Outcome: String, Codable, Sendable { case done, running, failed }

    public var name: String
    public var kind: Kind
    public var start: Double
    /// Nil while it runs: the page draws it up to now.
    public var end: Double?
    public var outcome: Outcome

    public init(name: String, kind: Kind, start: Double, end: Double?, outcome: Outcome) {
        self.name = name
        self.kind = kind
        self.start = start
        self.end = end
        self.outcome = outcome
    }

    /// The boot's phases: each milestone ends the phase that led to it; a VM still booting has an open bar
    /// for the phase it is in.
    public static func bootPhases(_ timeline: BootTimeline, booting: Bool) -> [TimelineBar] {
        var previous = 0.0
        var bars = timeline.milestones.map { milestone in
            defer { previous = milestone.seconds }
            return TimelineBar(name: milestone.name, kind: .boot, start: previous, end: milestone.seconds, outcome: .done)
        }
        if booting { bars.append(TimelineBar(name: "booting", kind: .boot, start: previous, end: nil, outcome: .running)) }
        return bars
    }
}

/// What the page may change. Each needs the token and a same-origin request (see `RequestGuard`).
public enum DashboardAction: Sendable, Equatable {
    case down(fleet: String)
    case restart(vm: String)
    case revert(vm: String, snapshot: String)
}

/// What the controller gives the dashboard: the one typed interface between the HTTP side and the lab.
public protocol DashboardSource: Sendable {
    func overview() async throws -> DashboardOverview
    /// Sends the events after `seq` (at most the last `replay` of them), then live ones, until `send` throws
    /// or the task is cancelled. A follower that falls behind gets the missed events from the store.
    func events(after seq: Int64?, replay: Int, send: @escaping @Sendable ([Event]) async throws -> Void) async throws
    /// The VM's screen as PNG.
    func screen(of vm: String) async throws -> [UInt8]
    /// A picture a probe kept of the VM (its `picture.NAME` fact), as PNG; nil when it has none of that name.
    func picture(of vm: String, named name: String) async throws -> [UInt8]?
    /// Does what the page asked; returns one line saying what was done.
    func perform(_ action: DashboardAction) async throws -> String
    /// What the gauges of `/metrics` say now.
    func metricsSnapshot() async -> LabMetrics.Snapshot
}
