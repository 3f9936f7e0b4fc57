import Foundation
import IonLabConfig
import IonLabControllerConfig
@testable import IonLabProvision
import Libvirt
import Testing

/// Provisioning on `test:///default`. Connections in one process share the in-memory host while any is open,
/// so every test uses names of its own and looks only at those.
@Suite struct ProvisionerTests {
    let backend = BackendConfig(name: "t", uri: "test:///default", pool: "default-pool", poolPath: "/default-pool")

    func plan(_ name: String, on connection: Connection) async throws -> ProvisionPlan {
        let pool = try await connection.pool(named: "default-pool")
        let base = try await pool.createVolume(xml: VolumeXML.raw(name: "base-\(name).raw", capacityBytes: 64 << 20))
        let image = BaseImage(name: "base", path: "default-pool/\(base.name)", format: "raw", kernel: "/images/vmlinuz",
                              initrd: "/images/initrd.img", cmdline: "root=/dev/vda rw console=ttyS0", os: "debian")
        let seed = Seed(files: [SeedFile(name: "user-data", text: "#cloud-config\n"),
                                SeedFile(name: "meta-data", text: Seed.metaData(instanceID: "\(name)-1", hostname: name))])
        return ProvisionPlan(name: name, instanceID: ProvisionPlan.newInstanceID(for: name), backend: backend, image: image,
                             domainType: "test", cpus: 1, memoryMiB: 512, diskGiB: 1, seed: seed, consoleLog: "/tmp/\(name).log")
    }

    /// This test's domains and volumes still on the host (its base image aside).
    func leftovers(_ connection: Connection, prefix: String) async throws -> [String] {
        let domains = try await connection.domains().map(\.name)
        let volumes = try await connection.pool(named: "default-pool").volumes().map(\.name).filter { !$0.hasPrefix("base-") }
        return (domains + volumes).filter { $0.hasPrefix(prefix) }
    }

    @Test func aProvisionCreatesOverlaySeedAndARunningDomain() async throws {
        let connection = try await Connection.open("test:///default")
        let plan = try await plan("vm1", on: connection)
        let steps = StepLog()
        let vm = try await Provisioner(connection: connection).provision(plan) { step, _ in await steps.add(step) }
        #expect(await steps.all == Provisioner.Step.allCases)
        #expect(vm.overlayVolume == "vm1.qcow2")
        #expect(vm.seedVolume == "vm1-seed.iso")
        #expect(vm.seedHash == plan.seed.contentHash)
        #expect(vm.seedNote?.contains("no volume upload") == true)  // the test driver keeps volumes in memory
        let domain = try await connection.domain(named: "vm1")
        #expect(try await domain.info().state == .running)
        let xml = try await domain.xml()
        #expect(xml.contains("/default-pool/vm1.qcow2"))
        #expect(xml.contains(plan.instanceID))
        let overlay = try await connection.pool(named: "default-pool").volume(named: "vm1.qcow2")
        #expect(try await overlay.sizes().capacity == 1 << 30)

        try await Provisioner(connection: connection).remove(name: "vm1", pool: "default-pool", volumes: [vm.overlayVolume, vm.seedVolume])
        #expect(try await leftovers(connection, prefix: "vm1") == [])
        // Removing again finds nothing to remove and is not an error.
        try await Provisioner(connection: connection).remove(name: "vm1", pool: "default-pool", volumes: [vm.overlayVolume, vm.seedVolume])
    }

    @Test(arguments: Provisioner.Step.allCases)
    func aFailureAtAnyStepLeavesNothingBehind(step: Provisioner.Step) async throws {
        let connection = try await Connection.open("test:///default")
        let plan = try await plan("vm-\(step.rawValue)", on: connection)
        do {
            _ = try await Provisioner(connection: connection).provision(plan, failAfter: step)
            Issue.record("the provision did not fail")
        } catch {
            #expect("\(error)" == "injected failure after the \(step.rawValue) step")
        }
        #expect(try await leftovers(connection, prefix: plan.name) == [])
    }

    @Test func aNameThatIsTakenFailsCleanly() async throws {
        let connection = try await Connection.open("test:///default")
        let plan = try await plan("test", on: connection)  // the test driver's own domain is called "test"
        await #expect(throws: LibvirtError.self) { try await Provisioner(connection: connection).provision(plan) }
        #expect(try await leftovers(connection, prefix: "test") == ["test"])
        #expect(try await connection.domain(named: "test").info().state == .running)  // not touched
    }

    @Test func parallelProvisionsOnOnePoolAllSucceed() async throws {
        let connection = try await Connection.open("test:///default")
        var plans: [ProvisionPlan] = []
        for index in 0..<6 { plans.append(try await plan("p\(index)", on: connection)) }
        let provisioner = Provisioner(connection: connection, locks: PoolLocks())
        let names = try await withThrowingTaskGroup(of: String.self) { group in
            for plan in plans { group.addTask { try await provisioner.provision(plan).name } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(names.sorted() == (0..<6).map { "p\($0)" })
        #expect(try await leftovers(connection, prefix: "p").count == 18)
    }

    @Test func aMissingBaseVolumeIsNamed() async throws {
        let connection = try await Connection.open("test:///default")
        var plan = try await plan("vm9", on: connection)
        plan.image.path = "default-pool/nope.raw"
        do {
            _ = try await Provisioner(connection: connection).provision(plan)
            Issue.record("provisioned on a missing base")
        } catch let error as LibvirtError {
            #expect(error.kind == .notFound)
            #expect(error.description.hasPrefix("find volume nope.raw in pool default-pool"))
        }
        #expect(try await leftovers(connection, prefix: "vm9") == [])
    }
}

actor StepLog {
    private(set) var all: [Provisioner.Step] = []
    func add(_ step: Provisioner.Step) { all.append(step) }
}
