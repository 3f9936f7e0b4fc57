import Foundation
import IonLabConfig
@testable import IonLabProvision
import Libvirt
import Testing

/// libvirt logic on `test:///default`: real libvirt with an in-memory hypervisor. Connections in one process
/// share it while any is open, so these tests use names no other test uses (prefix `lt-`).
@Suite struct LibvirtTests {
    func spec(_ name: String, kernel: String? = "/boot/vmlinuz") -> DomainSpec {
        DomainSpec(name: name, uuid: UUID().uuidString.lowercased(), instanceID: "\(name)-1a2b3c4d", domainType: "test", cpus: 2,
                   memoryMiB: 512, diskPath: "/default-pool/\(name).qcow2", seedPath: "/default-pool/\(name)-seed.iso",
                   kernel: kernel, initrd: kernel == nil ? nil : "/boot/initrd.img", cmdline: kernel == nil ? nil : "root=/dev/vda rw console=ttyS0",
                   network: .user, consoleLog: "/var/log/ionlab/\(name).console.log", displayPassword: "pw\(name.suffix(6))")
    }

    @Test func generatedDomainXMLIsAcceptedAndKeptByLibvirt() async throws {
        let connection = try await Connection.open("test:///default")
        let spec = spec("lt-vm1")
        let domain = try await connection.defineDomain(xml: spec.xml)
        #expect(domain.name == "lt-vm1")
        #expect(domain.uuid == spec.uuid)
        let xml = try await domain.xml()
        #expect(xml.contains("<kernel>/boot/vmlinuz</kernel>"))
        #expect(xml.contains("root=/dev/vda rw console=ttyS0"))
        #expect(xml.contains("/default-pool/lt-vm1.qcow2"))
        #expect(xml.contains("/default-pool/lt-vm1-seed.iso"))
        #expect(xml.contains("<interface type='user'>"))
        #expect(xml.contains("<acpi/>"))
        #expect(xml.contains("lt-vm1-1a2b3c4d"))  // the instance id travels in ionlab's metadata
        // A screen: a video device, and a graphical console on a UNIX socket only, with a password that
        // libvirt shows only to whoever asks for the secure XML.
        #expect(xml.contains("<model type='virtio' heads='1' primary='yes'/>"))
        #expect(xml.contains("<listen type='socket'"))
        #expect(!xml.contains("<listen type='address'") && !xml.contains("listen='"))
        #expect(!xml.contains("passwd="))
        #expect(try await domain.secureXML().contains("passwd='pwlt-vm1'"))
        let info = try await domain.info()
        #expect(info.vcpus == 2)
        #expect(info.maxMemoryKiB == 512 * 1024)
    }

    @Test func displayPasswordsAreFreshEightLetterWords() {
        let passwords = (0..<50).map { _ in DomainSpec.newDisplayPassword() }
        #expect(Set(passwords).count == 50)
        #expect(passwords.allSatisfy { $0.count == 8 && $0.allSatisfy { $0.isLetter || $0.isNumber } })
    }

    @Test func namesAndPathsAreEscapedInXML() {
        var hostile = spec("lt-vm2", kernel: nil)
        hostile.consoleLog = "/tmp/a'b<c>&d.log"
        #expect(hostile.xml.contains("/tmp/a&apos;b&lt;c&gt;&amp;d.log"))
        #expect(hostile.xml.contains("<boot dev='hd'/>"))
        #expect(!hostile.xml.contains("<kernel>"))
    }

    @Test func lifecycleDefineStartDestroyUndefine() async throws {
        let connection = try await Connection.open("test:///default")
        let domain = try await connection.defineDomain(xml: spec("lt-life").xml)
        #expect(try await domain.isActive() == false)
        try await domain.start()
        #expect(try await domain.info().state == .running)
        try await domain.destroy()
        #expect(try await domain.info().state == .shutOff)
        try await domain.undefine()
        await #expect(throws: LibvirtError.self) { try await connection.domain(named: "lt-life") }
    }

