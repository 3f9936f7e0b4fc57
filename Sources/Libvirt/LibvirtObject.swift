import CLibvirt

/// A reference to a libvirt object (domain, pool, volume): its pointer, its connection and its name.
/// The reference is released when the Swift object goes away.
public class LibvirtObject: @unchecked Sendable {
    let connection: Connection
    let pointer: OpaquePointer
    public let name: String
    private let free: (OpaquePointer) -> Int32

    init(connection: Connection, pointer: OpaquePointer, name: (OpaquePointer) -> UnsafePointer<CChar>?,
         free: @escaping (OpaquePointer) -> Int32) {
        self.connection = connection
        self.pointer = pointer
        self.name = name(pointer).map { String(cString: $0) } ?? "?"
        self.free = free
    }

    deinit { _ = free(pointer) }
}
