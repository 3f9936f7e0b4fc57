#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabAgentProtocol
import IonLabConfig
import IonLabWire

/// Reads the machine's health from /proc and statvfs; cheap enough for every heartbeat.
public enum HealthProbe {
    /// Where cloud-init records the instance it booted: which provision of a VM this is.
    public static let cloudInitInstanceID = "/var/lib/cloud/data/instance-id"

    static func read(agentVersion: String, instanceIDFile: String = cloudInitInstanceID) -> Health {
        let meminfo = memoryInfo()
        var disk = statvfs()
        let diskOK = statvfs("/", &disk) == 0
        return Health(
            bootID: bootID(),
            hostname: hostname(),
            uptimeSeconds: Double(firstField(of: "/proc/uptime") ?? "0") ?? 0,
            load: (text(of: "/proc/loadavg") ?? "").split(separator: " ").prefix(3).compactMap { Double($0) },
            memoryTotalBytes: (meminfo["MemTotal"] ?? 0) * 1024,
            memoryAvailableBytes: (meminfo["MemAvailable"] ?? 0) * 1024,
            diskTotalBytes: diskOK ? UInt64(disk.f_blocks) * UInt64(disk.f_frsize) : 0,
            diskFreeBytes: diskOK ? UInt64(disk.f_bavail) * UInt64(disk.f_frsize) : 0,
            agentVersion: agentVersion,
            cloudInit: cloudInitState(),
            instanceID: text(of: instanceIDFile).map { String($0.trimmingWhitespace) })
    }

    /// gethostname(2) only: Foundation's hostName may ask DNS.
    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown" }
        return String(cString: buffer)
    }

    /// How long this process has run: the uptime now less its start in /proc/self/stat (field 22, in clock
    /// ticks since boot, after the command name, which may hold spaces and parentheses).
    static func processAgeSeconds() -> Double? {
        guard let stat = text(of: "/proc/self/stat"), let close = stat.lastIndex(of: ")"),
              let uptime = firstField(of: "/proc/uptime").flatMap(Double.init) else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        let perSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        return perSecond > 0 ? max(0, uptime - ticks / perSecond) : nil
    }

    static func bootID() -> String {
        text(of: "/proc/sys/kernel/random/boot_id").map { String($0.trimmingWhitespace) } ?? "unknown"
    }

    /// cloud-init's state from its run files, without starting its (slow) Python CLI.
    static func cloudInitState() -> String? {
        if let result = text(of: "/run/cloud-init/result.json") {
            return result.contains("\"errors\": []") || result.contains("\"errors\":[]") ? "done" : "error"
        }
        if FileManager.default.fileExists(atPath: "/run/cloud-init/status.json") { return "running" }
        if FileManager.default.fileExists(atPath: "/usr/bin/cloud-init") { return "not started" }
        return nil
    }

    private static func memoryInfo() -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for line in (text(of: "/proc/meminfo") ?? "").split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            if parts.count >= 2, let value = UInt64(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }

    private static func firstField(of path: String) -> String? {
        text(of: path)?.split(separator: " ").first.map(String.init)
    }

    static func text(of path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
