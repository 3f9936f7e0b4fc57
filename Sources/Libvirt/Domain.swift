import CLibvirt
import Foundation

/// A libvirt domain (a VM), defined or running.
public final class Domain: LibvirtObject, @unchecked Sendable {
    init(connection: Connection, pointer: OpaquePointer) {
        super.init(connection: connection, pointer: pointer, name: virDomainGetName, free: virDomainFree)
    }

    public enum State: String, Sendable, Codable {
        case running, blocked, paused, shuttingDown = "shutting-down", shutOff = "shut-off", crashed, suspended, unknown
    }

    public struct Info: Sendable {
        public let state: State
        public let maxMemoryKiB: UInt64
        public let vcpus: Int
        /// CPU time used so far, in nanoseconds.
        public let cpuTimeNanoseconds: UInt64
    }

    public var uuid: String {
        var buffer = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        return virDomainGetUUIDString(pointer, &buffer) == 0 ? String(cString: buffer) : ""
    }

    public func info() async throws -> Info {
        try await connection.run("read state of domain \(name)") {
            var info = virDomainInfo()
            guard virDomainGetInfo(self.pointer, &info) == 0 else { return nil }
            return Info(state: Self.state(info.state), maxMemoryKiB: UInt64(info.maxMem), vcpus: Int(info.nrVirtCpu),
                        cpuTimeNanoseconds: UInt64(info.cpuTime))
        }
    }

    public func xml() async throws -> String {
        try await connection.run("read XML of domain \(name)") { Connection.string(virDomainGetXMLDesc(self.pointer, 0)) }
    }

    public func isActive() async throws -> Bool {
        try await connection.run("check domain \(name)") {
            let active = virDomainIsActive(self.pointer)
            return active < 0 ? nil : active == 1
        }
    }

    /// Starts a defined domain.
    public func start() async throws {
        try await connection.check("start domain \(name)") { virDomainCreate(self.pointer) }
    }

    /// Asks the guest to shut down (ACPI power button); returns at once, the guest takes its time.
    public func shutdown() async throws {
        try await connection.check("shut down domain \(name)") { virDomainShutdown(self.pointer) }
    }

    /// Pauses the domain's CPUs; its memory stays.
    public func suspend() async throws {
        try await connection.check("suspend domain \(name)") { virDomainSuspend(self.pointer) }
    }

    public func resume() async throws {
        try await connection.check("resume domain \(name)") { virDomainResume(self.pointer) }
    }

    /// Stops the domain at once, like pulling the plug.
    public func destroy() async throws {
        try await connection.check("destroy domain \(name)") { virDomainDestroy(self.pointer) }
    }

    /// Removes the definition (and any NVRAM, managed save image and snapshot metadata: internal snapshots
    /// live in the disk, which goes with the VM). Drivers that know fewer flags are asked with fewer.
    public func undefine() async throws {
        let snapshots = VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA.rawValue, save = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.rawValue
        for flags in [snapshots | save | VIR_DOMAIN_UNDEFINE_NVRAM.rawValue, snapshots | save, snapshots] {
            do {
                try await connection.check("undefine domain \(name)") { virDomainUndefineFlags(self.pointer, UInt32(flags)) }
                return
            } catch let error as LibvirtError where error.kind == .unsupported || error.kind == .invalidConfig {
                continue
            }
        }
        try await connection.check("undefine domain \(name)") { virDomainUndefine(self.pointer) }
    }

    /// The screen as the hypervisor renders it: its MIME type (QEMU sends a PPM, the test driver a PNG) and
    /// bytes, at most `limit` of them.
    public func screenshot(screen: UInt32 = 0, limit: Int = 64 << 20) async throws -> (mimeType: String, data: Data) {
        let stream = try connection.makeStream()
        let mimeType = try await connection.run("take a screenshot of domain \(name)") {
            Connection.string(virDomainScreenshot(self.pointer, stream.pointer, screen, 0))
        }
        let data = try await stream.receiveAll(limit: limit, operation: "read the screenshot of domain \(name) (at most \(limit) bytes)")
        return (mimeType, data)
    }

    /// The most keys one `sendKey` presses together (libvirt's VIR_DOMAIN_SEND_KEY_MAX_KEYS).
    public static let maximumKeysAtOnce = Int(VIR_DOMAIN_SEND_KEY_MAX_KEYS)

    /// Presses Linux input keycodes (`KEY_A` is 30) together on the domain's keyboard, holds them for
    /// `holdMilliseconds` and releases them, as a person's chord: the hypervisor types, the guest runs nothing.
    public func sendKey(linuxKeycodes: [UInt32], holdMilliseconds: UInt32 = 30) async throws {
        precondition(!linuxKeycodes.isEmpty && linuxKeycodes.count <= Self.maximumKeysAtOnce)
        try await connection.check("send keys to domain \(name)") {
            var codes = linuxKeycodes
            return virDomainSendKey(self.pointer, UInt32(VIR_KEYCODE_SET_LINUX.rawValue), holdMilliseconds, &codes, Int32(codes.count), 0)
        }
    }

    /// A socket connected to the domain's graphical console (its VNC server in QEMU), made by libvirt, that
    /// skips the console's password: for the controller's own input, never handed to anyone. The caller closes it.
    public func openGraphics(index: UInt32 = 0) async throws -> Int32 {
        try await connection.run("open the graphical console of domain \(name)") {
            let descriptor = virDomainOpenGraphicsFD(self.pointer, index, UInt32(VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH.rawValue))
            return descriptor < 0 ? nil : descriptor
        }
    }

    /// The domain's XML with its secrets (a graphics password): for the operator only.
    public func secureXML() async throws -> String {
        try await connection.run("read XML of domain \(name)") {
            Connection.string(virDomainGetXMLDesc(self.pointer, UInt32(VIR_DOMAIN_XML_SECURE.rawValue)))
        }
    }

    static func state(_ raw: UInt8) -> State {
        switch Int32(raw) {
        case Int32(VIR_DOMAIN_RUNNING.rawValue): return .running
        case Int32(VIR_DOMAIN_BLOCKED.rawValue): return .blocked
        case Int32(VIR_DOMAIN_PAUSED.rawValue): return .paused
        case Int32(VIR_DOMAIN_SHUTDOWN.rawValue): return .shuttingDown
        case Int32(VIR_DOMAIN_SHUTOFF.rawValue): return .shutOff
        case Int32(VIR_DOMAIN_CRASHED.rawValue): return .crashed
        case Int32(VIR_DOMAIN_PMSUSPENDED.rawValue): return .suspended
        default: return .unknown
        }
    }
}
