import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabControllerConfig
import IonLabProvision
import IonLabSpec
import IonLabWire
import Libvirt

/// The controller's side of VMs: it provisions them through libvirt, records them, follows each one's boot
/// from its serial console to its agent connecting back, and removes them with everything they own.
struct VMManager: VMProvisioning {
    let config: ControllerConfig
    let paths: StatePaths
    let store: Store
    let events: EventLog
    let connections: BackendConnections
    /// Mints each VM's enrollment token.
    let enrollment: Enrollment
    /// Revokes a destroyed VM's agent.
    let agents: AgentDirectory
    /// Who is connected, and the signal that fires when an agent connects or a VM becomes ready.
    let sessions: SessionRegistry

    /// Provisions a VM and returns its record once the domain has started; its timeline goes on in the background.
    func create(_ request: VMCreateRequest) async throws -> VMRecord {
        try AgentName.validate(request.name)
        guard VMLimits.allow(cpus: request.cpus, memoryMiB: request.memoryMiB, diskGiB: request.diskGiB) else {
            throw ControllerError("resources out of range: \(VMLimits.summary)")
        }
        let backend = try config.backend(named: request.backend)
        let image = try catalog().image(named: request.image)
        let bundle = try AgentBundle.locate(configured: config.agentBundle)
        let connection = try await connections.connection(for: backend)
        let domainType = try await connections.domainType(for: backend, config: config, kernel: try catalog().probeKernel(preferring: image.name))
        let instanceID = ProvisionPlan.newInstanceID(for: request.name)
        let consoleLog = "\(paths.directory)/console/\(request.name).log"
        try FileManager.default.createDirectory(atPath: "\(paths.directory)/console", withIntermediateDirectories: true)

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
            let grant = try enrollment.createToken(name: request.name, endpoints: [endpoint], ttl: nil)
            let agentConfig = AgentConfig(name: request.name, endpoints: [endpoint], caPin: try CAPin(parsing: grant.caPin), token: grant.token)
            let seed = try Seed(bundle: bundle, instanceID: instanceID, hostname: request.name, agentConfigJSON: agentConfig.json())
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
            try? FileManager.default.removeItem(atPath: paths.seedDirectory(request.name))
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

    /// Keeps the seed's generated files (`meta-data`, `agent.json`) in the state directory, private: what this VM
    /// was given, for inspection, and for stand-in guests on drivers that cannot carry a seed volume (test:///).
    private func keepSeed(_ seed: Seed, of name: String) throws {
        let directory = paths.seedDirectory(name)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for file in seed.files where ["meta-data", "agent.json"].contains(file.name) {
            guard FileManager.default.createFile(atPath: "\(directory)/\(file.name)", contents: file.contents,
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw ControllerError("cannot write \(directory)/\(file.name)")
            }
        }
    }

    /// Removes the domain, its volumes and console log, and revokes the agent's certificate.
    func destroy(_ name: String) async throws {
        guard let record = try store.vm(name) else { throw ControllerError("no VM named '\(name)'") }
        let backend = try config.backend(named: record.backend)
        let connection = try await connections.connection(for: backend)
        try await Provisioner(connection: connection).remove(name: name, pool: record.pool, volumes: record.volumes)
        try? FileManager.default.removeItem(atPath: record.consoleLog)
        try? FileManager.default.removeItem(atPath: paths.seedDirectory(name))
        if try store.agent(name) != nil { try await agents.revoke(name) }
        try store.deleteVM(name)
        events.emit(.vmDestroyed, agent: name, "domain, volumes \(record.volumes.joined(separator: ", ")) and console log removed")
    }

    /// Watches a booting VM: console milestones become events, and the agent of this instance connecting
    /// makes it ready. Past the patience it stays provisioning and watched by `status`, not failed. The console
    /// is read from where the last look stopped; the agent's arrival is a signal, not something looked for.
    ///
    /// `since` is when this boot began: only an agent that connected after it counts (after a restart the
    /// previous boot's connection may not have closed yet).
    func followBoot(_ record: VMRecord, since: Date = .distantPast) async {
        // A boot after the first appends to the same console log: only what it adds is its own.
        var console = ConsoleMilestones(path: record.consoleLog, skippingWhatIsThere: since != .distantPast)
        let started = Date()
        let deadline = started.addingTimeInterval(3600)
        var readyAt: Date?
        while Date() < deadline, !(readyAt != nil && console.isComplete) {
            for (kind, message) in console.newMilestones() {
                events.emit(kind, agent: record.name, message, detail: .elapsed(Elapsed(seconds: Date().timeIntervalSince(started))))
            }
            if let readyAt {
                // The agent may be ready before cloud-init has finished: its last stages still belong to the
                // timeline, for five minutes at most, and only while this boot lasts.
                guard Date() < readyAt.addingTimeInterval(300), let current = try? store.vm(record.name),
                      current.instanceID == record.instanceID, current.state == .ready else { return }
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            if isConnected(record, since: since) {
                guard var current = try? store.vm(record.name), current.instanceID == record.instanceID else { return }
                current.state = .ready
                current.readyAt = Date()
                try? store.updateVM(current)
                sessions.changes.notify()
                events.emit(.vmReady, agent: record.name, "agent of instance \(record.instanceID) connected",
                            detail: .elapsed(Elapsed(seconds: Date().timeIntervalSince(started))))
                readyAt = Date()
                continue
            }
            guard (try? store.vm(record.name))?.instanceID == record.instanceID else { return }  // destroyed meanwhile
            // The console has no signal of its own: look at it again in half a second, or sooner if the agent came.
            let generation = sessions.changes.generation
            await sessions.changes.change(after: generation, until: .now + .milliseconds(500))
        }
    }

    /// Whether the agent of this very instance is connected and has said so in its health.
    private func isConnected(_ record: VMRecord, since: Date) -> Bool {
        guard let session = sessions.session(named: record.name) else { return false }
        return session.health?.instanceID == record.instanceID && session.connectedAt >= since
    }

    func waitReady(_ name: String, instanceID: String, patience: Double) async -> Bool {
        let verdict: Bool? = await sessions.changes.wait(for: {
            guard let record = try? store.vm(name), record.instanceID == instanceID else { return false }
            return record.state == .ready && sessions.session(named: name) != nil ? true : nil
        }, timeout: .clamped(seconds: patience))
        return verdict ?? false
    }

    /// The domain's state as libvirt has it now, or nil when the backend does not answer.
    func domainState(_ record: VMRecord) async -> String? {
        try? await domain(of: record).info().state.rawValue
    }

    /// The VM's domain, through its backend's connection.
    func domain(of record: VMRecord) async throws -> Domain {
        try await connections.connection(for: try config.backend(named: record.backend)).domain(named: record.name)
    }

    // MARK: Power

    /// Stops (through ACPI, forced off after `timeout` seconds), starts, restarts, suspends or resumes a VM,
    /// and returns its record. After a start it is provisioning until its agent is back, as after create.
    func power(_ action: PowerAction, _ name: String, timeout: Double?) async throws -> VMRecord {
        guard var record = try store.vm(name) else { throw ControllerError("no VM named '\(name)'") }
        let domain = try await domain(of: record)
        let state = try await domain.info().state
        let running: Set<Domain.State> = [.running, .blocked, .paused]
        switch action {
        case .stop, .restart:
            if action == .stop || running.contains(state) {
                guard running.contains(state) else { throw ControllerError("VM \(name) is not running (it is \(state.rawValue))") }
                try await stop(domain, &record, timeout: timeout ?? 60, paused: state == .paused)
            }
            if action == .restart { try await start(domain, &record) }
        case .start:
            guard !running.contains(state) else { throw ControllerError("VM \(name) is running already") }
            try await start(domain, &record)
        case .suspend:
            guard state == .running || state == .blocked else { throw ControllerError("VM \(name) is not running (it is \(state.rawValue))") }
            try await domain.suspend()
            record.state = .suspended
            try store.updateVM(record)
            events.emit(.vmSuspended, agent: name, "suspended: its CPUs are paused, its memory kept")
        case .resume:
            guard state == .paused else { throw ControllerError("VM \(name) is not suspended (it is \(state.rawValue))") }
            try await domain.resume()
            record.state = record.readyAt == nil ? .provisioning : .ready
            try store.updateVM(record)
            events.emit(.vmResumed, agent: name, "resumed")
        }
        return record
    }

    static let powerButtonRepeatSeconds = 5.0

    private func stop(_ domain: Domain, _ record: inout VMRecord, timeout: Double, paused: Bool) async throws {
        let started = Date()
        if paused { try await domain.resume() }  // a paused guest cannot hear the power button
        try await domain.shutdown()
        var pressed = started
        // libvirt tells of the shutdown only to a registered event loop; its state is cheap to read meanwhile.
        var forced = false
        while try await domain.isActive() {
            if Date().timeIntervalSince(started) > timeout {
                try await domain.destroy()
                forced = true
                break
            }
            // A guest still booting has no one listening to the power button yet (systemd-logind starts late,
            // and the agent is ready before it): press it again every few seconds. A guest already shutting
            // down ignores the repeats.
            if Date().timeIntervalSince(pressed) >= Self.powerButtonRepeatSeconds {
                try? await domain.shutdown()
                pressed = Date()
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        record.state = .stopped
        try store.updateVM(record)
        let seconds = Date().timeIntervalSince(started)
        events.emit(.vmStopped, agent: record.name, forced ? "forced off: the guest did not shut down within \(Int(timeout))s"
                    : "shut down through ACPI in \(String(format: "%.1f", seconds))s", detail: .elapsed(Elapsed(seconds: seconds)))
    }

    private func start(_ domain: Domain, _ record: inout VMRecord) async throws {
        let started = Date()
        try await domain.start()
        record.state = .provisioning
        try store.updateVM(record)
        events.emit(.vmStarted, agent: record.name, "domain \(record.name) started")
        let watched = record
        Task { await self.followBoot(watched, since: started) }
    }

    // MARK: Images and placement

    func catalog() throws -> ImageCatalog {
        try ImageCatalog.load(path: paths.resolve(config.imageCatalog))
    }

    /// Probes every backend's domain type once, in the background of a starting controller, so that the
    /// first `vm create` does not wait for a probe VM to boot (about 10 s under TCG).
    func probeBackends() async {
        let kernel = try? catalog().probeKernel()
        await withTaskGroup(of: Void.self) { group in
            for backend in config.backends {
                group.addTask { _ = try? await self.connections.domainType(for: backend, config: self.config, kernel: kernel) }
            }
        }
    }

    func checkImage(_ name: String) throws {
        _ = try catalog().image(named: name)
    }

    /// The spec's backends (all of them for `auto`), measured at once; one that does not answer has none.
    func capacities(for spec: FleetSpec) async throws -> [HostCapacity] {
        let candidates: [BackendConfig]
        switch spec.backend {
        case .auto: candidates = config.backends
        case .named(let names): candidates = try names.map { try config.backend(named: $0) }
        }
        let kernel = try? catalog().probeKernel(preferring: spec.image)
        return await withTaskGroup(of: (Int, HostCapacity).self) { group in
            for (index, backend) in candidates.enumerated() {
                group.addTask { (index, await self.capacity(of: backend, kernel: kernel)) }
            }
            var hosts = [HostCapacity?](repeating: nil, count: candidates.count)
            for await (index, host) in group { hosts[index] = host }
            return hosts.compactMap { $0 }
        }
    }

    private func capacity(of backend: BackendConfig, kernel: String?) async -> HostCapacity {
        do {
            _ = try await connections.domainType(for: backend, config: config, kernel: kernel)
            let connection = try await connections.connection(for: backend)
            return try await HostCapacity.measure(connection, backend: backend.name)
        } catch {
            return .unavailable(backend.name, AdminHandler.describe(error))
        }
    }
}

/// The boot milestones a VM's serial console shows, read as the log grows: each read starts where the last
/// one stopped, and a marker split across two reads is still found.
struct ConsoleMilestones {
    /// What marks each milestone on the console. The agent's marker is printed by the seed's user-data
    /// (agent-dist/cloud-init/user-data): the two must say the same.
    static let markers: [(marker: String, kind: EventKind, message: String)] = [
        ("Linux version", .vmKernelUp, "kernel up"),
        ("Cloud-init v.", .vmCloudInit, "cloud-init running"),
        ("running 'init' at", .vmCloudInitNetwork, "cloud-init: network stage"),
        ("running 'modules:config'", .vmCloudInitConfig, "cloud-init: config stage"),
        ("running 'modules:final'", .vmCloudInitFinal, "cloud-init: final stage"),
        (agentInstalledMarker, .vmAgentInstalled, "agent installed by cloud-init"),
        ("Datasource DataSource", .vmCloudInitDone, "cloud-init done"),  // "Cloud-init v. N finished at … Datasource DataSourceNoCloud …"
    ]
    static let agentInstalledMarker = "ionlab: agent installed"

    let path: String
    private var offset: UInt64 = 0
    /// The end of the last read, kept so that a marker cut in two is still seen.
    private var carry = ""
    private var seen = Set<EventKind>()

    init(path: String, skippingWhatIsThere: Bool = false) {
        self.path = path
        if skippingWhatIsThere, let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? UInt64 {
            offset = size
        }
    }

    /// Every milestone has been seen.
    var isComplete: Bool { seen.count == Self.markers.count }

    /// The milestones that appeared since the last call, in order.
    mutating func newMilestones() -> [(EventKind, String)] {
        guard seen.count < Self.markers.count, let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty else { return [] }
        offset += UInt64(data.count)
        let text = carry + String(decoding: data, as: UTF8.self)
        carry = String(text.suffix(64))
        var found: [(EventKind, String)] = []
        for (marker, kind, message) in Self.markers where !seen.contains(kind) && text.contains(marker) {
            seen.insert(kind)
            found.append((kind, message))
        }
        return found
    }
}

/// One libvirt connection per backend, opened on first use and reopened when it died; and the domain type
/// each backend uses, verified once by discovery unless the config forces one.
actor BackendConnections {
    private var open: [String: Connection] = [:]
    /// Each backend's probe, shared by whoever asks while it runs; a failed one is forgotten, so the next
    /// caller probes again.
    private var types: [String: Task<String, Error>] = [:]

    func connection(for backend: BackendConfig) async throws -> Connection {
        if let connection = open[backend.name], connection.isAlive() { return connection }
        let connection = try await Connection.open(backend.uri)
        open[backend.name] = connection
        return connection
    }

    /// `kernel` (``ImageCatalog/probeKernel(preferring:)``) makes the probe boot Linux, the only check that
    /// catches KVM hosts whose guests start but hang.
    func domainType(for backend: BackendConfig, config: ControllerConfig, kernel: String?) async throws -> String {
        if let forced = backend.domainType { return forced }
        let probe = types[backend.name] ?? Task {
            let report = await Discovery.probe(backend, timeoutSeconds: config.probeTimeoutSeconds, kernel: kernel)
            guard let type = report.preferredDomainType(forced: nil) else {
                throw ControllerError("backend \(backend.name) has no working domain type: \(report.reason)")
            }
            return type
        }
        types[backend.name] = probe
        do {
            return try await probe.value
        } catch {
            if types[backend.name] == probe { types[backend.name] = nil }
            throw error
        }
    }
}
