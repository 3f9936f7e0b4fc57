import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabProvision
import IonLabSpec
import IonLabWire
import Libvirt

/// The controller's side of VMs: it provisions them through libvirt, records them, follows each one's boot
/// from its serial console to its agent connecting back, and removes them with everything they own.
struct VMManager: Sendable {
    let controller: Controller

    var connections: BackendConnections { controller.backendConnections }

    var store: Store { controller.store }
    var events: EventLog { controller.events }

    /// Provisions a VM and returns its record once the domain has started; its timeline goes on in the background.
    func create(_ request: VMCreateRequest) async throws -> VMRecord {
        try AgentName.validate(request.name)
        guard VMLimits.allow(cpus: request.cpus, memoryMiB: request.memoryMiB, diskGiB: request.diskGiB) else {
            throw ControllerError("resources out of range: \(VMLimits.summary)")
        }
        let config = controller.config
        let backend = try config.backend(named: request.backend)
        let image = try ImageCatalog.load(path: controller.paths.resolve(config.imageCatalog)).image(named: request.image)
        let bundle = try AgentBundle.locate(configured: config.agentBundle)
        let connection = try await connections.connection(for: backend)
        let domainType = try await connections.domainType(for: backend, config: config, kernel: image.kernel)
        let instanceID = ProvisionPlan.newInstanceID(for: request.name)
        let consoleLog = "\(controller.paths.directory)/console/\(request.name).log"
        try FileManager.default.createDirectory(atPath: "\(controller.paths.directory)/console", withIntermediateDirectories: true)

        var record = VMRecord(name: request.name, backend: backend.name, image: image.name, state: .provisioning, instanceID: instanceID,
                              cpus: request.cpus, memoryMiB: request.memoryMiB, diskGiB: request.diskGiB, domainType: domainType,
                              domainUUID: "", pool: backend.pool, volumes: [], seedHash: "", consoleLog: consoleLog, createdAt: Date(),
                              fleet: request.fleet)
        try store.insertVM(record)
        events.assign(agent: request.name, fleet: request.fleet)
        events.emit(.vmProvisioning, agent: request.name, "provisioning on \(backend.name) (\(domainType)) from \(image.name)",
                    detail: .instance(InstanceDetail(id: instanceID)))
        do {
            let endpoint = Endpoint(host: backend.controllerAddress, port: config.listen.port)
            let grant = try controller.createToken(name: request.name, endpoints: [endpoint], ttl: nil)
            let agentConfig = AgentConfig(name: request.name, endpoints: [endpoint], caPin: try CAPin(parsing: grant.caPin), token: grant.token)
            let seed = try Seed(bundle: bundle, instanceID: instanceID, hostname: request.name, agentConfigYAML: agentConfig.yaml())
            try keepSeed(seed, of: request.name)
            let plan = ProvisionPlan(name: request.name, instanceID: instanceID, backend: backend, image: image, domainType: domainType,
                                     cpus: request.cpus, memoryMiB: request.memoryMiB, diskGiB: request.diskGiB, seed: seed,
                                     consoleLog: consoleLog)
            let vm = try await Provisioner(connection: connection).provision(plan) { [events] step, detail in
                switch step {
                case .define: events.emit(.vmDefined, agent: request.name, detail)
                case .start: events.emit(.vmStarted, agent: request.name, detail)
                default: break
                }
            }
            record.domainUUID = vm.domainUUID
            record.pool = vm.pool
            record.volumes = [vm.overlayVolume, vm.seedVolume]
            record.seedHash = vm.seedHash
            try store.updateVM(record)
        } catch {
            try? FileManager.default.removeItem(atPath: controller.paths.seedDirectory(request.name))
            _ = try? store.revoke(agent: request.name)  // its unspent token goes with it
            events.emit(.vmFailed, agent: request.name, "provisioning failed and was rolled back: \(AdminHandler.describe(error))")
            try? store.deleteVM(request.name)
            throw error
        }
        let watched = record
        Task { await self.followBoot(watched) }
        return record
    }

    /// Creates `name` like `source`: same image, backend and resources, a fresh disk and identity.
    func clone(source: String, name: String, wait: Bool) async throws -> VMRecord {
        guard let original = try store.vm(source) else { throw ControllerError("no VM named '\(source)'") }
        return try await create(VMCreateRequest(name: name, image: original.image, cpus: original.cpus, memoryMiB: original.memoryMiB,
                                                diskGiB: original.diskGiB, backend: original.backend, wait: wait))
    }

