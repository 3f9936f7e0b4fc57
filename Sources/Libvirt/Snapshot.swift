import CLibvirt

/// A snapshot of a domain: its disks, and its memory and device state when the domain was running.
public final class DomainSnapshot: LibvirtObject, @unchecked Sendable {
    init(connection: Connection, pointer: OpaquePointer) {
        super.init(connection: connection, pointer: pointer, name: virDomainSnapshotGetName, free: virDomainSnapshotFree)
    }

    /// The snapshot's XML: its creation time, the domain's state then, its description.
    public func xml() async throws -> String {
        try await connection.run("read snapshot \(name)") { Connection.string(virDomainSnapshotGetXMLDesc(self.pointer, 0)) }
    }

    /// Puts the domain back as it was: running from the saved memory if it was running, else shut off.
    public func revert() async throws {
        try await connection.check("revert to snapshot \(name)") { virDomainRevertToSnapshot(self.pointer, 0) }
    }

    public func delete() async throws {
        try await connection.check("delete snapshot \(name)") { virDomainSnapshotDelete(self.pointer, 0) }
    }
}

extension Domain {
    /// Takes a snapshot described by `xml` (`<domainsnapshot>`).
    public func createSnapshot(xml: String) async throws -> DomainSnapshot {
        try await connection.run("snapshot domain \(name)") {
            virDomainSnapshotCreateXML(self.pointer, xml, 0).map { DomainSnapshot(connection: self.connection, pointer: $0) }
        }
    }

    public func snapshots() async throws -> [DomainSnapshot] {
        try await connection.run("list snapshots of domain \(name)") {
            Connection.listAll({ virDomainListAllSnapshots(self.pointer, $0, 0) }) { DomainSnapshot(connection: self.connection, pointer: $0) }
        }
    }

    public func snapshot(named snapshot: String) async throws -> DomainSnapshot {
        try await connection.run("find snapshot \(snapshot) of domain \(name)") {
            virDomainSnapshotLookupByName(self.pointer, snapshot, 0).map { DomainSnapshot(connection: self.connection, pointer: $0) }
        }
    }
}
