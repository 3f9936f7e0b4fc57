import Foundation

/// A VM's last boot, milestone by milestone, read from its events: where the wait between `vm create` (or a
/// start) and a ready agent goes. Times count from the boot's first event.
public struct BootTimeline: Codable, Sendable, Equatable {
    public struct Milestone: Codable, Sendable, Equatable {
        public var name: String
        public var seconds: Double

        public init(name: String, seconds: Double) {
            self.name = name
            self.seconds = seconds
        }
    }

    /// In the order they happened.
    public var milestones: [Milestone]

    public init(milestones: [Milestone]) { self.milestones = milestones }

    /// What begins a boot: provisioning, or a start after the VM was stopped or reverted.
    static let beginnings: Set<EventKind> = [.vmProvisioning, .vmStopped, .vmReverted]

    /// The milestone each kind of event marks, the first time it comes in a boot.
    static let names: [EventKind: String] = [
        .vmProvisioning: "provisioning", .vmDefined: "domain defined", .vmStarted: "domain started", .vmKernelUp: "kernel",
        .vmCloudInit: "cloud-init local", .vmCloudInitNetwork: "cloud-init network", .vmCloudInitConfig: "cloud-init config",
        .vmCloudInitFinal: "cloud-init final", .vmAgentInstalled: "agent installed", .agentEnrolled: "enrolled",
        .agentConnected: "TLS connected", .vmReady: "ready", .vmCloudInitDone: "cloud-init done",
    ]

    /// Whether an event of this kind marks a milestone of a boot.
    public static func isMilestone(_ kind: EventKind) -> Bool { names[kind] != nil }

    /// Every kind a timeline reads.
    public static var kinds: Set<EventKind> { beginnings.union(names.keys) }

    /// The last boot in `events` (one VM's, oldest first). The agent's start is placed from its first
    /// connection: that event's time less the age the agent gave in its hello.
    public static func of(_ events: [Event]) -> BootTimeline {
        guard let begin = lastBoot(events) else { return BootTimeline(milestones: []) }
        let origin = events[begin].time
        var seen = Set<EventKind>()
        var milestones: [Milestone] = []
        for event in events[begin...] {
            guard let name = names[event.kind], seen.insert(event.kind).inserted else { continue }
            let seconds = event.time.timeIntervalSince(origin)
            if event.kind == .agentConnected, case .connection(let connection)? = event.detail, let age = connection.agentAgeSeconds {
                milestones.append(Milestone(name: "agent started", seconds: max(0, seconds - age)))
            }
            milestones.append(Milestone(name: name, seconds: seconds))
        }
        return BootTimeline(milestones: milestones.sorted { $0.seconds < $1.seconds })
    }

    /// When the last boot in `events` began: the time its milestones count from.
    public static func origin(of events: [Event]) -> Date? {
        lastBoot(events).map { events[$0].time }
    }

    /// Where the last boot begins in `events`.
    private static func lastBoot(_ events: [Event]) -> Int? {
        guard !events.isEmpty else { return nil }
        return events.lastIndex { beginnings.contains($0.kind) } ?? events.startIndex
    }

    /// "kernel 3.2 s · cloud-init local 14.0 s (+10.8) · …": each milestone with its time, and the step from
    /// the one before.
    public var text: String {
        var previous = 0.0
        return milestones.map { milestone in
            defer { previous = milestone.seconds }
            let step = milestone.seconds - previous
            return String(format: "%@ %.1f s", milestone.name, milestone.seconds) + (step >= 0.05 ? String(format: " (+%.1f)", step) : "")
        }.joined(separator: " · ")
    }
}