    /// Keeps the seed's generated files (`meta-data`, `agent.yaml`) in the state directory, private: what this VM
    /// was given, for inspection, and for stand-in guests on drivers that cannot carry a seed volume (test:///).
    private func keepSeed(_ seed: Seed, of name: String) throws {
        let directory = controller.paths.seedDirectory(name)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for file in seed.files where ["meta-data", "agent.yaml"].contains(file.name) {
            guard FileManager.default.createFile(atPath: "\(directory)/\(file.name)", contents: file.contents,
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw ControllerError("cannot write \(directory)/\(file.name)")
            }
        }
    }

    /// Removes the domain, its volumes and console log, and revokes the agent's certificate.
    func destroy(_ name: String) async throws {
        guard let record = try store.vm(name) else { throw ControllerError("no VM named '\(name)'") }
        let backend = try controller.config.backend(named: record.backend)
        let connection = try await connections.connection(for: backend)
        try await Provisioner(connection: connection).remove(name: name, pool: record.pool, volumes: record.volumes)
        try? FileManager.default.removeItem(atPath: record.consoleLog)
        try? FileManager.default.removeItem(atPath: controller.paths.seedDirectory(name))
        if try store.agent(name) != nil { try await controller.revoke(name: name) }
        try store.deleteVM(name)
        events.emit(.vmDestroyed, agent: name, "domain, volumes \(record.volumes.joined(separator: ", ")) and console log removed")
    }

    /// Watches a booting VM: console milestones become events, and the agent of this instance connecting
    /// makes it ready. Past the patience it stays provisioning and watched by `status`, not failed.
    func followBoot(_ record: VMRecord) async {
        var seen = Set<EventKind>()
        let milestones: [(String, EventKind, String)] = [
            ("Linux version", .vmKernelUp, "kernel up"),
            ("Cloud-init v.", .vmCloudInit, "cloud-init running"),
            ("ionlab: agent installed", .vmAgentInstalled, "agent installed by cloud-init"),
        ]
        let started = Date()
        while Date().timeIntervalSince(started) < 3600 {
            if let console = try? String(contentsOfFile: record.consoleLog, encoding: .utf8) {
                for (marker, kind, message) in milestones where !seen.contains(kind) && console.contains(marker) {
                    seen.insert(kind)
                    events.emit(kind, agent: record.name, message, detail: .elapsed(Elapsed(seconds: Date().timeIntervalSince(started))))
                }
            }
            if let session = controller.sessions.session(named: record.name), session.health?.instanceID == record.instanceID {
                guard var current = try? store.vm(record.name), current.instanceID == record.instanceID else { return }
                current.state = .ready
                current.readyAt = Date()
                try? store.updateVM(current)
                events.emit(.vmReady, agent: record.name, "agent of instance \(record.instanceID) connected",
                            detail: .elapsed(Elapsed(seconds: Date().timeIntervalSince(started))))
                return
            }
            guard (try? store.vm(record.name))?.instanceID == record.instanceID else { return }  // destroyed meanwhile
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// One libvirt connection per backend, opened on first use and reopened when it died; and the domain type
/// each backend uses, verified once by discovery unless the config forces one.
actor BackendConnections {
    private var open: [String: Connection] = [:]
    private var types: [String: String] = [:]

    func connection(for backend: BackendConfig) async throws -> Connection {
        if let connection = open[backend.name], connection.isAlive() { return connection }
        let connection = try await Connection.open(backend.uri)
        open[backend.name] = connection
        return connection
    }

    /// `kernel` (the image's, for direct boot) makes the probe boot Linux, the only check that catches
    /// KVM hosts whose guests start but hang.
    func domainType(for backend: BackendConfig, config: ControllerConfig, kernel: String?) async throws -> String {
        if let forced = backend.domainType { return forced }
        if let known = types[backend.name] { return known }
        let report = await Discovery.probe(backend, timeoutSeconds: config.probeTimeoutSeconds, kernel: kernel)
        guard let type = report.preferredDomainType(forced: nil) else {
            throw ControllerError("backend \(backend.name) has no working domain type: \(report.reason)")
        }
        types[backend.name] = type
        return type
    }
}