    @Test func libvirtErrorsKeepTheirCodeAndMapToKinds() async throws {
        let connection = try await Connection.open("test:///default")
        do {
            _ = try await connection.domain(named: "no-such-vm")
            Issue.record("lookup of a missing domain succeeded")
        } catch let error as LibvirtError {
            #expect(error.code == 42)  // VIR_ERR_NO_DOMAIN
            #expect(error.kind == .notFound)
            #expect(error.description.hasPrefix("find domain no-such-vm: "))
            #expect(error.description.contains("no-such-vm"))
        }
        do {
            _ = try await connection.defineDomain(xml: "<domain type='test'><name>broken")
            Issue.record("malformed XML was accepted")
        } catch let error as LibvirtError {
            #expect(error.kind == .invalidConfig)
        }
        let domain = try await connection.defineDomain(xml: spec("lt-idle").xml)
        do {
            try await domain.destroy()
            Issue.record("destroying a domain that is not running succeeded")
        } catch let error as LibvirtError {
            #expect(error.kind == .invalidState, "code \(error.code): \(error.message)")
        }
        do {
            _ = try await Connection.open("bogus+scheme:///nowhere")
            Issue.record("a bogus URI connected")
        } catch let error as LibvirtError {
            #expect(error.operation == "connect to bogus+scheme:///nowhere")
        }
    }

    @Test func overlayVolumesCarryTheirBackingStore() async throws {
        let connection = try await Connection.open("test:///default")
        let pool = try await connection.pool(named: "default-pool")
        let base = try await pool.createVolume(xml: VolumeXML.raw(name: "lt-base.raw", capacityBytes: 1 << 30))
        let basePath = try await base.path()
        let overlay = try await pool.createVolume(xml: VolumeXML.overlay(name: "lt-vm1.qcow2", capacityBytes: 8 << 30,
                                                                        backingPath: basePath, backingFormat: "raw"))
        #expect(try await overlay.sizes().capacity == 8 << 30)
        #expect(try await pool.volumes().map(\.name).filter { $0.hasPrefix("lt-") }.sorted() == ["lt-base.raw", "lt-vm1.qcow2"])
        try await overlay.delete()
        await #expect(throws: LibvirtError.self) { try await pool.volume(named: "lt-vm1.qcow2") }
    }

    /// Bulk statistics: every domain in one call, numeric fields by libvirt's names. The test driver reports
    /// only the state (qemu adds CPU, balloon, disks and interfaces: the real-VM test scrapes those). A test
    /// host of its own, not the shared test:///default that other suites probe meanwhile.
    @Test func domainStatisticsComeForEveryDomainInOneCall() async throws {
        let node = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-stats-\(UUID().uuidString.prefix(8)).xml").path
        try """
            <node>
              <cpu><mhz>2000</mhz><model>x86_64</model><active>1</active><nodes>1</nodes><sockets>1</sockets><cores>1</cores><threads>1</threads></cpu>
              <memory>1048576</memory>
              <domain type='test'><name>lt-running</name><memory>65536</memory><os><type>hvm</type></os></domain>
            </node>
            """.write(toFile: node, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: node) }
        let connection = try await Connection.open("test://\(node)")
        _ = try await connection.defineDomain(xml: spec("lt-stopped").xml)
        let stats = try await connection.allDomainStats()
        #expect(stats.first { $0.name == "lt-running" }?.values["state.state"] == 1, "\(stats)")  // VIR_DOMAIN_RUNNING
        #expect(stats.first { $0.name == "lt-stopped" }?.values["state.state"] == 5, "\(stats)")  // VIR_DOMAIN_SHUTOFF
        let disks = DomainStats(name: "x", values: ["block.0.rd.bytes": 10, "block.1.rd.bytes": 5, "block.count": 2, "block.0.wr.bytes": 1])
        #expect(disks.sum(devices: "block", "rd.bytes") == 15)
        #expect(disks.sum(devices: "net", "rx.bytes") == nil)
    }
}
