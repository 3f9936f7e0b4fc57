import ArgumentParser
import Foundation
import IonLabConfig
import IonLabController
import IonLabControllerConfig
import IonLabProvision
import IonLabSpec

/// `ionlab backends`: probes the libvirt backends of the controller config, in parallel.
struct Backends: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backends", abstract: "Probe the configured libvirt backends: reachability, domain types that work, resources.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let config = try ControllerConfigFile.load(global.paths)
            let catalog = try ControllerConfigFile.catalog(global.paths, config)
            let kernel = catalog.probeKernel()
            let reports = await Discovery.probe(config.backends, timeoutSeconds: config.probeTimeoutSeconds, kernel: kernel)
            if json {
                Terminal.line(JSONOutput.line(reports))
            } else {
                Terminal.line(Self.render(reports))
            }
            if reports.allSatisfy({ $0.health == .down }) { throw ExitCode(1) }
        }
    }

    static func render(_ reports: [BackendReport]) -> String {
        let rows = reports.map { report -> [String] in
            let types = report.domainTypes.map { "\($0.type)\($0.works ? "" : " (not working)")" }.joined(separator: ", ")
            let memory = report.memoryBytes.map { total in "\(Table.bytes(report.freeMemoryBytes ?? 0))/\(Table.bytes(total))" } ?? "-"
            let pools = report.pools.map { "\($0.name) \(Table.bytes($0.availableBytes)) free" }.joined(separator: ", ")
            let health = report.health.rawValue + (report.reason.isEmpty ? "" : ": \(report.reason)")
            return [report.name, report.uri, report.libvirtVersion ?? "-", types.isEmpty ? "-" : types,
                    report.cpus.map(String.init) ?? "-", memory, pools.isEmpty ? "-" : pools, health]
        }
        return Table.render(["NAME", "URI", "LIBVIRT", "DOMAIN TYPES", "CPUS", "MEM FREE", "POOLS", "HEALTH"], rows)
    }
}

/// The controller config of a state directory, or the defaults before `ionlab init`.
enum ControllerConfigFile {
    static func load(_ paths: StatePaths) throws -> ControllerConfig {
        FileManager.default.fileExists(atPath: paths.config) ? try ControllerConfig.load(path: paths.config) : ControllerConfig()
    }

    /// The image catalog the config names (relative to the state directory); empty when there is none yet.
    static func catalog(_ paths: StatePaths, _ config: ControllerConfig) throws -> ImageCatalog {
        let path = paths.resolve(config.imageCatalog)
        return FileManager.default.fileExists(atPath: path) ? try ImageCatalog.load(path: path) : ImageCatalog(images: [])
    }
}
