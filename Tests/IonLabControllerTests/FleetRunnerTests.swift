import Foundation
import IonLabAdminAPI
import IonLabConfig
@testable import IonLabController
import IonLabProvision
import IonLabSpec
import Testing

/// A fleet's `up` and `down` against fake backends and a fake agent: placement, parallel provisioning,
/// adoption on a second run, and the outcome of each VM.
@Suite struct FleetRunnerTests {
    static let hosts = [
        HostCapacity(backend: "small", cpus: 2, memoryMiB: 1024),
        HostCapacity(backend: "big", cpus: 8, memoryMiB: 8192),
        HostCapacity.unavailable("down", "unreachable"),
    ]

    static func runner(_ ground: Ground, vms: FakeVMs, agents: FakeAgents = FakeAgents(), forwards: FakeForwards = FakeForwards()) -> FleetRunner {
        FleetRunner(store: ground.store, events: ground.events, secrets: ground.secrets, provisioner: vms, agents: agents, forwards: forwards,
                    readyPatienceSeconds: 5, retryPause: { _ in .zero })
    }

    static func spec(_ name: String, count: Int, memory: Int = 512, workflow: String = "  - exec: [\"true\"]\n") throws -> FleetSpec {
        try fleetSpec("name: \(name)\nimage: test-base\nresources: {cpus: 1, memory_mib: \(memory), disk_gib: 1}\ncount: \(count)\nworkflow:\n" + workflow)
    }

