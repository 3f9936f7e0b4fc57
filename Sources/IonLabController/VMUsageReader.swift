import Foundation
import IonLabAdminAPI
import IonLabControllerConfig
import IonLabDashboard
import IonLabProvision
import Libvirt

/// What libvirt says ionlab's VMs use, for a scrape of /metrics: one bulk statistics call per backend that has
/// VMs, each given a few seconds, so one hung backend leaves its VMs out instead of stalling the page.
struct VMUsageReader: Sendable {
    let store: Store
    let config: ControllerConfig
    let connections: BackendConnections
    var patienceSeconds = 5.0

    func read() async -> [LabMetrics.VMUsage] {
        guard let vms = try? store.vms() else { return [] }
        let byBackend = Dictionary(grouping: vms, by: \.backend)
        return await withTaskGroup(of: [LabMetrics.VMUsage].self) { group in
            for (backend, records) in byBackend {
                guard let backendConfig = try? config.backend(named: backend) else { continue }
                let names = Set(records.map(\.name))
                group.addTask {
                    let stats = try? await withDeadline(seconds: patienceSeconds, orThrow: CancellationError()) {
                        try await connections.connection(for: backendConfig).allDomainStats()
                    }
                    return (stats ?? []).filter { names.contains($0.name) }.map { Self.usage($0, backend: backend) }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
    }

    /// libvirt's names and units to the metrics': nanoseconds to seconds, KiB to bytes, devices summed.
    static func usage(_ stats: DomainStats, backend: String) -> LabMetrics.VMUsage {
        let value = { (key: String) in stats.values[key] }
        return LabMetrics.VMUsage(
            vm: stats.name, backend: backend, running: value("state.state") == 1,  // VIR_DOMAIN_RUNNING
            cpuSeconds: value("cpu.time").map { $0 / 1e9 }, memoryBytes: value("balloon.current").map { $0 * 1024 },
            diskReadBytes: stats.sum(devices: "block", "rd.bytes"), diskWrittenBytes: stats.sum(devices: "block", "wr.bytes"),
            networkReceivedBytes: stats.sum(devices: "net", "rx.bytes"), networkTransmittedBytes: stats.sum(devices: "net", "tx.bytes"))
    }
}
