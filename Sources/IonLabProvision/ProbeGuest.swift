import Foundation
import Libvirt

/// A throwaway transient guest that shows whether a domain type really runs guests.
///
/// A domain that starts is not proof: on this machine KVM guests start and burn CPU but never get anywhere.
/// So on a local QEMU host the probe boots real code and waits for its words on the serial port: a Linux
/// kernel when one is at hand (it must print "Linux version"), else a 512-byte boot sector that writes a
/// marker to COM1. Elsewhere (remote hosts, the test driver) it can only check that the vCPU consumes time.
struct ProbeGuest {
    let type: String
    let arch: String
    let kernel: String?
    let watchesSerial: Bool

    static let marker = "IONLAB-PROBE-OK"

    static func isLocal(_ uri: String) -> Bool {
        guard let url = URL(string: uri) else { return false }
        return (url.host ?? "").isEmpty && !(url.scheme ?? "").contains("+")
    }

    func run(on connection: Connection) async throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-probe-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let serial = "\(directory)/serial.log"
        var boot = ""
        if watchesSerial, let kernel {
            boot = "<kernel>\(XMLText.escape(kernel))</kernel><cmdline>console=ttyS0 panic=-1</cmdline>"
        }
        var devices = "<memballoon model='none'/>"
        if watchesSerial {
            devices += "<serial type='file'><source path='\(XMLText.escape(serial))'/></serial>"
            if kernel == nil {
                let image = "\(directory)/boot.img"
                try Self.bootSector.write(to: URL(fileURLWithPath: image))
                devices += "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='\(XMLText.escape(image))'/>"
                    + "<target dev='hda' bus='ide'/></disk>"
            }
        }
        let xml = """
        <domain type='\(XMLText.escape(type))'>
          <name>ionlab-probe-\(XMLText.escape(type))-\(UUID().uuidString.prefix(8).lowercased())</name>
          <memory unit='MiB'>\(kernel == nil ? 32 : 256)</memory>
          <vcpu>1</vcpu>
          <os><type arch='\(XMLText.escape(arch))'>hvm</type>\(boot)</os>
          <features><acpi/></features>
          <devices>\(devices)</devices>
        </domain>
        """
        // Autodestroy kills the guest with the connection should the probe be abandoned; not every driver has it.
        let domain: Domain
        do {
            domain = try await connection.createTransientDomain(xml: xml, autodestroy: true)
        } catch let error as LibvirtError where error.kind == .invalidConfig {
            domain = try await connection.createTransientDomain(xml: xml, autodestroy: false)
        }
        do {
            let result = watchesSerial ? try await waitForSerial(serial, domain: domain) : try await checkCPUTime(domain)
            try? await domain.destroy()
            return result
        } catch {
            try? await domain.destroy()
            throw error
        }
    }

    private func waitForSerial(_ path: String, domain: Domain) async throws -> String {
        let expected = kernel == nil ? Self.marker : "Linux version"
        // Under TCG a kernel prints its banner after about 5 s here; under working KVM in well under 1 s.
        let patience: Duration = kernel == nil ? .seconds(10) : type == "kvm" ? .seconds(10) : .seconds(30)
        let started = ContinuousClock.now
        while ContinuousClock.now - started < patience {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains(expected) {
                let elapsed = (ContinuousClock.now - started).components
                return "a \(kernel == nil ? "boot sector" : "Linux kernel") printed '\(expected)' on the serial port after \(elapsed.seconds).\(elapsed.attoseconds / 100_000_000_000_000_000) s"
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let cpu = (try? await domain.info().cpuTimeNanoseconds).map { " while using \($0 / 1_000_000_000) s of CPU" } ?? ""
        throw ProvisionError("the guest started but printed nothing in \(patience.components.seconds) s\(cpu): guests hang")
    }

    private func checkCPUTime(_ domain: Domain) async throws -> String {
        let first = try await domain.info().cpuTimeNanoseconds
        try await Task.sleep(for: .milliseconds(700))
        let second = try await domain.info().cpuTimeNanoseconds
        guard second > first else { throw ProvisionError("the probe guest's vCPU did not run (cpu time stayed at \(first) ns)") }
        return "vCPU ran \((second - first) / 1_000_000) ms in 0.7 s (cpu time only: no serial port to watch on this host)"
    }

    /// A boot sector: `cld; xor ax,ax; mov ds,ax; mov si,msg; l: lodsb; or al,al; jz h; mov dx,0x3f8; out dx,al;
    /// jmp l; h: cli; hlt; jmp h` followed by the marker, padded to 512 bytes with the 0x55AA signature, then to 1 MiB.
    static var bootSector: Data {
        var bytes: [UInt8] = [0xFC, 0x31, 0xC0, 0x8E, 0xD8, 0xBE, 0x17, 0x7C, 0xAC, 0x08, 0xC0, 0x74, 0x06,
                              0xBA, 0xF8, 0x03, 0xEE, 0xEB, 0xF5, 0xFA, 0xF4, 0xEB, 0xFD]
        bytes += Array("\(marker)\r\n".utf8) + [0]
        bytes += [UInt8](repeating: 0, count: 510 - bytes.count) + [0x55, 0xAA]
        bytes += [UInt8](repeating: 0, count: (1 << 20) - 512)
        return Data(bytes)
    }
}
