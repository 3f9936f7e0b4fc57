import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig
import IonLabController
import IonLabControllerConfig
import IonLabProvision
import IonLabWire
import Logging

/// `ionlab-controller`: the daemon side of ionlab, kept out of the `ionlab` command line so that a client
/// command never loads libvirt or SQLite. `ionlab serve`, `ionlab init` and `ionlab backends` hand over to it.
@main
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ionlab-controller",
        abstract: "The ionlab controller: its state directory, its daemon, and backend discovery (run through `ionlab`).",
        subcommands: [Init.self, Serve.self, Backends.self])
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create the CA, the controller's certificate, its config and its store.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Where the agent listener binds (HOST:PORT).")
    var listen: String?

    @Option(help: "An address agents dial (HOST:PORT); repeat for several. Defaults to the listen address.")
    var advertise: [String] = []

    @Flag(help: "Replace an existing CA. Every enrolled agent must enroll again.")
    var force = false

    func run() async throws {
        try await reportingErrors {
            let listenEndpoint = try listen.map { try Endpoint(parsing: $0) }
            let advertised = try advertise.map { try Endpoint(parsing: $0) }
            let paths = global.paths
            let outcome = try ControllerSetup.initialize(paths: paths, listen: listenEndpoint, advertise: advertised, force: force)
            Terminal.line(outcome.created ? "initialized \(paths.directory)" : "\(paths.directory) is already initialized (use --force to replace its CA)")
            Terminal.line("  CA pin:  \(outcome.pin)")
            Terminal.line("  listen:  \(outcome.config.listen)")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the controller daemon: the agent listener and the admin socket.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    @Option(help: ArgumentHelp("Also serve HTTP here (HOST:PORT): the live dashboard at / and Prometheus metrics at /metrics, for the token `ionlab dashboard token` prints. Off unless given; say 127.0.0.1 to keep it on loopback.",
                               valueName: "HOST:PORT"))
    var http: String?

    func validate() throws {
        if let http {
            do { _ = try Endpoint(parsing: http) } catch { throw ValidationError("--http: \(error)") }
        }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        try await reportingErrors {
            let controller = try Controller(paths: global.paths, logger: Logger(label: "ionlab"))
            try await controller.run(http: try http.map { try Endpoint(parsing: $0) })
        }
    }
}

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
