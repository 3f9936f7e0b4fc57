import CLibvirt
import Foundation

/// A libvirt storage pool: where a VM's volumes (overlay disk, seed ISO) live.
public final class StoragePool: LibvirtObject, @unchecked Sendable {
    init(connection: Connection, pointer: OpaquePointer) {
        super.init(connection: connection, pointer: pointer, name: virStoragePoolGetName, free: virStoragePoolFree)
    }

    public struct Info: Sendable, Codable {
        public let active: Bool
        public let capacityBytes: UInt64
        public let allocationBytes: UInt64
        public let availableBytes: UInt64
    }

    public func info() async throws -> Info {
        try await connection.run("read storage pool \(name)") {
            var info = virStoragePoolInfo()
            guard virStoragePoolGetInfo(self.pointer, &info) == 0 else { return nil }
            return Info(active: Int32(info.state) == Int32(VIR_STORAGE_POOL_RUNNING.rawValue), capacityBytes: UInt64(info.capacity),
                        allocationBytes: UInt64(info.allocation), availableBytes: UInt64(info.available))
        }
    }

    public func xml() async throws -> String {
        try await connection.run("read XML of storage pool \(name)") { Connection.string(virStoragePoolGetXMLDesc(self.pointer, 0)) }
    }

    /// Creates a volume from XML (for an overlay: a `<backingStore>` with the base's path and format).
    public func createVolume(xml: String) async throws -> StorageVolume {
        try await connection.run("create volume in pool \(name)") {
            virStorageVolCreateXML(self.pointer, xml, 0).map { StorageVolume(connection: self.connection, pointer: $0) }
        }
    }

    public func volume(named volumeName: String) async throws -> StorageVolume {
        try await connection.run("find volume \(volumeName) in pool \(name)") {
            virStorageVolLookupByName(self.pointer, volumeName).map { StorageVolume(connection: self.connection, pointer: $0) }
        }
    }

    public func volumes() async throws -> [StorageVolume] {
        try await connection.run("list volumes of pool \(name)") {
            Connection.listAll({ virStoragePoolListAllVolumes(self.pointer, $0, 0) }) {
                StorageVolume(connection: self.connection, pointer: $0)
            }
        }
    }

    /// Rescans the pool's target, so files created outside libvirt show up as volumes.
    public func refresh() async throws {
        try await connection.check("refresh storage pool \(name)") { virStoragePoolRefresh(self.pointer, 0) }
    }
}

/// A volume in a storage pool.
public final class StorageVolume: LibvirtObject, @unchecked Sendable {
    init(connection: Connection, pointer: OpaquePointer) {
        super.init(connection: connection, pointer: pointer, name: virStorageVolGetName, free: virStorageVolFree)
    }

    /// The volume's path on its host.
    public func path() async throws -> String {
        try await connection.run("read path of volume \(name)") { Connection.string(virStorageVolGetPath(self.pointer)) }
    }

    public func xml() async throws -> String {
        try await connection.run("read XML of volume \(name)") { Connection.string(virStorageVolGetXMLDesc(self.pointer, 0)) }
    }

    /// Capacity (the guest-visible size) and allocation (what it takes on disk), in bytes.
    public func sizes() async throws -> (capacity: UInt64, allocation: UInt64) {
        try await connection.run("read size of volume \(name)") {
            var info = virStorageVolInfo()
            guard virStorageVolGetInfo(self.pointer, &info) == 0 else { return nil }
            return (UInt64(info.capacity), UInt64(info.allocation))
        }
    }

    public func delete() async throws {
        try await connection.check("delete volume \(name)") { virStorageVolDelete(self.pointer, 0) }
    }

    /// Replaces the volume's content with `bytes` through a libvirt stream (works on remote hosts too).
    public func upload(_ bytes: Data) async throws {
        let stream = try connection.makeStream()
        try await connection.check("upload to volume \(name)") {
            virStorageVolUpload(self.pointer, stream.pointer, 0, UInt64(bytes.count), 0)
        }
        try await stream.sendAll(bytes, operation: "upload to volume \(name)")
    }
}
