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
        public var vms: [VMUsage]

        public init(agentsByState: [String: Int], heartbeatAgeSeconds: [String: Double], vms: [VMUsage] = []) {
            self.agentsByState = agentsByState
            self.heartbeatAgeSeconds = heartbeatAgeSeconds
            self.vms = vms
        }
    }

    /// What libvirt says one VM uses (its bulk domain statistics); the totals count from the domain's start.
    public struct VMUsage: Sendable, Equatable {
        public var vm: String
        public var backend: String
        public var running: Bool
        public var cpuSeconds: Double?
        public var memoryBytes: Double?
        public var diskReadBytes: Double?
        public var diskWrittenBytes: Double?
        public var networkReceivedBytes: Double?
        public var networkTransmittedBytes: Double?

        public init(vm: String, backend: String, running: Bool, cpuSeconds: Double? = nil, memoryBytes: Double? = nil,
                    diskReadBytes: Double? = nil, diskWrittenBytes: Double? = nil,
                    networkReceivedBytes: Double? = nil, networkTransmittedBytes: Double? = nil) {
            self.vm = vm
            self.backend = backend
            self.running = running
            self.cpuSeconds = cpuSeconds
            self.memoryBytes = memoryBytes
            self.diskReadBytes = diskReadBytes
            self.diskWrittenBytes = diskWrittenBytes
            self.networkReceivedBytes = networkReceivedBytes
            self.networkTransmittedBytes = networkTransmittedBytes
        }
    }

    private let present = PresentSeries()

    /// The text exposition format, gauges set from `snapshot` first.
    public func scrape(_ snapshot: Snapshot) -> [UInt8] {
        present.update(snapshot, registry: registry)
        return registry.emitToBuffer()
    }
}

/// Series of the present: made on first sight of a label value, set at each scrape, and removed when what
/// they describe is gone, so the page never lists agents or VMs that no longer exist. libvirt's totals become
/// counters by adding what grew since the last scrape (a total that fell, after a restart, counts afresh).
private final class PresentSeries: @unchecked Sendable {
    private let lock = NSLock()
    private var agents: [String: Prometheus.Gauge] = [:]
    private var heartbeats: [String: Prometheus.Gauge] = [:]
    private var vmGauges: [String: [String: Prometheus.Gauge]] = [:]
    private var vmCounters: [String: [String: (counter: Prometheus.Counter, last: Double)]] = [:]

    private static let gauges: [(name: String, help: String, value: @Sendable (LabMetrics.VMUsage) -> Double?)] = [
        ("ionlab_vm_running", "1 while the VM's domain runs.", { $0.running ? 1 : 0 }),
        ("ionlab_vm_memory_bytes", "Memory the VM's balloon holds now.", { $0.memoryBytes }),
    ]
    private static let counters: [(name: String, help: String, value: @Sendable (LabMetrics.VMUsage) -> Double?)] = [
        ("ionlab_vm_cpu_seconds_total", "CPU time the VM's domain used.", { $0.cpuSeconds }),
        ("ionlab_vm_disk_read_bytes_total", "Bytes the VM read from its disks.", { $0.diskReadBytes }),
        ("ionlab_vm_disk_written_bytes_total", "Bytes the VM wrote to its disks.", { $0.diskWrittenBytes }),
        ("ionlab_vm_network_received_bytes_total", "Bytes the VM's interfaces received.", { $0.networkReceivedBytes }),
        ("ionlab_vm_network_transmitted_bytes_total", "Bytes the VM's interfaces sent.", { $0.networkTransmittedBytes }),
    ]

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
        updateVMs(snapshot.vms, registry: registry)
    }

    private func updateVMs(_ usages: [LabMetrics.VMUsage], registry: PrometheusCollectorRegistry) {
        let present = Set(usages.map(\.vm))
        for vm in Set(vmGauges.keys).union(vmCounters.keys) where !present.contains(vm) {
            vmGauges[vm]?.values.forEach(registry.unregisterGauge)
            vmCounters[vm]?.values.forEach { registry.unregisterCounter($0.counter) }
            vmGauges[vm] = nil
            vmCounters[vm] = nil
        }
        for usage in usages {
            let labels = [("vm", usage.vm), ("backend", usage.backend)]
            for (name, help, value) in Self.gauges {
                guard let value = value(usage) else { continue }
                let gauge = vmGauges[usage.vm, default: [:]][name] ?? registry.makeGauge(name: name, labels: labels, help: help)
                vmGauges[usage.vm, default: [:]][name] = gauge
                gauge.set(value)
            }
            for (name, help, value) in Self.counters {
                guard let value = value(usage) else { continue }
                let known = vmCounters[usage.vm, default: [:]][name]
                let counter = known?.counter ?? registry.makeCounter(name: name, labels: labels, help: help)
                let grew = known.map { value >= $0.last ? value - $0.last : value } ?? value
                if grew > 0 { counter.increment(by: grew) }
                vmCounters[usage.vm, default: [:]][name] = (counter, value)
            }
        }
    }
}

extension CoreMetrics.Timer {
    fileprivate func record(duration seconds: Double) {
        recordNanoseconds(Int64(min(max(0, seconds), 1e9) * 1e9))
    }
}
