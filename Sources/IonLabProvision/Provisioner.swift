import Foundation
import IonLabConfig
import IonLabControllerConfig
import Libvirt

/// What one VM is made of on its backend, enough to find and remove every piece later.
public struct ProvisionedVM: Codable, Sendable, Equatable {
    public var name: String
    public var instanceID: String
    public var domainUUID: String
    public var pool: String
    public var overlayVolume: String
    public var seedVolume: String
    public var seedHash: String
    public var consoleLog: String
    /// Set when the backend could not take the seed's bytes (the test driver has no volume upload).
    public var seedNote: String?
}

/// Everything a provision needs, decided before anything is created.
public struct ProvisionPlan: Sendable {
    public var name: String
    public var instanceID: String
    public var backend: BackendConfig
    public var image: BaseImage
    public var domainType: String
    public var cpus: Int
    public var memoryMiB: Int
    public var diskGiB: Int
    public var seed: Seed
    public var consoleLog: String

    public init(name: String, instanceID: String, backend: BackendConfig, image: BaseImage, domainType: String, cpus: Int,
                memoryMiB: Int, diskGiB: Int, seed: Seed, consoleLog: String) {
        self.name = name
        self.instanceID = instanceID
        self.backend = backend
        self.image = image
        self.domainType = domainType
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.diskGiB = diskGiB
        self.seed = seed
        self.consoleLog = consoleLog
    }

    /// A fresh instance id: the name and 8 random hex digits, so every re-provision differs.
    public static func newInstanceID(for name: String) -> String {
        "\(name)-\(String(format: "%08x", UInt32.random(in: .min ... .max)))"
    }
}

/// Creates and removes a VM's pieces on one backend: the pool, the overlay, the seed volume and the domain.
///
/// A provision that fails at any step removes what it created, newest first. Pool operations are
/// serialised per pool so that parallel creates do not race.
public final class Provisioner: Sendable {
    public enum Step: String, CaseIterable, Sendable {
        case pool, overlay, seed, define, start
    }

    public let connection: Connection
    let locks: PoolLocks

    public init(connection: Connection, locks: PoolLocks = .shared) {
        self.connection = connection
        self.locks = locks
    }

    /// Provisions `plan`, reporting each finished step. `failAfter` injects a failure after that step (tests).
    public func provision(_ plan: ProvisionPlan, failAfter: Step? = nil,
                          progress: @Sendable (Step, String) async -> Void = { _, _ in }) async throws -> ProvisionedVM {
        var undo = Rollback()
        do {
            func finished(_ step: Step, _ detail: String) async throws {
                await progress(step, detail)
                if step == failAfter { throw ProvisionError("injected failure after the \(step.rawValue) step") }
            }
            let pool = try await locks.withLock(plan.backend.pool) { try await self.ensurePool(plan.backend) }
            try await finished(.pool, "pool \(pool.name) ready")

            let overlayName = "\(plan.name).qcow2"
            let overlay = try await locks.withLock(pool.name) { try await self.createOverlay(plan, named: overlayName, in: pool) }
            undo.add("delete volume \(overlayName)") { try await overlay.delete() }
            try await finished(.overlay, "overlay \(overlayName) on \(plan.image.name)")

            let seedName = "\(plan.name)-seed.iso"
            let iso = try plan.seed.buildISO()
            let seedVolume = try await locks.withLock(pool.name) {
                try await pool.createVolume(xml: VolumeXML.raw(name: seedName, capacityBytes: UInt64(iso.count)))
            }
            undo.add("delete volume \(seedName)") { try await seedVolume.delete() }
            let seedNote = try await upload(iso, to: seedVolume)
            try await finished(.seed, "seed \(seedName), \(iso.count / 1024) KiB" + (seedNote.map { " (\($0))" } ?? ""))

            let spec = DomainSpec(name: plan.name, uuid: UUID().uuidString.lowercased(), instanceID: plan.instanceID,
                                  domainType: plan.domainType, cpus: plan.cpus, memoryMiB: plan.memoryMiB,
                                  diskPath: try await overlay.path(), seedPath: try await seedVolume.path(),
                                  kernel: plan.image.kernel, initrd: plan.image.initrd, cmdline: plan.image.cmdline,
                                  network: plan.backend.network, consoleLog: plan.consoleLog, displayPassword: DomainSpec.newDisplayPassword())
            let domain = try await connection.defineDomain(xml: spec.xml)
            undo.add("undefine domain \(plan.name)") { try await domain.undefine() }
            try await finished(.define, "domain \(plan.name) defined (\(plan.domainType))")

            try await domain.start()
            undo.add("destroy domain \(plan.name)") { try await domain.destroy() }
            try await finished(.start, "domain \(plan.name) started")

            return ProvisionedVM(name: plan.name, instanceID: plan.instanceID, domainUUID: spec.uuid, pool: pool.name,
                                 overlayVolume: overlayName, seedVolume: seedName, seedHash: plan.seed.contentHash,
                                 consoleLog: plan.consoleLog, seedNote: seedNote)
        } catch {
            let leftovers = await undo.run()
            guard leftovers.isEmpty else {
                throw ProvisionError("\(error); cleanup also failed: \(leftovers.joined(separator: "; "))")
            }
            throw error
        }
    }

