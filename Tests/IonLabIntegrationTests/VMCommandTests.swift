import Foundation
import Testing

/// The VM commands through a real `ionlab serve` whose only backend is libvirt's `test:///default` (real
/// libvirt, in-memory hypervisor: domains "run" but boot nothing, so no agent ever connects and `--no-wait`
/// is used). The real boot is scripts/e2e-vm.sh.
@Suite(.serialized, .timeLimit(.minutes(2))) struct VMCommandTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A lab with the test backend, a one-image catalog and an agent bundle whose binary is a stand-in (the
    /// unit, install script and user-data are the real ones from agent-dist).
    func makeLab() async throws -> Lab {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-vm-\(UUID().uuidString.prefix(8))").path
        let bundle = "\(scratch)/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        try "#!/bin/sh\n# STAND-IN for ionlab-agent: test:///default boots nothing, so this never runs.\nexit 1\n"
            .write(toFile: "\(bundle)/ionlab-agent", atomically: true, encoding: .utf8)
        for (source, name) in [("systemd/ionlab-agent.service", "ionlab-agent.service"), ("cloud-init/install-agent.sh", "install-agent.sh"),
                               ("cloud-init/user-data", "user-data")] {
            try FileManager.default.copyItem(atPath: Self.repo.appendingPathComponent("agent-dist/\(source)").path, toPath: "\(bundle)/\(name)")
        }
        FileManager.default.createFile(atPath: "\(scratch)/base.raw", contents: Data(count: 1 << 20))
        try "images:\n  - name: test-base\n    path: \(scratch)/base.raw\n    format: raw\n    os: debian\n"
            .write(toFile: "\(scratch)/images.yaml", atomically: true, encoding: .utf8)
        return try await Lab(config: """
            agent_bundle: "\(bundle)"
            image_catalog: "\(scratch)/images.yaml"
            backends:
              - name: t
                uri: "test:///default"
                pool: default-pool
            """)
    }

    func vms(_ lab: Lab) async throws -> [[String: Any]] {
        let result = await lab.run(["vm", "list", "--json"])
        try #require(result.status == 0, "vm list: \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
    }

    /// Snapshots on the test driver (real libvirt snapshot calls and XML): taken while running and while shut
    /// off, listed oldest first and in vm info, reverted (a shut-off snapshot leaves the VM shut off), deleted,
    /// and one clear line for a name taken, a snapshot that does not exist, and a VM that does not.
    @Test func snapshotsAreTakenListedRevertedAndDeleted() async throws {
        let lab = try await makeLab()
        defer { lab.tearDown() }
        try await lab.startController()
        await #expect(lab.run(["vm", "create", "vm1", "--image", "test-base", "--memory", "256", "--no-wait"]).status == 0)

        let live = await lab.run(["vm", "snapshot", "create", "vm1", "live", "--description", "before the demo"])
        #expect(live.status == 0, "\(live.stderr)")
        #expect(live.stdout == "snapshot live of vm1 taken: disk and memory\n", "\(live.stdout)")
        await #expect(lab.run(["vm", "snapshot", "create", "vm1", "live"]).stderr == "ionlab: VM vm1 has a snapshot named 'live' already\n")
        await #expect(lab.run(["vm", "stop", "vm1"]).status == 0)
        let cold = await lab.run(["vm", "snapshot", "create", "vm1", "cold"])
        #expect(cold.stdout == "snapshot cold of vm1 taken: disk\n", "\(cold.stdout)\(cold.stderr)")

        let list = await lab.run(["vm", "snapshot", "list", "vm1", "--json"])
        let snapshots = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]], "\(list.stderr)")
        #expect(snapshots.map { $0["name"] as? String } == ["live", "cold"])
        #expect(snapshots.map { $0["domainState"] as? String } == ["running", "shutoff"])
        #expect(snapshots.first?["description"] as? String == "before the demo")
        let info = await lab.run(["vm", "info", "vm1"]).stdout
        #expect(info.contains("snapshot   live, taken ") && info.contains("(disk and memory): before the demo"), "\(info)")

        // Back to the running snapshot: the domain runs again (the test driver has no agent to wait for).
        let revert = await lab.run(["vm", "snapshot", "revert", "vm1", "live", "--no-wait"])
        #expect(revert.status == 0 && revert.stdout.contains("vm.reverted"), "\(revert.stdout)\(revert.stderr)")
        #expect(revert.stdout.contains("vm1: provisioning"), "\(revert.stdout)")
        await #expect(lab.run(["vm", "info", "vm1"]).stdout.contains("domain     running"))
        // Back to the shut-off one: off, as it was then.
        let off = await lab.run(["vm", "snapshot", "revert", "vm1", "cold"])
        #expect(off.status == 0 && off.stdout.contains("vm1: stopped"), "\(off.stdout)\(off.stderr)")

        await #expect(lab.run(["vm", "snapshot", "delete", "vm1", "live"]).stdout == "snapshot live of vm1 deleted\n")
        let missing = "ionlab: VM vm1 has no snapshot named 'live' (ionlab vm snapshot list vm1)\n"
        await #expect(lab.run(["vm", "snapshot", "revert", "vm1", "live"]).stderr == missing)
        await #expect(lab.run(["vm", "snapshot", "delete", "vm1", "live"]).stderr == missing)
        await #expect(lab.run(["vm", "snapshot", "create", "nosuch", "x"]).stderr == "ionlab: no VM named 'nosuch'\n")
        await #expect(lab.run(["vm", "snapshot", "create", "vm1", "../x"]).status != 0)
        // A VM with snapshots is destroyed whole.
        let destroyed = await lab.run(["vm", "destroy", "vm1"])
        #expect(destroyed.status == 0, "\(destroyed.stderr)")
    }

    /// The screen on the test driver (real libvirt screenshot and secure-XML calls): a PNG written where
    /// asked, the console's password for the operator, and one line for a VM with no screen.
    @Test func screenshotAndDisplay() async throws {
        let lab = try await makeLab()
        defer { lab.tearDown() }
        try await lab.startController()
        await #expect(lab.run(["vm", "create", "vm1", "--image", "test-base", "--memory", "256", "--no-wait"]).status == 0)
        let path = "\(lab.directory)/screen.png"
        let shot = await lab.run(["screenshot", "vm1", "-o", path])
        #expect(shot.status == 0, "\(shot.stderr)")
        #expect(shot.stdout.hasPrefix("wrote \(path): "), "\(shot.stdout)")
        let png = try #require(FileManager.default.contents(atPath: path))
        #expect(png.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))

        let display = await lab.run(["display", "vm1", "--json"])
        let info = try #require(try JSONSerialization.jsonObject(with: Data(display.stdout.utf8)) as? [String: Any], "\(display.stderr)")
        #expect(info["type"] as? String == "vnc")
        #expect((info["password"] as? String)?.count == 8)
        #expect(lab.log("controller.log").contains(info["password"] as? String ?? "-") == false)

        await #expect(lab.run(["vm", "stop", "vm1"]).status == 0)
        await #expect(lab.run(["screenshot", "vm1", "-o", path]).stderr == "ionlab: VM vm1 is not running (it is shut-off): it has no screen\n")
        await #expect(lab.run(["display", "vm1"]).stderr == "ionlab: VM vm1 is not running: its console listens only while it runs\n")
        await #expect(lab.run(["screenshot", "nosuch"]).stderr == "ionlab: no VM named 'nosuch'\n")
    }

    /// Power on the test driver, whose domains change state at once: each action, its event and the record's
    /// state, and a clear line for what cannot be done. (That a real guest comes back to ready after each is
    /// scripts/e2e-vm.sh's.)
    @Test func stopStartRestartSuspendResume() async throws {
        let lab = try await makeLab()
        defer { lab.tearDown() }
        try await lab.startController()
        await #expect(lab.run(["vm", "create", "vm1", "--image", "test-base", "--memory", "256", "--no-wait"]).status == 0)
        func state() async throws -> String? { try await vms(lab).first { $0["name"] as? String == "vm1" }?["state"] as? String }

        // vm info: the record, the domain as libvirt has it, the agent (pending: its token is not spent).
        let info = await lab.run(["vm", "info", "vm1"])
        #expect(info.status == 0, "\(info.stderr)")
        for line in ["state      provisioning", "domain     running", "disks      default-pool/vm1.qcow2, default-pool/vm1-seed.iso",
                     "resources  1 CPU(s), 256 MiB, 4 GiB", "agent      pending"] {
            #expect(info.stdout.contains(line), "\(line) missing from:\n\(info.stdout)")
        }
        await #expect(lab.run(["vm", "info", "nosuch"]).stderr == "ionlab: no VM named 'nosuch'\n")

        let stopped = await lab.run(["vm", "stop", "vm1"])
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(stopped.stdout.contains("vm.stopped") && stopped.stdout.contains("vm1: stopped"), "\(stopped.stdout)")
        await #expect(try state() == "stopped")
        let json = try await #require(try JSONSerialization.jsonObject(with: Data(lab.run(["vm", "info", "vm1", "--json"]).stdout.utf8)) as? [String: Any])
        #expect(json["domainState"] as? String == "shut-off")
        #expect((json["record"] as? [String: Any])?["state"] as? String == "stopped")
        await #expect(lab.run(["vm", "stop", "vm1"]).stderr == "ionlab: VM vm1 is not running (it is shut-off)\n")
        await #expect(lab.run(["vm", "suspend", "vm1"]).stderr == "ionlab: VM vm1 is not running (it is shut-off)\n")

        let started = await lab.run(["vm", "start", "vm1", "--no-wait"])
        #expect(started.status == 0 && started.stdout.contains("vm.started"), "\(started.stdout)\(started.stderr)")
        await #expect(try state() == "provisioning")
        await #expect(lab.run(["vm", "start", "vm1", "--no-wait"]).stderr == "ionlab: VM vm1 is running already\n")

        await #expect(lab.run(["vm", "suspend", "vm1"]).stdout.contains("vm.suspended"))
        await #expect(try state() == "suspended")
        await #expect(lab.run(["vm", "resume", "vm1"]).stdout.contains("vm.resumed"))
        await #expect(try state() == "provisioning")
        await #expect(lab.run(["vm", "resume", "vm1"]).stderr == "ionlab: VM vm1 is not suspended (it is running)\n")

        let restarted = await lab.run(["vm", "restart", "vm1", "--no-wait"])
        #expect(restarted.status == 0, "\(restarted.stderr)")
        #expect(restarted.stdout.contains("vm.stopped") && restarted.stdout.contains("vm.started"), "\(restarted.stdout)")
        await #expect(lab.run(["vm", "stop", "nosuch"]).stderr == "ionlab: no VM named 'nosuch'\n")
        await #expect(lab.run(["vm", "stop", "vm1", "--stop-timeout", "0"]).stderr.contains("--stop-timeout must be more than 0"))
    }

    @Test func createListCloneDestroy() async throws {
        let lab = try await makeLab()
        try await lab.startController()

        let created = await lab.run(["vm", "create", "vm1", "--image", "test-base", "--cpus", "2", "--memory", "256", "--no-wait"])
        #expect(created.status == 0, "\(created.stderr)")
        for step in ["vm.provisioning", "vm.defined", "vm.started"] { #expect(created.stdout.contains(step), "\(step) missing: \(created.stdout)") }
        #expect(created.stdout.contains("vm1: provisioning (instance vm1-"))

        var list = try await vms(lab)
        #expect(list.count == 1)
        #expect(list.first?["state"] as? String == "provisioning")
        #expect(list.first?["volumes"] as? [String] == ["vm1.qcow2", "vm1-seed.iso"])
        #expect(list.first?["domainType"] as? String == "test")
        #expect(list.first?["cpus"] as? Int == 2)
        await #expect(lab.agentStates()["vm1"] == "pending")  // a token was minted for it

        let again = await lab.run(["vm", "create", "vm1", "--image", "test-base", "--no-wait"])
        #expect(again.status == 1)
        #expect(again.stderr == "ionlab: a VM named 'vm1' exists already (ionlab vm destroy vm1 first)\n")

        // --json: the events as they come, then the new VM's record.
        let clone = await lab.run(["vm", "clone", "vm1", "vm2", "--no-wait", "--json"])
        #expect(clone.status == 0, "\(clone.stderr)")
        let lines = try clone.stdout.split(separator: "\n").map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(lines.dropLast().contains { $0["kind"] as? String == "vm.started" }, "\(clone.stdout)")
        #expect(lines.last?["name"] as? String == "vm2" && lines.last?["cpus"] as? Int == 2, "\(clone.stdout)")
        list = try await vms(lab)
        #expect(list.compactMap { $0["name"] as? String } == ["vm1", "vm2"])
        #expect(list.last?["cpus"] as? Int == 2)
        #expect(list[0]["instanceID"] as? String != list[1]["instanceID"] as? String)

        let logs = await lab.run(["logs", "vm1", "--console"])
        #expect(logs.status == 1)
        #expect(logs.stderr.contains("no console log yet"))

        let destroyed = await lab.run(["vm", "destroy", "vm1"])
        #expect(destroyed.status == 0, "\(destroyed.stderr)")
        await #expect(try vms(lab).compactMap { $0["name"] as? String } == ["vm2"])
        await #expect(lab.agentStates()["vm1"] == "revoked")
        await #expect(lab.run(["events"]).stdout.contains("vm.destroyed  vm1"))
        await #expect(lab.run(["vm", "destroy", "vm2"]).status == 0)
        await #expect(try vms(lab).isEmpty)
    }

    @Test(arguments: [
        (["--image", "nope"], "ionlab: no image 'nope' in the catalog (known: test-base)\n"),
        (["--image", "test-base", "--backend", "nowhere"], "ionlab: no backend 'nowhere' in the controller config (known: t)\n"),
        (["--image", "test-base", "--memory", "8"], "ionlab: resources out of range: cpus 1-64, memory 128-262144 MiB, disk 1-4096 GiB\n"),
    ])
    func badRequestsCreateNothing(arguments: [String], expected: String) async throws {
        let lab = try await makeLab()
        try await lab.startController()
        let result = await lab.run(["vm", "create", "bad"] + arguments + ["--no-wait"])
        #expect(result.status == 1)
        #expect(result.stderr == expected)
        await #expect(try vms(lab).isEmpty)
    }
}
