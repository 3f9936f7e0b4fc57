import Foundation
import Testing

/// A lab for fleets: a real `ionlab serve` with two libvirt test hosts of different sizes (`test:///PATH.xml`
/// node files: "big" with 4 CPUs and 4 GiB, "small" with 2 CPUs and 2 GiB), and stand-in guests. The test
/// driver's domains boot nothing, so for every VM the controller provisions, a real `ionlab-agent` is started
/// on this host from the seed the controller generated for it (its agent.json and instance id): it enrolls
/// with the VM's one-time token and connects back over mutual TLS on 127.0.0.1, as the VM's agent would.
final class FleetLab: @unchecked Sendable {
    let lab: Lab
    let scratch: String
    private var watcher: DispatchSourceTimer?
    private let started = NSLock()
    private var guests: Set<String> = []
    private var guestState: [String: String] = [:]

    /// Added to the environment of every stand-in guest's agent (and so of the commands it runs).
    let guestEnvironment: [String: String]

    init(extraConfig: String = "", guestEnvironment: [String: String] = [:]) async throws {
        self.guestEnvironment = guestEnvironment
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-fleet-\(UUID().uuidString.prefix(8))").path
        let bundle = "\(scratch)/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        try "#!/bin/sh\n# STAND-IN for ionlab-agent inside a VM: test:/// domains boot nothing; the lab starts the real agent on the host.\nexit 1\n"
            .write(toFile: "\(bundle)/ionlab-agent", atomically: true, encoding: .utf8)
        for (source, name) in [("systemd/ionlab-agent.service", "ionlab-agent.service"), ("cloud-init/install-agent.sh", "install-agent.sh"),
                               ("cloud-init/user-data", "user-data")] {
            try FileManager.default.copyItem(atPath: VMCommandTests.repo.appendingPathComponent("agent-dist/\(source)").path,
                                             toPath: "\(bundle)/\(name)")
        }
        FileManager.default.createFile(atPath: "\(scratch)/base.raw", contents: Data(count: 1 << 20))
        try "images:\n  - name: test-base\n    path: \(scratch)/base.raw\n    format: raw\n    os: debian\n"
            .write(toFile: "\(scratch)/images.yaml", atomically: true, encoding: .utf8)
        for (name, cpus, memoryMiB) in [("big", 4, 4096), ("small", 2, 2048)] {
            try FileManager.default.createDirectory(atPath: "\(scratch)/pool-\(name)", withIntermediateDirectories: true)
            try Self.nodeXML(cpus: cpus, memoryMiB: memoryMiB, pool: "\(scratch)/pool-\(name)")
                .write(toFile: "\(scratch)/\(name).xml", atomically: true, encoding: .utf8)
        }
        lab = try await Lab(config: """
            agent_bundle: "\(bundle)"
            image_catalog: "\(scratch)/images.yaml"
            backends:
              - name: big
                uri: "test://\(scratch)/big.xml"
                controller_address: 127.0.0.1
              - name: small
                uri: "test://\(scratch)/small.xml"
                controller_address: 127.0.0.1
            \(extraConfig)
            """)
    }

    deinit {
        watcher?.cancel()
        lab.tearDown()
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// A libvirt test-driver host: its CPUs, its memory and one directory pool named `ionlab`.
    static func nodeXML(cpus: Int, memoryMiB: Int, pool: String) -> String {
        """
        <node>
          <cpu><mhz>2000</mhz><model>x86_64</model><active>\(cpus)</active><nodes>1</nodes><sockets>1</sockets>
            <cores>\(cpus)</cores><threads>1</threads></cpu>
          <memory>\(memoryMiB * 1024)</memory>
          <pool type='dir'><name>ionlab</name><target><path>\(pool)</path></target></pool>
        </node>
        """
    }

    /// Starts the controller and the stand-in guest watcher.
    func start(controllerArguments: [String] = []) async throws {
        try await lab.startController(arguments: controllerArguments)
        startGuests()
    }

    /// Every 100 ms: a VM seed without a guest gets one (its agent, ``Lab/quickAgent(_:)``). The watcher
    /// runs on a dispatch queue of its own, apart from the tests' tasks. It holds the lab weakly, so the lab's
    /// deinit still runs and kills every process it started.
    func startGuests() {
        let seeds = "\(lab.stateDir)/seeds"
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "ionlab.test.guests"))
        timer.schedule(deadline: .now(), repeating: .milliseconds(100))
        timer.setEventHandler { [weak self] in self?.bootNewGuests(seeds) }
        timer.resume()
        watcher = timer
    }

    private func bootNewGuests(_ seeds: String) {
        for vm in (try? FileManager.default.contentsOfDirectory(atPath: seeds)) ?? [] {
            try? boot(vm, seed: "\(seeds)/\(vm)")
        }
    }

    private func boot(_ vm: String, seed: String) throws {
        guard let meta = try? String(contentsOfFile: "\(seed)/meta-data", encoding: .utf8),
              let line = meta.split(separator: "\n").first(where: { $0.hasPrefix("instance-id: ") }) else { return }
        let instance = String(line.dropFirst("instance-id: ".count))
        let key = "\(vm)/\(instance)"
        guard started.withLock({ guests.insert(key).inserted }) else { return }
        let guest = "\(lab.directory)/guest-\(vm)-\(instance)"
        try FileManager.default.createDirectory(atPath: guest, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(seed)/agent.json", toPath: "\(guest)/agent.json")
        try Lab.editAgentConfig("\(guest)/agent.json", Lab.quickAgent)
        try instance.write(toFile: "\(guest)/instance-id", atomically: true, encoding: .utf8)
        try lab.startAgent(vm, config: "\(guest)/agent.json", stateName: "\(vm)-\(instance)",
                           arguments: ["--instance-id-file", "\(guest)/instance-id"], environment: guestEnvironment)
        started.withLock { guestState[vm] = "\(vm)-\(instance)" }
    }

    /// The agent process standing in for the VM's guest.
    func guest(_ vm: String) -> Process? {
        started.withLock { guestState[vm] }.flatMap { lab.agentProcess($0) }
    }

    /// Writes a fleet spec into the scratch directory and returns its path.
    func spec(_ name: String, _ yaml: String) throws -> String {
        let path = "\(scratch)/\(name).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func events(fleet: String) async -> [[String: Any]] {
        let result = await lab.run(["events", "--fleet", fleet, "--json"])
        return result.stdout.split(separator: "\n").compactMap { line in
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
    }

    /// The payload of an event's typed detail of `kind` (`{"detail": {"step": {...}}}`), if it has one.
    static func detail(_ event: [String: Any], _ kind: String) -> [String: Any]? {
        (event["detail"] as? [String: Any])?[kind] as? [String: Any]
    }

    func vms() async -> [[String: Any]] {
        let result = await lab.run(["vm", "list", "--json"])
        return (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    /// Jobs the store recorded, as (agent, command line) pairs.
    func jobs() async -> [(agent: String, command: String)] {
        let result = await lab.run(["jobs", "--json", "--limit", "1000"])
        let list = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
        return list.map { ($0["agent"] as? String ?? "", ($0["argv"] as? [String] ?? []).joined(separator: " ")) }
    }
}
