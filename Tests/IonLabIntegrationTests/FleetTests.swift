import Foundation
import Testing

/// `ionlab up`, `status`, `down`, `exec --fleet` and `events --fleet` through a real controller with two
/// libvirt test hosts and real agents standing in for the guests (see ``FleetLab``).
@Suite(.serialized, .timeLimit(.minutes(3))) struct FleetTests {
    /// The spec header every test uses: image, backends, one small VM size.
    static func header(_ name: String, backend: String = "auto") -> String {
        "name: \(name)\nbackend: \(backend)\nimage: test-base\nresources: {cpus: 1, memory_mib: 256, disk_gib: 1}\n"
    }

    /// The cells of the summary table's row for `vm`.
    static func row(_ vm: String, in output: String) -> [String] {
        let line = output.split(separator: "\n").first { $0.hasPrefix(vm + " ") } ?? ""
        return line.split(separator: " ").map(String.init)
    }

    @Test func placementFollowsFreeMemoryThenFreeCPUs() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let spec = try fleet.spec("place", Self.header("place") + """
            vms:
              - {name: large, memory_mib: 3072}
              - {name: v1, memory_mib: 512}
              - {name: v2, memory_mib: 512}
              - {name: v3, memory_mib: 512}
            """)
        let up = await fleet.lab.run(["up", spec])
        #expect(up.status == 0, "\(up.stdout)\n\(up.stderr)")
        let placed = await Dictionary(uniqueKeysWithValues: fleet.vms().map { ($0["name"] as? String ?? "", $0["backend"] as? String ?? "") })
        // large fits only on big (4096 MiB); v1 and v2 go where more memory is left (small: 2048, then 1536);
        // v3 finds 1024 MiB left on both and goes to big, which has CPUs free.
        #expect(placed == ["large": "big", "v1": "small", "v2": "small", "v3": "big"])
        await #expect(fleet.events(fleet: "place").contains { $0["kind"] as? String == "fleet.placed" })
    }

    @Test func aVMThatFitsNowhereStopsTheFleetBeforeAnythingIsCreated() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let spec = try fleet.spec("huge", Self.header("huge") + "vms:\n  - {name: ok1}\n  - {name: huge, memory_mib: 6144}\n")
        let up = await fleet.lab.run(["up", spec])
        #expect(up.status == 1)
        #expect(up.stderr == "ionlab: no backend can take huge (1 CPU, 6144 MiB): big: 3840 MiB of memory left; small: 2048 MiB of memory left\n")
        await #expect(fleet.vms().isEmpty)
        let wrongCPU = try fleet.spec("cpu", Self.header("cpu", backend: "small") + "vms:\n  - {name: wide, cpus: 3}\n")
        let refused = await fleet.lab.run(["up", wrongCPU])
        #expect(refused.stderr == "ionlab: no backend can take wide (3 CPU, 256 MiB): small: 3 CPUs asked, the host has 2\n")
        await #expect(fleet.vms().isEmpty)
    }

    @Test func badSpecsAreRejectedWithFileLineAndField() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let cases: [(String, String, String)] = [
            ("type", "name: t\nimage: test-base\ncount: two\n", "type.yaml:3: count: expected an integer, found 'two'"),
            ("unknown", "name: u\nimage: test-base\ncount: 1\ncolour: blue\n", "unknown.yaml:4: colour: unknown field"),
            ("noimage", "name: n\ncount: 1\n", "noimage.yaml:1: image: missing required field"),
            ("badimage", "name: b\nimage: nope\ncount: 1\n", "badimage.yaml:2: image: no image named 'nope' in the catalog (it has: test-base)"),
            ("badvmimage", "name: b\nimage: test-base\nvms:\n  - {name: b-1}\n  - {name: b-2, image: nope}\n",
             "badvmimage.yaml:5: vms[1].image: no image named 'nope' in the catalog (it has: test-base)"),
            ("badbackend", "name: b\nbackend: [big, huge]\nimage: test-base\ncount: 1\n",
             "badbackend.yaml:2: backend[1]: no backend named 'huge' in the controller config (it has: big, small)"),
            ("nocopy", "name: c\nimage: test-base\ncount: 1\nworkflow:\n  - copy: {from: missing.txt, to: /tmp/x}\n",
             "nocopy.yaml:5: workflow[0].copy.from: no such file or directory \(fleet.scratch)/missing.txt"),
            ("relative", "name: c\nimage: test-base\ncount: 1\nworkflow:\n  - copy: {from: images.yaml, to: tmp/x}\n",
             "relative.yaml:5: workflow[0].copy.to: must be an absolute path in the VM, found 'tmp/x'"),
        ]
        for (name, yaml, message) in cases {
            let path = try fleet.spec(name, yaml)
            let up = await fleet.lab.run(["up", path])
            #expect(up.status == 1, "\(name)")
            #expect(up.stderr == "ionlab: \(fleet.scratch)/\(message)\n", "\(name)")
        }
        await #expect(fleet.vms().isEmpty)
    }

    /// At most `--parallel` VMs are between "provisioning" and "started" at any point of the event stream.
    @Test func provisioningStaysWithinTheParallelismBound() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        for (name, parallel) in [("one", 1), ("three", 3)] {
            let spec = try fleet.spec(name, Self.header(name, backend: "big") + "count: 6\n")
            let up = await fleet.lab.run(["up", spec, "--parallel", String(parallel)])
            #expect(up.status == 0, "\(up.stdout)\n\(up.stderr)")
            var inFlight = 0, peak = 0
            for event in await fleet.events(fleet: name) {
                switch event["kind"] as? String {
                case "vm.provisioning": inFlight += 1
                case "vm.started", "vm.failed": inFlight -= 1
                default: continue
                }
                peak = max(peak, inFlight)
            }
            #expect(peak <= parallel, "\(name): \(peak) provisioning at once")
            if parallel > 1 { #expect(peak > 1, "\(name): provisioning never overlapped") }
            await #expect(fleet.lab.run(["down", name]).status == 0)
        }
    }

    /// A failing step ends the VM's workflow; the summary names the step and shows its last output lines.
    @Test func aFailedStepIsSummarisedAndTheExitCodeIsNonZero() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let marker = "\(fleet.scratch)/after-failure"
        let spec = try fleet.spec("bad", Self.header("bad", backend: "big") + """
            count: 1
            workflow:
              - name: fine
                exec: ["true"]
              - name: breaks
                exec: ["sh", "-c", "echo first line; echo boom >&2; exit 3"]
              - name: never
                exec: ["touch", "\(marker)"]
            """)
        let up = await fleet.lab.run(["up", spec])
        #expect(up.status == 1)
        #expect(Self.row("bad-1", in: up.stdout).prefix(3) == ["bad-1", "big", "failed"], "\(up.stdout)")
        // stdout and stderr lines come interleaved as they arrived, in either order.
        #expect(up.stdout.contains("bad-1: failed at breaks:\n  | sh -c echo first line; echo boom >&2; exit 3 exited with 3\n  | "), "\(up.stdout)")
        #expect(up.stdout.contains("  | first line\n") && up.stdout.contains("  | boom\n"), "\(up.stdout)")
        #expect(up.stdout.contains("fleet bad: 0 of 1 VM(s) ok"))
        #expect(!FileManager.default.fileExists(atPath: marker))
        let status = await fleet.lab.run(["status", "bad"])
        #expect(status.stdout.contains("failed 2/3: breaks"), "\(status.stdout)")
    }

    /// Step order, a copy, retry:N, continue, and a timeout, on a real agent.
    @Test func theWorkflowEngineRunsStepsInOrderWithTimeoutsAndPolicies() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let log = "\(fleet.scratch)/order.log", counter = "\(fleet.scratch)/flaky.count"
        try FileManager.default.createDirectory(atPath: "\(fleet.scratch)/site", withIntermediateDirectories: true)
        try "hello from the controller\n".write(toFile: "\(fleet.scratch)/site/index.html", atomically: true, encoding: .utf8)
        let spec = try fleet.spec("flow", Self.header("flow", backend: "small") + """
            count: 1
            workflow:
              - name: one
                exec: ["sh", "-c", "echo one >> \(log)"]
              - name: deploy site
                copy: {from: site, to: "\(fleet.scratch)/deployed"}
              - name: flaky
                exec: ["sh", "-c", "n=$(cat \(counter) 2>/dev/null || echo 0); echo $((n+1)) > \(counter); [ $n -ge 1 ]"]
                on_failure: retry:2
              - name: tolerated
                exec: ["false"]
                on_failure: continue
              - name: two
                exec: ["sh", "-c", "echo two >> \(log)"]
              - name: slow
                exec: ["sleep", "30"]
                timeout_seconds: 1
              - name: never
                exec: ["sh", "-c", "echo never >> \(log)"]
            """)
        let up = await fleet.lab.run(["up", spec])
        #expect(up.status == 1)
        #expect(Self.row("flow-1", in: up.stdout).prefix(4) == ["flow-1", "small", "timed", "out"], "\(up.stdout)")
        #expect(up.stdout.contains("flow-1: timed out at slow:\n  | sleep 30 timed out after 1s"), "\(up.stdout)")
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "one\ntwo\n")
        #expect(try String(contentsOfFile: "\(fleet.scratch)/deployed/index.html", encoding: .utf8) == "hello from the controller\n")
        #expect(try String(contentsOfFile: counter, encoding: .utf8) == "2\n")
        let events = await fleet.events(fleet: "flow")
        let starts = events.filter { $0["kind"] as? String == "step.started" }.compactMap { FleetLab.detail($0, "step")?["number"] as? Int }
        #expect(starts == [1, 2, 3, 3, 4, 5, 6])
        let kinds = events.compactMap { $0["kind"] as? String }
        for kind in ["fleet.started", "vm.provisioning", "vm.started", "vm.ready", "health.check", "deploy.started", "deploy.done",
                     "fleet.warning", "step.failed", "fleet.error", "fleet.complete"] {
            #expect(kinds.contains(kind), "no \(kind) event")
        }
        #expect(events.contains { $0["kind"] as? String == "fleet.warning" && ($0["message"] as? String ?? "").contains("tolerated failed and the workflow goes on") })
    }

    /// `up` again converges: nothing duplicated, done steps skipped, a destroyed VM recreated and run in full.
    @Test func upConvergesOnAFleetThatExists() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let spec = try fleet.spec("conv", Self.header("conv") + """
            count: 2
            workflow:
              - name: first
                exec: ["echo", "first step"]
              - name: second
                exec: ["echo", "second step"]
            """)
        await #expect(fleet.lab.run(["up", spec]).status == 0)
        let instances = await fleet.vms().map { $0["instanceID"] as? String ?? "" }

        let again = await fleet.lab.run(["up", spec, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        let report = try #require(again.stdout.split(separator: "\n").last.flatMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        })
        #expect(report["created"] as? Int == 0)
        #expect(report["adopted"] as? Int == 2)
        #expect((report["vms"] as? [[String: Any]])?.map { $0["stepsSkipped"] as? Int } == [2, 2])
        await #expect(fleet.vms().map { $0["instanceID"] as? String ?? "" } == instances)

        await #expect(fleet.lab.run(["vm", "destroy", "conv-2"]).status == 0)
        let third = await fleet.lab.run(["up", spec])
        #expect(third.status == 0, "\(third.stdout)\n\(third.stderr)")
        #expect(third.stdout.contains("(1 created, 1 adopted)"), "\(third.stdout)")
        let runs = await fleet.jobs().filter { $0.command == "echo first step" }
        #expect(runs.filter { $0.agent == "conv-1" }.count == 1)
        #expect(runs.filter { $0.agent == "conv-2" }.count == 2)  // the destroyed machine's run and the new one's
        await #expect(fleet.vms().count == 2)
    }

    /// kill -9 of the controller in the middle of `up`; after a restart, `up` again finishes the fleet without
    /// duplicating a VM or re-running a finished step.
    @Test func upCompletesAfterTheControllerIsKilledMidway() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        // The middle step runs until the controller has died: it waits for a file the test writes after the kill.
        let gate = "\(fleet.lab.directory)/controller-killed"
        defer { try? Data().write(to: URL(fileURLWithPath: gate)) }
        let during = ["sh", "-c", "until [ -e \(gate) ]; do sleep 0.1; done"]
        let spec = try fleet.spec("crash", Self.header("crash") + """
            count: 2
            workflow:
              - name: before
                exec: ["echo", "before the crash"]
              - name: during
                exec: ["sh", "-c", "until [ -e \(gate) ]; do sleep 0.1; done"]
              - name: after
                exec: ["echo", "after the crash"]
            """)
        let first = try fleet.lab.spawnCLI(["up", spec], log: "up-1.log")
        try await eventually("both VMs in step 2", timeout: 60) {
            await fleet.events(fleet: "crash").filter { $0["kind"] as? String == "step.started" && FleetLab.detail($0, "step")?["number"] as? Int == 2 }.count == 2
        }
        let instances = await fleet.vms().map { $0["instanceID"] as? String ?? "" }
        fleet.lab.killController()
        try Data().write(to: URL(fileURLWithPath: gate))
        _ = try await fleet.lab.exitStatus(of: first)
        try await fleet.lab.startController()
        // The agents reconnect and report the result of the job that ran on through the crash.
        try await eventually("the interrupted step's jobs reported", timeout: 60) {
            let list = try await JSONSerialization.jsonObject(with: Data(fleet.lab.run(["jobs", "--json"]).stdout.utf8)) as? [[String: Any]] ?? []
            return list.filter { ($0["argv"] as? [String]) == during && $0["result"] != nil }.count == 2
        }

        let again = await fleet.lab.run(["up", spec])
        #expect(again.status == 0, "\(again.stdout)\n\(again.stderr)")
        #expect(again.stdout.contains("(0 created, 2 adopted)"))
        await #expect(fleet.vms().map { $0["instanceID"] as? String ?? "" } == instances)
        let jobs = await fleet.jobs()
        for vm in ["crash-1", "crash-2"] {
            #expect(jobs.filter { $0.agent == vm && $0.command == "echo before the crash" }.count == 1)
            #expect(jobs.filter { $0.agent == vm && $0.command == "echo after the crash" }.count == 1)
            // The step that was running when the controller died finished on the agent: it is not run again.
            #expect(jobs.filter { $0.agent == vm && $0.command == during.joined(separator: " ") }.count == 1)
        }
        let skipped = await fleet.events(fleet: "crash").filter { $0["kind"] as? String == "step.skipped" }
        #expect(skipped.contains { (FleetLab.detail($0, "step")?["reason"] as? String)?.contains("while the controller was away") == true },
                "the skips said: \(skipped.map { "\($0["agent"] ?? "?"): \(FleetLab.detail($0, "step")?["reason"] ?? "?")" })")
        let status = await fleet.lab.run(["status", "crash"])
        #expect(status.stdout.components(separatedBy: "done (3/3)").count == 3, "\(status.stdout)")
    }

    /// status, exec --fleet, events --fleet/--since, an agent going down and up, and down.
    @Test func statusExecEventsHealthAndDown() async throws {
        let fleet = try await FleetLab(extraConfig: "agent_down_after_seconds: 3")
        try await fleet.start()
        let spec = try fleet.spec("ops", Self.header("ops") + "count: 2\nworkflow:\n  - exec: [\"true\"]\n")
        let other = try fleet.spec("other", Self.header("other") + "count: 1\n")
        await #expect(fleet.lab.run(["up", spec]).status == 0)
        await #expect(fleet.lab.run(["up", other]).status == 0)

        func statusRows() async throws -> [[String: Any]] {
            let status = await fleet.lab.run(["status", "ops", "--json"])
            return try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
        }
        await #expect(try statusRows().map { $0["name"] as? String } == ["ops-1", "ops-2"])
        // Heartbeats come every second and 1.5 s of silence reads as stale: a loaded machine may need a moment.
        try await eventually("both agents up with their workflow done", timeout: 30) {
            try await statusRows().allSatisfy { $0["agent"] as? String == "up" && $0["step"] as? String == "done (1/1)" && $0["health"] != nil }
        }

        let exec = await fleet.lab.run(["exec", "--fleet", "ops", "--", "echo", "hello"])
        #expect(exec.status == 0, "\(exec.stderr)")
        #expect(exec.stdout.contains("ops-1") && exec.stdout.contains("ops-2") && !exec.stdout.contains("other-1"), "\(exec.stdout)")

        let events = await fleet.events(fleet: "ops")
        #expect(events.allSatisfy { $0["fleet"] as? String == "ops" })
        #expect(events.contains { $0["kind"] as? String == "vm.ready" && $0["agent"] as? String == "ops-2" })
        #expect(events.contains { $0["kind"] as? String == "fleet.complete" && FleetLab.detail($0, "fleetComplete")?["controllerCPUSeconds"] is Double })
        await #expect(fleet.lab.run(["events", "--since", "1h", "--fleet", "other"]).stdout.contains("fleet.complete"))
        await #expect(fleet.lab.run(["events", "--since", "2099-01-01T00:00:00Z"]).stdout.isEmpty)
        let bad = await fleet.lab.run(["events", "--since", "yesterday"])
        #expect(bad.status != 0 && bad.stderr.contains("--since: expected a duration such as 90s, 10m, 2h or 1d, or an ISO 8601 time, found 'yesterday'"))

        // A guest that stops heartbeating is marked down after the TTL, and up again when it resumes.
        let agent = try #require(fleet.guest("ops-1"))
        kill(agent.processIdentifier, SIGSTOP)
        try await eventually("ops-1 marked down", timeout: 20) {
            await fleet.events(fleet: "ops").contains { $0["kind"] as? String == "agent.down" && $0["agent"] as? String == "ops-1" }
        }
        await #expect(fleet.lab.run(["status", "ops"]).stdout.contains("down"))
        kill(agent.processIdentifier, SIGCONT)
        try await eventually("ops-1 up again", timeout: 20) {
            await fleet.events(fleet: "ops").contains { $0["kind"] as? String == "agent.up" && $0["agent"] as? String == "ops-1" }
        }

        let down = await fleet.lab.run(["down", "ops", "--json"])
        #expect(down.status == 0, "\(down.stderr)")
        let lines = try down.stdout.split(separator: "\n").map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(lines.dropLast().allSatisfy { $0["kind"] is String && $0["seq"] is Int }, "\(down.stdout)")
        #expect(lines.last?["fleet"] as? String == "ops")
        #expect((lines.last?["outcome"] as? String)?.contains("fleet ops is down: 2 VM(s) destroyed") == true, "\(down.stdout)")
        await #expect(fleet.vms().map { $0["name"] as? String } == ["other-1"])
        await #expect(fleet.lab.agentStates()["ops-1"] == "revoked")
        #expect(!FileManager.default.fileExists(atPath: "\(fleet.lab.stateDir)/seeds/ops-1"))
        let gone = await fleet.lab.run(["status", "ops"])
        #expect(gone.status == 1 && gone.stderr == "ionlab: no fleet named 'ops'\n")
    }
}
