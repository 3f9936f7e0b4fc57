import Foundation
import IonLabConfig
import IonLabControllerConfig
import Libvirt

/// What discovery found out about one backend.
public struct BackendReport: Codable, Sendable {
    public struct DomainTypeCheck: Codable, Sendable {
        public let type: String
        public let works: Bool
        /// How it was verified, or why it failed.
        public let detail: String
    }

    public struct PoolReport: Codable, Sendable {
        public let name: String
        public let active: Bool
        public let capacityBytes: UInt64
        public let availableBytes: UInt64
    }

    public enum Health: String, Codable, Sendable { case ok, degraded, down }

    public let name: String
    public let uri: String
    public var reachable = false
    public var libvirtVersion: String?
    public var driver: String?
    public var hostname: String?
    public var arch: String?
    public var cpus: Int?
    public var memoryBytes: UInt64?
    public var freeMemoryBytes: UInt64?
    public var domainTypes: [DomainTypeCheck] = []
    public var pools: [PoolReport] = []
    public var networks: [NetworkInfo] = []
    public var capabilities: [String] = []
    public var health: Health = .down
    public var reason: String = ""
    public var probeSeconds: Double = 0

    public init(name: String, uri: String) {
        self.name = name
        self.uri = uri
    }

    /// The domain type to use: a forced one, else kvm when verified, else the first verified type.
    public func preferredDomainType(forced: String?) -> String? {
        if let forced { return forced }
        let working = domainTypes.filter(\.works).map(\.type)
        return working.contains("kvm") ? "kvm" : working.first
    }
}

/// Probes libvirt backends, all at once, each bounded by a timeout.
public enum Discovery {
    /// Probes every backend in parallel; the reports come back in the order given.
    /// `kernel` is a Linux kernel on the controller's host that local probe guests boot (see ``ProbeGuest``).
    public static func probe(_ backends: [BackendConfig], timeoutSeconds: Double, kernel: String? = nil) async -> [BackendReport] {
        await concurrentMap(backends) { await probe($0, timeoutSeconds: timeoutSeconds, kernel: kernel) }
    }

    /// Probes one backend. A backend that does not answer within the timeout is reported down.
    public static func probe(_ backend: BackendConfig, timeoutSeconds: Double, kernel: String? = nil) async -> BackendReport {
        let started = ContinuousClock.now
        var report: BackendReport
        do {
            report = try await withDeadline(seconds: timeoutSeconds, "probe \(backend.uri)") { try await inspect(backend, kernel: kernel) }
        } catch {
            report = BackendReport(name: backend.name, uri: backend.uri)
            report.reason = "\(error)"
        }
        report.probeSeconds = (ContinuousClock.now - started).seconds
        return report
    }

    static func inspect(_ backend: BackendConfig, kernel: String?) async throws -> BackendReport {
        var report = BackendReport(name: backend.name, uri: backend.uri)
        let connection = try await Connection.open(backend.uri)
        report.reachable = true
        report.libvirtVersion = try await connection.libvirtVersion()
        report.driver = try await connection.driverType()
        report.hostname = try? await connection.hostname()
        let node = try await connection.nodeInfo()
        report.cpus = node.cpus
        report.memoryBytes = node.memoryKiB * 1024
        report.freeMemoryBytes = try? await connection.freeMemory()
        let capabilities = try Capabilities(xml: try await connection.capabilities())
        report.arch = capabilities.hostArch
        let arch = capabilities.hostArch ?? "x86_64"
        report.domainTypes = await verifyDomainTypes(capabilities.domainTypes(arch: arch), arch: arch, on: connection,
                                                     driver: report.driver, kernel: kernel)
        for pool in try await connection.pools() {
            let info = try await pool.info()
            report.pools.append(.init(name: pool.name, active: info.active, capacityBytes: info.capacityBytes,
                                      availableBytes: info.availableBytes))
        }
        report.networks = (try? await connection.networks()) ?? []
        report.capabilities = capabilityList(report, backend: backend)
        (report.health, report.reason) = health(report, backend: backend)
        return report
    }

    /// Starts a throwaway guest of each type at once and checks that it really runs (see ``ProbeGuest``).
    static func verifyDomainTypes(_ types: [String], arch: String, on connection: Connection, driver: String?,
                                  kernel: String?) async -> [BackendReport.DomainTypeCheck] {
        let local = ProbeGuest.isLocal(connection.uri) && driver == "QEMU"
        return await concurrentMap(types) { type in
            let probe = ProbeGuest(type: type, arch: arch, kernel: local ? kernel : nil, watchesSerial: local)
            do {
                return .init(type: type, works: true, detail: try await probe.run(on: connection))
            } catch {
                return .init(type: type, works: false, detail: "\(error)")
            }
        }
    }

    static func capabilityList(_ report: BackendReport, backend: BackendConfig) -> [String] {
        var list: [String] = []
        let isQEMU = report.driver == "QEMU"
        if report.domainTypes.contains(where: \.works) { list += ["provision", "clone", "overlay-disks"] }
        if isQEMU { list += ["serial-console", "volume-upload", "direct-kernel-boot"] }
        if isQEMU, backend.network == .user { list.append("user-networking") }
        return list
    }

    static func health(_ report: BackendReport, backend: BackendConfig) -> (BackendReport.Health, String) {
        if !report.domainTypes.contains(where: \.works) {
            return (.degraded, "no domain type works: " + report.domainTypes.map { "\($0.type): \($0.detail)" }.joined(separator: "; "))
        }
        if let free = report.freeMemoryBytes, free < 600 << 20 {
            return (.degraded, "only \(free >> 20) MiB of memory free")
        }
        if let pool = report.pools.first(where: { $0.name == backend.pool }), !pool.active {
            return (.degraded, "storage pool \(backend.pool) is not active")
        }
        return (.ok, "")
    }
}

/// Runs `transform` on every element at once; the results come back in the elements' order.
func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], _ transform: @escaping @Sendable (T) async -> R) async -> [R] {
    await withTaskGroup(of: (Int, R).self) { group in
        for (index, item) in items.enumerated() { group.addTask { (index, await transform(item)) } }
        var results = [R?](repeating: nil, count: items.count)
        for await (index, result) in group { results[index] = result }
        return results.compactMap { $0 }
    }
}

/// Runs `body`, or fails with a timeout error after `seconds` (the body's blocking call may finish later).
func withDeadline<T: Sendable>(seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withDeadline(seconds: seconds, orThrow: ProvisionError("\(what): no answer within \(seconds) s"), body)
}

/// Runs `body`, or throws `timeout` once `seconds` have passed (the body's blocking call may finish later).
public func withDeadline<T: Sendable>(seconds: Double, orThrow timeout: @autoclosure @escaping @Sendable () -> Error,
                                      _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .clamped(seconds: seconds))
            throw timeout()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
