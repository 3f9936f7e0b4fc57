import Foundation
import IonLabAdminAPI
import IonLabDashboard
import Synchronization

/// The lab as the dashboard sees it, through the same managers the CLI's requests use. However many pages
/// are open, an overview is made at most once every two seconds and each VM's screen taken at most once every two
/// seconds, a few at a time.
final class ControllerDashboard: DashboardSource {
    private let controller: Controller
    private let usage: VMUsageReader
    private let overviews = Memo<DashboardOverview>(seconds: 2)
    private let screens = Mutex<[String: (taken: ContinuousClock.Instant, png: [UInt8])]>([:])
    private let screenSlots = AsyncSemaphore(4)
    static let screenSeconds = 2.0

    init(controller: Controller) {
        self.controller = controller
        usage = VMUsageReader(store: controller.store, config: controller.config, connections: controller.vms.connections)
    }

    func overview() async throws -> DashboardOverview {
        try await overviews.value { [controller] in try controller.overview(fleet: nil) }
    }

    func events(after seq: Int64?, replay: Int, send: @escaping @Sendable ([Event]) async throws -> Void) async throws {
        let start = try seq ?? max(0, controller.store.lastEventSeq() - Int64(replay))
        try await controller.events.stream(after: start, follow: true, send: send)
    }

    func screen(of vm: String) async throws -> [UInt8] {
        if let kept = screens.withLock({ $0[vm] }), kept.taken.duration(to: .now) < .seconds(Self.screenSeconds) { return kept.png }
        await screenSlots.acquire()
        defer { screenSlots.release() }
        let png = Array(try await controller.vms.screenshot(of: vm).png)
        screens.withLock { kept in
            kept[vm] = (.now, png)
            // Forget the screens of VMs nobody looked at lately.
            kept = kept.filter { $0.value.taken.duration(to: .now) < .seconds(60) }
        }
        return png
    }

    func picture(of vm: String, named name: String) async throws -> [UInt8]? {
        guard let record = try controller.store.vm(vm) else { return nil }
        return VMPictureFiles(root: "\(controller.paths.directory)/pictures").read(name, facts: record.facts, limit: VMPictureFiles.pictureBytes)
    }

    func perform(_ action: DashboardAction) async throws -> String {
        switch action {
        case .down(let fleet):
            return try await controller.fleets.down(fleet)
        case .restart(let vm):
            let record = try await controller.vms.power(.restart, vm, timeout: nil)
            return "\(vm) restarted (\(record.state.rawValue))"
        case .revert(let vm, let snapshot):
            let record = try await controller.revert(vm, to: snapshot)
            return "\(vm) reverted to \(snapshot) (\(record.state.rawValue))"
        }
    }

    func metricsSnapshot() async -> LabMetrics.Snapshot {
        var snapshot = controller.agentsSnapshot()
        snapshot.vms = await usage.read()
        return snapshot
    }
}

/// A value made at most once per period, however many ask at once: the others wait for the one being made.
final class Memo<Value: Sendable>: Sendable {
    private let period: Duration
    private let state = Mutex<(made: ContinuousClock.Instant, value: Value)?>(nil)
    private let making = AsyncSemaphore(1)

    init(seconds: Double) { period = .seconds(seconds) }

    func value(_ make: @Sendable () throws -> Value) async throws -> Value {
        if let fresh = fresh() { return fresh }
        await making.acquire()
        defer { making.release() }
        if let fresh = fresh() { return fresh }
        let value = try make()
        state.withLock { $0 = (.now, value) }
        return value
    }

    private func fresh() -> Value? {
        state.withLock { kept in
            guard let kept, kept.made.duration(to: .now) < period else { return nil }
            return kept.value
        }
    }
}

extension Controller {
    /// Every VM (of `fleet`, when given) as the dashboard and the report show it: status, boot phase, facts, and
    /// a timeline of boot phases and steps from one read of the store.
    func overview(fleet: String?) throws -> DashboardOverview {
        let now = Date()
        let boots = try store.eventsByAgent(kinds: BootTimeline.kinds)
        let rows = try fleetStatus.rows(fleet: fleet).map { row in
            let events = boots[row.record.name] ?? []
            let boot = BootTimeline.of(events)
            let origin = BootTimeline.origin(of: events)
            let booting = row.record.state == .provisioning
            let steps = row.steps.map { step in
                TimelineBar(name: step.name, kind: .step, start: origin.map { step.startedAt.timeIntervalSince($0) } ?? 0,
                            end: step.finishedAt.flatMap { finished in origin.map { finished.timeIntervalSince($0) } },
                            outcome: step.state == .done ? .done : step.state == .failed ? .failed : .running)
            }
            return DashboardVM(status: row.status, phase: booting ? boot.milestones.last?.name ?? "provisioning" : row.record.state.rawValue,
                               facts: row.record.facts, origin: origin, timeline: TimelineBar.bootPhases(boot, booting: booting) + steps,
                               hasScreen: row.record.state != .stopped)
        }
        return DashboardOverview(generatedAt: now, fleets: try store.fleetNames(), vms: rows)
    }
}
