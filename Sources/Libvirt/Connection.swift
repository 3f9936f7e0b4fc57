import CLibvirt
import Dispatch
import Foundation

/// A connection to one libvirt URI (`qemu:///system`, `qemu+ssh://host/system`, `test:///default`).
///
/// libvirt's calls block, some for seconds, so every call runs on this connection's own dispatch queue and
/// is awaited: no event loop or task thread ever waits on libvirt. libvirt objects are thread-safe, so the
/// queue is concurrent.
public final class Connection: @unchecked Sendable {
    public let uri: String
    let pointer: OpaquePointer
    private let queue: DispatchQueue

    private init(uri: String, pointer: OpaquePointer) {
        self.uri = uri
        self.pointer = pointer
        self.queue = DispatchQueue(label: "libvirt \(uri)", attributes: .concurrent)
    }

    deinit { virConnectClose(pointer) }

    /// Opens `uri`. Remote URIs authenticate the way libvirt's own tools do (for `qemu+ssh`, ssh keys).
    public static func open(_ uri: String) async throws -> Connection {
        Library.initialize()
        let queue = DispatchQueue(label: "libvirt open \(uri)")
        let pointer: OpaquePointer = try await withCheckedThrowingContinuation { continuation in
            queue.async {
                if let pointer = virConnectOpen(uri) {
                    continuation.resume(returning: pointer)
                } else {
                    continuation.resume(throwing: LibvirtError.last("connect to \(uri)"))
                }
            }
        }
        return Connection(uri: uri, pointer: pointer)
    }

