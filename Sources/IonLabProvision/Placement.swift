import Foundation
import Libvirt

/// What one backend can still take: its host's CPUs and memory, less what its running domains hold.
public struct HostCapacity: Sendable, Equatable {
    public var backend: String
    public var cpus: Int
    public var memoryMiB: Int
    /// The host's own free memory when its driver reports it.
    public var freeMemoryMiB: Int?
    /// vCPUs and memory of the domains running there now.
    public var allocatedCPUs: Int
    public var allocatedMemoryMiB: Int
    /// Why the backend cannot take VMs at all (no working domain type, unreachable), or nil.
    public var incapable: String?

    public init(backend: String, cpus: Int, memoryMiB: Int, freeMemoryMiB: Int? = nil, allocatedCPUs: Int = 0,
                allocatedMemoryMiB: Int = 0, incapable: String? = nil) {
        self.backend = backend
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.freeMemoryMiB = freeMemoryMiB
        self.allocatedCPUs = allocatedCPUs
        self.allocatedMemoryMiB = allocatedMemoryMiB
        self.incapable = incapable
    }

    /// Memory a new VM may take: what running domains have not claimed, and no more than the host has free.
    public var availableMemoryMiB: Int {
        let unclaimed = memoryMiB - allocatedMemoryMiB
        return max(0, freeMemoryMiB.map { min($0, unclaimed) } ?? unclaimed)
    }

    /// Reads a backend's node info, free memory and running domains.
    public static func measure(_ connection: Connection, backend: String) async throws -> HostCapacity {
        let node = try await connection.nodeInfo()
        let free = try? await connection.freeMemory()
        var capacity = HostCapacity(backend: backend, cpus: node.cpus, memoryMiB: Int(node.memoryKiB / 1024),
                                    freeMemoryMiB: free.map { Int($0 >> 20) })
        for domain in try await connection.domains() {
            guard let info = try? await domain.info(), info.state == .running || info.state == .paused || info.state == .blocked else { continue }
            capacity.allocatedCPUs += info.vcpus
            capacity.allocatedMemoryMiB += Int(info.maxMemoryKiB / 1024)
        }
        return capacity
    }

    public static func unavailable(_ backend: String, _ reason: String) -> HostCapacity {
        HostCapacity(backend: backend, cpus: 0, memoryMiB: 0, incapable: reason)
    }
}

/// Chooses a backend for each VM of a fleet.
public enum Placement {
    public struct Request: Sendable, Equatable {
        public var vm: String
        public var cpus: Int
        public var memoryMiB: Int
        public init(vm: String, cpus: Int, memoryMiB: Int) {
            self.vm = vm
            self.cpus = cpus
            self.memoryMiB = memoryMiB
        }
    }

    /// Places the VMs in order, each on the capable host with the most memory left after it, ties going to
    /// the host with more CPUs free; every choice reserves what the VM asked for. A VM needs its memory free
    /// and no more vCPUs than its host has. Fails, naming the VM and every host's reason, if one fits nowhere.
    public static func place(_ requests: [Request], on hosts: [HostCapacity]) throws -> [String: String] {
        var hosts = hosts
        var chosen: [String: String] = [:]
        for request in requests {
            var reasons: [String] = []
            var best: Int?
            for (index, host) in hosts.enumerated() {
                if let why = refusal(of: request, by: host) {
                    reasons.append("\(host.backend): \(why)")
                    continue
                }
                if let current = best, !isRoomier(host, than: hosts[current]) { continue }
                best = index
            }
            guard let index = best else {
                throw ProvisionError("no backend can take \(request.vm) (\(request.cpus) CPU, \(request.memoryMiB) MiB): "
                                     + reasons.joined(separator: "; "))
            }
            hosts[index].allocatedCPUs += request.cpus
            hosts[index].allocatedMemoryMiB += request.memoryMiB
            hosts[index].freeMemoryMiB = hosts[index].freeMemoryMiB.map { $0 - request.memoryMiB }
            chosen[request.vm] = hosts[index].backend
        }
        return chosen
    }

    static func refusal(of request: Request, by host: HostCapacity) -> String? {
        if let incapable = host.incapable { return incapable }
        if request.cpus > host.cpus { return "\(request.cpus) CPUs asked, the host has \(host.cpus)" }
        if request.memoryMiB > host.availableMemoryMiB { return "\(host.availableMemoryMiB) MiB of memory left" }
        return nil
    }

    static func isRoomier(_ candidate: HostCapacity, than current: HostCapacity) -> Bool {
        let left = candidate.availableMemoryMiB, currentLeft = current.availableMemoryMiB
        if left != currentLeft { return left > currentLeft }
        return candidate.cpus - candidate.allocatedCPUs > current.cpus - current.allocatedCPUs
    }
}
