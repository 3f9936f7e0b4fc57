import Foundation
import IonLabConfig
import IonLabControllerConfig
@testable import IonLabProvision
import Testing

@Suite struct DiscoveryTests {
    @Test func theTestDriverIsReportedWithVerifiedDomainTypes() async throws {
        // A generous timeout: this test checks what is reported, not how fast (it ran out of 20 s twice in 8 full
        // runs, beside the other suites on 2 cores); a timeout would read as unreachable, with its reason.
        let reports = await Discovery.probe([BackendConfig(name: "t", uri: "test:///default", pool: "default-pool")], timeoutSeconds: 120)
        let report = try #require(reports.first)
        #expect(report.reachable, "\(report.reason)")
        #expect(report.driver == "TEST")
        #expect(report.libvirtVersion?.hasPrefix("9.") == true)
        #expect(report.cpus == 16)  // the test driver's fixed host
        #expect((report.memoryBytes ?? 0) > 0)
        let test = try #require(report.domainTypes.first { $0.type == "test" })
        #expect(test.works, "\(test.detail)")
        #expect(test.detail.contains("cpu time only"))  // the test driver has no serial port to watch
        #expect(report.pools.map(\.name) == ["default-pool"])
        #expect(report.networks.map(\.name) == ["default"])
        #expect(report.capabilities.contains("provision"))
        #expect(!report.capabilities.contains("serial-console"))  // the test driver has no consoles
        // The test driver's host has a few MiB free: too little for a VM, and said so.
        #expect(report.health == .degraded)
        #expect(report.reason.hasSuffix("MiB of memory free"), "\(report.reason)")
        #expect(report.preferredDomainType(forced: nil) == "test")
    }

    @Test func unreachableBackendsAreDownWithAReasonAndDoNotHoldUpTheOthers() async throws {
        let backends = [
            BackendConfig(name: "refused", uri: "qemu+tcp://127.0.0.1:1/system"),
            BackendConfig(name: "t", uri: "test:///default"),
        ]
        // A generous timeout: the refused backend must come back on its own error, not by running out of time.
        let reports = await Discovery.probe(backends, timeoutSeconds: 120)
        #expect(reports[0].probeSeconds < 30, "the refused backend waited \(reports[0].probeSeconds) s")
        #expect(reports.map(\.name) == ["refused", "t"])
        #expect(reports[0].health == .down)
        #expect(!reports[0].reachable)
        #expect(reports[0].reason.contains("connect to qemu+tcp://127.0.0.1:1/system"))
        #expect(reports[1].reachable)
    }

    @Test func capabilitiesXMLYieldsDomainTypesPerArch() throws {
        let xml = """
        <capabilities><host><cpu><arch>x86_64</arch></cpu></host>
        <guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>
        <guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/></arch></guest>
        </capabilities>
        """
        let capabilities = try Capabilities(xml: xml)
        #expect(capabilities.hostArch == "x86_64")
        #expect(capabilities.domainTypes(arch: "x86_64") == ["qemu", "kvm"])
    }
}