    @Test func vmsArePlacedWhereTheyFitAndAnUnreachableBackendGetsNone() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        let report = try await Self.runner(ground, vms: vms).up(FleetUpRequest(spec: try Self.spec("p", count: 4, memory: 1024), parallel: 2))
        #expect(report.succeeded && report.created == 4 && report.adopted == 0)
        let backends = Dictionary(uniqueKeysWithValues: vms.created.map { ($0.name, $0.backend ?? "?") })
        #expect(Set(backends.values).isSubset(of: ["small", "big"]))
        #expect(backends.values.filter { $0 == "small" }.count <= 1)  // 1 GiB fits once there
        #expect(try ground.allEvents().contains {
            guard $0.kind == .fleetPlaced, case .placement(let placed)? = $0.detail else { return false }
            return placed == backends
        })
    }

    @Test func aFleetThatFitsNowhereFailsBeforeCreatingAnything() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        await #expect(throws: ControllerError.self) {
            _ = try await Self.runner(ground, vms: vms).up(FleetUpRequest(spec: try Self.spec("huge", count: 2, memory: 65536), parallel: 2))
        }
        #expect(vms.created.isEmpty)
    }

    @Test func aSecondUpAdoptsWhatExistsAndCreatesWhatIsMissing() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        let agents = FakeAgents()
        let runner = Self.runner(ground, vms: vms, agents: agents)
        _ = try await runner.up(FleetUpRequest(spec: try Self.spec("c", count: 2), parallel: 2))
        try await vms.destroy("c-2")
        let second = try await runner.up(FleetUpRequest(spec: try Self.spec("c", count: 2), parallel: 2))
        #expect(second.created == 1 && second.adopted == 1 && second.succeeded)
        #expect(vms.createdNames.sorted() == ["c-1", "c-2", "c-2"])
        // c-1's step was done by the first up; the new c-2 runs it again (a new machine's records are its own).
        #expect(agents.commands(on: "c-1").count == 1)
        #expect(agents.commands(on: "c-2").count == 2)
        #expect(second.vms.first { $0.vm == "c-1" }?.stepsSkipped == 1)
    }

    @Test func eachVMEndsOnItsOwn() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        vms.failing = ["o-1"]
        vms.neverReady = ["o-2"]
        let report = try await Self.runner(ground, vms: vms).up(FleetUpRequest(spec: try Self.spec("o", count: 3), parallel: 3))
        let outcomes = Dictionary(uniqueKeysWithValues: report.vms.map { ($0.vm, $0) })
        #expect(outcomes["o-1"]?.result == .failed && outcomes["o-1"]?.failedStep == "provision")
        #expect(outcomes["o-2"]?.result == .timedOut && outcomes["o-2"]?.failedStep == "boot")
        #expect(outcomes["o-3"]?.result == .ok)
        #expect(!report.succeeded)
        let ends = try ground.allEvents().filter { $0.kind == .error }.compactMap { event -> VMOutcome.Result? in
            if case .vmOutcome(let end)? = event.detail { return end.result }
            return nil
        }
        #expect(ends.sorted { $0.rawValue < $1.rawValue } == [.failed, .timedOut])
    }

    @Test func anUnknownImageFailsTheUpBeforeAnything() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        var spec = try Self.spec("i", count: 1)
        spec.image = "nothing"
        await #expect(throws: ControllerError.self) { _ = try await Self.runner(ground, vms: vms).up(FleetUpRequest(spec: spec, parallel: 1)) }
        #expect(vms.created.isEmpty)
    }

    @Test func aVMMayNameAnImageOfItsOwnAndAnUnknownOneFailsTheUpBeforeAnything() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        let mixed = "name: m\nimage: desktop-base\nvms:\n  - {name: m-1}\n  - {name: m-2}\n  - {name: m-plain, image: test-base}\n"
        let report = try await Self.runner(ground, vms: vms).up(FleetUpRequest(spec: try fleetSpec(mixed), parallel: 3))
        #expect(report.succeeded)
        let images = Dictionary(uniqueKeysWithValues: vms.created.map { ($0.name, $0.image) })
        #expect(images == ["m-1": "desktop-base", "m-2": "desktop-base", "m-plain": "test-base"])
        #expect(try ground.allEvents().contains { $0.kind == .fleetStarted && $0.message.hasPrefix("up: 3 VM(s) of desktop-base (1 of test-base), 3 to create") })

        let unknown = try fleetSpec("name: u\nimage: test-base\nvms:\n  - {name: u-1}\n  - {name: u-2, image: nothing}\n")
        await #expect(throws: ControllerError.self) { _ = try await Self.runner(ground, vms: vms).up(FleetUpRequest(spec: unknown, parallel: 2)) }
        #expect(!vms.created.contains { $0.name.hasPrefix("u-") })
    }

    @Test func downDestroysEveryVMAndForgetsTheFleet() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        let runner = Self.runner(ground, vms: vms)
        _ = try await runner.up(FleetUpRequest(spec: try Self.spec("d", count: 3), parallel: 3))
        let line = try await runner.down("d")
        #expect(line == "fleet d is down: 3 VM(s) destroyed")
        #expect(vms.destroyed.sorted() == ["d-1", "d-2", "d-3"])
        #expect(try ground.store.fleet("d") == nil)
        await #expect(throws: ControllerError.self) { _ = try await runner.down("d") }
    }

    @Test func aVMsForwardsAreHeldForItsFleetAndOneThatCannotOpenFailsThatVM() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let vms = FakeVMs(store: ground.store, hosts: Self.hosts)
        let busy = try PortForward(parsing: "9090:90")
        let forwards = FakeForwards(refused: [busy])
        let runner = Self.runner(ground, vms: vms, forwards: forwards)
        let spec = try fleetSpec("""
            name: f
            image: test-base
            resources: {cpus: 1, memory_mib: 512, disk_gib: 1}
            vms:
              - {name: web, forwards: ["8080:80", "127.0.0.1:8443:10.0.2.15:443"], reverse_forwards: ["3142:3142"]}
              - {name: busy, forwards: ["9090:90"]}
            workflow:
              - exec: ["true"]
            """)
        let report = try await runner.up(FleetUpRequest(spec: spec, parallel: 2))
        #expect(forwards.owner(of: "web") == .fleet("f"))
        #expect(forwards.rules(of: "web").map(\.description) == [
            "127.0.0.1:8080 → web 127.0.0.1:80", "127.0.0.1:8443 → web 10.0.2.15:443", "web 127.0.0.1:3142 → 127.0.0.1:3142",
        ])
        let outcomes = Dictionary(uniqueKeysWithValues: report.vms.map { ($0.vm, $0) })
        #expect(outcomes["web"]?.result == .ok)
        #expect(outcomes["busy"]?.result == .failed)
        #expect(outcomes["busy"]?.failedStep == "forwards")
        #expect(outcomes["busy"]?.detail == "cannot listen on 127.0.0.1:9090: address already in use")
        _ = try await runner.down("f")
        #expect(forwards.rules(of: "web").isEmpty)
    }

    @Test func aHostPortForwardedToTwoVMsIsRefusedWhereTheSpecSaysIt() throws {
        #expect {
            _ = try fleetSpec("name: f\nimage: i\nvms:\n  - {name: a, forwards: [\"8080:80\"]}\n  - {name: b, forwards: [\"8080:81\"]}\n")
        } throws: { "\($0)".contains("host address 127.0.0.1:8080 is forwarded to both a and b") }
    }
}
