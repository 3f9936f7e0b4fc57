import CoreMetrics
import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import Prometheus

/// The controller's Prometheus metrics, all derived from the events it records and, for the present, from a
/// snapshot taken at each scrape. Counters and histograms are swift-metrics instruments made by this
/// controller's own factory (never the process-wide bootstrap, so controllers in one test process keep
/// theirs apart); gauges that describe the present (agents by state, heartbeat ages) are set from a
/// snapshot just before each scrape. Names follow Prometheus conventions: `ionlab_` prefix, base units,
/// `_total` for counters.
public final class LabMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Steps and provisioning phases under TCG take from a second to several minutes.
        factory.defaultDurationHistogramBuckets = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800].map { .seconds($0) }
        self.factory = factory
    }

    /// Counts an event the controller recorded: `ionlab_events_total{kind}`; a job's end also in
    /// `ionlab_jobs_total{result}`; a step's end in `ionlab_step_duration_seconds{outcome}`; a VM's boot
    /// milestones (kernel up, each cloud-init stage, agent installed, ready) in `ionlab_vm_phase_seconds{phase}`,
    /// seconds from the boot's start.
    public func record(_ event: Event) {
        Counter(label: "ionlab_events_total", dimensions: [("kind", event.kind.rawValue)], factory: factory).increment()
        switch event.detail {
        case .job(let job):
            Counter(label: "ionlab_jobs_total", dimensions: [("result", Self.result(job))], factory: factory).increment()
        case .step(let step) where event.kind == .stepDone || event.kind == .stepFailed:
            guard let seconds = step.seconds else { break }
            Timer(label: "ionlab_step_duration_seconds", dimensions: [("outcome", event.kind == .stepDone ? "done" : "failed")], factory: factory)
                .record(duration: seconds)
        case .elapsed(let elapsed) where BootTimeline.isMilestone(event.kind) && event.kind.rawValue.hasPrefix("vm."):
            Timer(label: "ionlab_vm_phase_seconds", dimensions: [("phase", String(event.kind.rawValue.dropFirst(3)))], factory: factory)
                .record(duration: elapsed.seconds)
        default:
            break
        }
    }

    /// A job's result as a label: ok, failed (a non-zero exit), timed_out, cancelled, failed_to_start, lost.
    static func result(_ job: JobDetail) -> String {
        switch job.outcome {
        case .completed: job.exitCode == 0 ? "ok" : "failed"
        case .timedOut: "timed_out"
        case .cancelled: "cancelled"
        case .failedToStart: "failed_to_start"
        case .lost: "lost"
        }
    }

    /// What the gauges say at a scrape.
    public struct Snapshot: Sendable {
        public var agentsByState: [String: Int]
        public var heartbeatAgeSeconds: [String: Double]

        public init(agentsByState: [String: Int], heartbeatAgeSeconds: [String: Double]) {
            self.agentsByState = agentsByState
            self.heartbeatAgeSeconds = heartbeatAgeSeconds
        }
    }

    private let present = PresentGauges()

    /// The text exposition format, gauges set from `snapshot` first.
    public func scrape(_ snapshot: Snapshot) -> [UInt8] {
        present.update(snapshot, registry: registry)
        return registry.emitToBuffer()
    }
}

/// Gauges of the present: made on first sight of a label value, set at each scrape, and removed when their
/// agent is gone, so the page never lists agents that no longer exist.
private final class PresentGauges: @unchecked Sendable {
    private let lock = NSLock()
    private var agents: [String: Prometheus.Gauge] = [:]
    private var heartbeats: [String: Prometheus.Gauge] = [:]

    func update(_ snapshot: LabMetrics.Snapshot, registry: PrometheusCollectorRegistry) {
        lock.lock()
        defer { lock.unlock() }
        for state in Set(agents.keys).union(snapshot.agentsByState.keys) {
            let gauge = agents[state] ?? registry.makeGauge(name: "ionlab_agents", labels: [("state", state)],
                                                            help: "Agents the controller knows, by state.")
            agents[state] = gauge
            gauge.set(Double(snapshot.agentsByState[state] ?? 0))
        }
        for (agent, gauge) in heartbeats where snapshot.heartbeatAgeSeconds[agent] == nil {
            registry.unregisterGauge(gauge)
            heartbeats[agent] = nil
        }
        for (agent, age) in snapshot.heartbeatAgeSeconds {
            let gauge = heartbeats[agent] ?? registry.makeGauge(name: "ionlab_agent_heartbeat_age_seconds", labels: [("agent", agent)],
                                                                help: "Seconds since the agent's last heartbeat.")
            heartbeats[agent] = gauge
            gauge.set(age)
        }
    }
}

extension CoreMetrics.Timer {
    fileprivate func record(duration seconds: Double) {
        recordNanoseconds(Int64(min(max(0, seconds), 1e9) * 1e9))
    }
}