    /// Runs a blocking libvirt call off the caller's thread. `body` returns nil on failure, and the thread's
    /// last libvirt error becomes the thrown ``LibvirtError``.
    func run<T>(_ operation: String, _ body: @escaping @Sendable () -> T?) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                virResetLastError()
                if let value = body() {
                    continuation.resume(returning: value)
                } else {
                    continuation.resume(throwing: LibvirtError.last(operation))
                }
            }
        }
    }

    /// Runs a call that returns 0 on success and -1 on failure.
    func check(_ operation: String, _ body: @escaping @Sendable () -> Int32) async throws {
        let _: Bool = try await run(operation) { body() >= 0 ? true : nil }
    }

    // MARK: Host

    /// The capabilities XML: host CPU and the guest architectures and domain types the driver offers.
    public func capabilities() async throws -> String {
        try await run("read capabilities of \(uri)") { Self.string(virConnectGetCapabilities(self.pointer)) }
    }

    /// The domain capabilities XML for one domain type ("kvm", "qemu"), or nil when the driver lacks the call.
    public func domainCapabilities(virtType: String, arch: String? = nil) async throws -> String? {
        do {
            return try await run("read \(virtType) domain capabilities of \(uri)") {
                Self.string(virConnectGetDomainCapabilities(self.pointer, nil, arch, nil, virtType, 0))
            }
        } catch let error as LibvirtError where error.kind == .unsupported {
            return nil
        }
    }

    public func nodeInfo() async throws -> NodeInfo {
        try await run("read node info of \(uri)") {
            var info = virNodeInfo()
            guard virNodeGetInfo(self.pointer, &info) == 0 else { return nil }
            let model = withUnsafeBytes(of: info.model) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return NodeInfo(model: model, memoryKiB: UInt64(info.memory), cpus: Int(info.cpus), mhz: Int(info.mhz))
        }
    }

    /// Free host memory in bytes.
    public func freeMemory() async throws -> UInt64 {
        try await run("read free memory of \(uri)") {
            let free = virNodeGetFreeMemory(self.pointer)
            return free == 0 && virGetLastError() != nil ? nil : free
        }
    }

    /// The libvirt library version on the far side, as "major.minor.micro".
    public func libvirtVersion() async throws -> String {
        try await run("read the libvirt version of \(uri)") {
            var version: UInt = 0
            return virConnectGetLibVersion(self.pointer, &version) == 0 ? Self.version(version) : nil
        }
    }

    /// The driver name ("QEMU", "TEST").
    public func driverType() async throws -> String {
        try await run("read the driver of \(uri)") { virConnectGetType(self.pointer).map { String(cString: $0) } }
    }

    public func hostname() async throws -> String {
        try await run("read the hostname of \(uri)") { Self.string(virConnectGetHostname(self.pointer)) }
    }

    public func isAlive() -> Bool { virConnectIsAlive(pointer) == 1 }

    // MARK: Domains

    public func domains() async throws -> [Domain] {
        try await run("list domains of \(uri)") {
            Self.listAll({ virConnectListAllDomains(self.pointer, $0, 0) }) { Domain(connection: self, pointer: $0) }
        }
    }

    public func domain(named name: String) async throws -> Domain {
        try await run("find domain \(name)") { virDomainLookupByName(self.pointer, name).map { Domain(connection: self, pointer: $0) } }
    }

    /// Defines a persistent domain from XML (it does not start it).
    public func defineDomain(xml: String) async throws -> Domain {
        try await run("define domain") { virDomainDefineXML(self.pointer, xml).map { Domain(connection: self, pointer: $0) } }
    }

    /// Creates and starts a transient domain; with `autodestroy` it dies when this connection closes.
    public func createTransientDomain(xml: String, autodestroy: Bool) async throws -> Domain {
        let flags = autodestroy ? UInt32(VIR_DOMAIN_START_AUTODESTROY.rawValue) : 0
        return try await run("start transient domain") {
            virDomainCreateXML(self.pointer, xml, flags).map { Domain(connection: self, pointer: $0) }
        }
    }

    // MARK: Storage and networks

    public func pools() async throws -> [StoragePool] {
        try await run("list storage pools of \(uri)") {
            Self.listAll({ virConnectListAllStoragePools(self.pointer, $0, 0) }) { StoragePool(connection: self, pointer: $0) }
        }
    }

    public func pool(named name: String) async throws -> StoragePool {
        try await run("find storage pool \(name)") {
            virStoragePoolLookupByName(self.pointer, name).map { StoragePool(connection: self, pointer: $0) }
        }
    }

    /// Defines a persistent pool, builds its target (a directory for `dir` pools), starts it and marks it autostart.
    public func createPersistentPool(xml: String) async throws -> StoragePool {
        let pool = try await run("define storage pool") {
            virStoragePoolDefineXML(self.pointer, xml, 0).map { StoragePool(connection: self, pointer: $0) }
        }
        try await check("build storage pool \(pool.name)") { virStoragePoolBuild(pool.pointer, 0) }
        try await check("start storage pool \(pool.name)") { virStoragePoolCreate(pool.pointer, 0) }
        try await check("autostart storage pool \(pool.name)") { virStoragePoolSetAutostart(pool.pointer, 1) }
        return pool
    }

    public func networks() async throws -> [NetworkInfo] {
        try await run("list networks of \(uri)") {
            Self.listAll({ virConnectListAllNetworks(self.pointer, $0, 0) }) { network -> NetworkInfo in
                defer { virNetworkFree(network) }
                return NetworkInfo(name: virNetworkGetName(network).map { String(cString: $0) } ?? "?",
                                   active: virNetworkIsActive(network) == 1)
            }
        }
    }

    /// A new blocking stream on this connection, for volume uploads and downloads.
    public func makeStream() throws -> Stream {
        guard let stream = virStreamNew(pointer, 0) else { throw LibvirtError.last("create a stream on \(uri)") }
        return Stream(connection: self, pointer: stream)
    }

    // MARK: Helpers

    /// Takes ownership of a C string libvirt allocated.
    static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
        guard let pointer else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// Runs one of libvirt's `ListAll` calls and wraps each object it returns, freeing the array itself;
    /// nil when the call failed.
    static func listAll<T>(_ fetch: (UnsafeMutablePointer<UnsafeMutablePointer<OpaquePointer?>?>) -> Int32,
                           _ make: (OpaquePointer) -> T) -> [T]? {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = fetch(&list)
        guard count >= 0 else { return nil }
        guard let list else { return [] }
        defer { free(list) }
        return (0..<Int(count)).compactMap { list[$0].map(make) }
    }

    static func version(_ number: UInt) -> String { "\(number / 1_000_000).\(number / 1000 % 1000).\(number % 1000)" }
}

/// What `virNodeGetInfo` reports about the host.
public struct NodeInfo: Sendable, Equatable {
    public let model: String
    public let memoryKiB: UInt64
    public let cpus: Int
    public let mhz: Int
}

public struct NetworkInfo: Sendable, Equatable, Codable {
    public let name: String
    public let active: Bool
}

/// Process-wide libvirt setup: thread-safe initialisation, and no error printing to stderr (errors are thrown).
enum Library {
    private static let once: Void = {
        virInitialize()
        virSetErrorFunc(nil) { _, _ in }
    }()

    static func initialize() { _ = once }
}