    /// Removes a VM's domain and volumes. Pieces already gone are fine; the first other failure is thrown
    /// after every removal has been tried.
    public func remove(name: String, pool poolName: String, volumes: [String]) async throws {
        var problems: [String] = []
        if let domain = try await ignoringNotFound({ try await self.connection.domain(named: name) }) {
            if try await domain.isActive() { try await record(&problems) { try await domain.destroy() } }
            try await record(&problems) { try await domain.undefine() }
        }
        if let pool = try await ignoringNotFound({ try await self.connection.pool(named: poolName) }) {
            problems += try await locks.withLock(poolName) {
                var failed: [String] = []
                for name in volumes {
                    if let volume = try await self.ignoringNotFound({ try await pool.volume(named: name) }) {
                        try await self.record(&failed) { try await volume.delete() }
                    }
                }
                return failed
            }
        }
        if !problems.isEmpty { throw ProvisionError("removing \(name): \(problems.joined(separator: "; "))") }
    }

    // MARK: Steps

    func ensurePool(_ backend: BackendConfig) async throws -> StoragePool {
        if let pool = try await ignoringNotFound({ try await self.connection.pool(named: backend.pool) }) {
            return pool
        }
        return try await connection.createPersistentPool(xml: VolumeXML.directoryPool(name: backend.pool, path: backend.poolPath))
    }

    func createOverlay(_ plan: ProvisionPlan, named name: String, in pool: StoragePool) async throws -> StorageVolume {
        let (backingPath, baseCapacity) = try await base(of: plan.image)
        let capacity = max(UInt64(plan.diskGiB) << 30, baseCapacity)
        return try await pool.createVolume(xml: VolumeXML.overlay(name: name, capacityBytes: capacity, backingPath: backingPath,
                                                                  backingFormat: plan.image.format))
    }

    /// The base image's path and size on the backend, from its pool volume or, for a file, from the file.
    func base(of image: BaseImage) async throws -> (String, UInt64) {
        if let (poolName, volumeName) = image.poolVolume {
            let volume = try await connection.pool(named: poolName).volume(named: volumeName)
            return (try await volume.path(), try await volume.sizes().capacity)
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: image.path)[.size] as? UInt64) ?? 0
        return (image.path, size)
    }

    /// Uploads the seed through libvirt; a backend without volume upload gets the file written in place when
    /// its path is on this host, else a note (the test driver keeps volumes in memory).
    func upload(_ iso: Data, to volume: StorageVolume) async throws -> String? {
        do {
            try await volume.upload(iso)
            return nil
        } catch let error as LibvirtError where error.kind == .unsupported {
            let path = try await volume.path()
            guard FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent) else {
                return "this backend has no volume upload; seed content not stored"
            }
            try iso.write(to: URL(fileURLWithPath: path))
            return nil
        }
    }

    private func ignoringNotFound<T>(_ body: () async throws -> T) async throws -> T? {
        do {
            return try await body()
        } catch let error as LibvirtError where error.kind == .notFound {
            return nil
        }
    }

    private func record(_ problems: inout [String], _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as LibvirtError where error.kind == .notFound {
        } catch {
            problems.append("\(error)")
        }
    }
}

/// Undo actions collected while provisioning, run newest first.
struct Rollback {
    private var actions: [(String, () async throws -> Void)] = []

    mutating func add(_ what: String, _ action: @escaping () async throws -> Void) { actions.append((what, action)) }

    /// Runs every action; returns the ones that failed.
    func run() async -> [String] {
        var failures: [String] = []
        for (what, action) in actions.reversed() {
            do { try await action() } catch { failures.append("\(what): \(error)") }
        }
        return failures
    }
}

/// One lock per pool name: volume creation and deletion in a pool happen one at a time.
public actor PoolLocks {
    public static let shared = PoolLocks()
    private var busy: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    public func withLock<T: Sendable>(_ pool: String, _ body: @Sendable () async throws -> T) async throws -> T {
        while busy.contains(pool) {
            await withCheckedContinuation { waiters[pool, default: []].append($0) }
        }
        busy.insert(pool)
        defer {
            busy.remove(pool)
            if var queue = waiters[pool], !queue.isEmpty {
                queue.removeFirst().resume()
                waiters[pool] = queue
            }
        }
        return try await body()
    }
}
