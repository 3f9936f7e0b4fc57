import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabProvision
import Libvirt

/// Snapshots of a VM's system disk, with its memory when it runs (libvirt internal snapshots in the qcow2
/// overlay; the read-only seed is left out). Reverting to a running snapshot resumes the guest from its
/// saved memory: its agent finds its connection gone and reconnects with the certificate on that disk
/// (docs/security.md, "Snapshots and certificates"), and the VM is ready again when it has.
extension VMManager {
    func createSnapshot(of name: String, named snapshot: String, description: String?) async throws -> SnapshotInfo {
        try AgentName.validate(snapshot)
        if let description { try Self.checkDescription(description) }
        let record = try vm(name)
        let domain = try await domain(of: record)
        guard try await !domain.snapshots().contains(where: { $0.name == snapshot }) else {
            throw ControllerError("VM \(name) has a snapshot named '\(snapshot)' already")
        }
        let started = Date()
        let taken = try await domain.createSnapshot(xml: SnapshotSpec.xml(name: snapshot, description: description))
        let info = Self.info(taken.name, SnapshotSpec.summary(of: try await taken.xml()))
        let seconds = Date().timeIntervalSince(started)
        events.emit(.vmSnapshotTaken, agent: name, "snapshot \(snapshot) taken (\(info.hasMemory ? "disk and memory" : "disk")) in \(String(format: "%.1f", seconds))s",
                    detail: .elapsed(Elapsed(seconds: seconds)))
        return info
    }

    /// The VM's snapshots, oldest first.
    func snapshots(of name: String) async throws -> [SnapshotInfo] {
        try await snapshots(of: try vm(name))
    }

    func snapshots(of record: VMRecord) async throws -> [SnapshotInfo] {
        var summaries: [String: SnapshotSpec.Summary] = [:]
        for snapshot in try await domain(of: record).snapshots() { summaries[snapshot.name] = SnapshotSpec.summary(of: try await snapshot.xml()) }
        // Creation times have whole seconds: within one, a snapshot comes after its parent.
        func depth(_ name: String) -> Int {
            var depth = 0, current = summaries[name]?.parent
            while let parent = current, depth < summaries.count {
                depth += 1
                current = summaries[parent]?.parent
            }
            return depth
        }
        return summaries.sorted { ($0.value.created ?? .distantPast, depth($0.key), $0.key) < ($1.value.created ?? .distantPast, depth($1.key), $1.key) }
            .map { Self.info($0.key, $0.value) }
    }

    /// Puts the VM back as the snapshot has it. A running snapshot resumes; the VM counts as provisioning
    /// until the agent of its instance reconnects, which is watched as after a start.
    func revert(_ name: String, to snapshot: String) async throws -> VMRecord {
        var record = try vm(name)
        let domain = try await domain(of: record)
        let target = try await existing(snapshot, of: domain, vm: name)
        let info = Self.info(target.name, SnapshotSpec.summary(of: try await target.xml()))
        let started = Date()
        try await target.revert()
        let running = try await domain.isActive()
        record.state = running ? .provisioning : .stopped
        try store.updateVM(record)
        events.emit(.vmReverted, agent: name, "reverted to snapshot \(snapshot) of \(info.created.map(Format.time) ?? "an unknown time")"
                    + (running ? "; waiting for its agent" : "; the VM is shut off, as it was then"),
                    detail: .elapsed(Elapsed(seconds: Date().timeIntervalSince(started))))
        if running {
            let watched = record
            Task { await self.followBoot(watched, since: started) }
        }
        return record
    }

    func deleteSnapshot(of name: String, named snapshot: String) async throws {
        let domain = try await domain(of: try vm(name))
        try await existing(snapshot, of: domain, vm: name).delete()
        events.emit(.vmSnapshotDeleted, agent: name, "snapshot \(snapshot) deleted")
    }

    func vm(_ name: String) throws -> VMRecord {
        guard let record = try store.vm(name) else { throw ControllerError("no VM named '\(name)'") }
        return record
    }

    private func existing(_ snapshot: String, of domain: Domain, vm name: String) async throws -> DomainSnapshot {
        guard let found = try await domain.snapshots().first(where: { $0.name == snapshot }) else {
            throw ControllerError("VM \(name) has no snapshot named '\(snapshot)' (ionlab vm snapshot list \(name))")
        }
        return found
    }

    private static func info(_ name: String, _ summary: SnapshotSpec.Summary) -> SnapshotInfo {
        SnapshotInfo(name: name, created: summary.created, domainState: summary.domainState, hasMemory: summary.hasMemory,
                            description: summary.description)
    }

    private static func checkDescription(_ text: String) throws {
        guard text.utf8.count <= 1024, !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ValueError("a snapshot description is one line of at most 1024 bytes")
        }
    }
}
