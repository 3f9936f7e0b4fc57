import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig
import IonLabSpec
import IonLabWire

/// `ionlab up FLEET.yaml`: brings a fleet up, or converges it, showing each VM's progress live.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up", abstract: "Bring a fleet up (or converge it): provision its VMs in parallel and run its workflow on each.",
        discussion: """
            Running it again adopts the VMs that exist, creates the missing ones and skips the steps already done.
            Exits 0 when every VM ends ok, 1 when one failed or timed out.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The fleet spec (see controller-config/fleets/).") var spec: String
    @Option(help: "At most this many VMs provisioning at once.") var parallel = 4
    @Flag(help: "Print events and the report as JSON lines.") var json = false

    func validate() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
    }

    func run() async throws {
        let report = try await reportingErrors {
            let fleet = try FleetSpec.load(path: spec, context: try FleetContextLoader.load(global.paths))
            return try await FleetUpClient.run(fleet, parallel: parallel, json: json, paths: global.paths)
        }
        if !report.succeeded { throw ExitCode(1) }
    }
}

/// Sends `up` and shows the fleet's events as they arrive (live table, plain lines or JSON), then the summary.
enum FleetUpClient {
    static func run(_ fleet: FleetSpec, parallel: Int, json: Bool, paths: StatePaths) async throws -> FleetReport {
        let view = FleetView(fleet: fleet, mode: json ? .json : isatty(STDOUT_FILENO) == 1 ? .live : .lines)
        return try await AdminClient.with(paths: paths) { client in
            let ticker = view.mode == .live ? Task { while !Task.isCancelled { view.redraw(); try? await Task.sleep(for: .seconds(1)) } } : nil
            defer { ticker?.cancel() }
            for try await progress in try await client.fleetUp(FleetUpRequest(spec: fleet, parallel: parallel)) {
                switch progress {
                case .event(let event):
                    view.show(event)
                case .finished(let report):
                    ticker?.cancel()
                    view.finish(report)
                    return report
                }
            }
            throw ControllerError("the controller ended the up without a report")
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show VMs (of one fleet, or all): backend, state, agent liveness, health and workflow step.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Only this fleet's VMs.") var fleet: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let fleet = self.fleet
            let vms = try await AdminClient.with(paths: global.paths) { try await $0.fleetStatus(fleet) }
            if json {
                Terminal.line(JSONOutput.line(vms))
                return
            }
            Terminal.line(Table.render(["VM", "FLEET", "BACKEND", "STATE", "AGENT", "HEARTBEAT", "LOAD", "MEM FREE", "DISK FREE", "STEP"], vms.map { vm in
                let health = vm.health
                return [vm.name, vm.fleet ?? "-", vm.backend, vm.state.rawValue, vm.agent.rawValue, Table.ago(vm.lastHeartbeat),
                        health?.load.first.map { String(format: "%.2f", $0) } ?? "-",
                        health.map { "\(Table.bytes($0.memoryAvailableBytes))/\(Table.bytes($0.memoryTotalBytes))" } ?? "-",
                        health.map { "\(Table.bytes($0.diskFreeBytes))/\(Table.bytes($0.diskTotalBytes))" } ?? "-",
                        vm.step ?? "-"]
            }))
        }
    }
}

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down", abstract: "Destroy every VM of a fleet in parallel (domains, volumes, seeds, logs, certificates) and forget it.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The fleet's name.") var fleet: String
    @Flag(help: "Print each event, then the outcome, as JSON lines (docs/json.md).") var json = false

    func run() async throws {
        try await reportingErrors {
            let (fleet, json) = (fleet, json)
            try await AdminClient.with(paths: global.paths) { client in
                for try await progress in try await client.fleetDown(fleet) {
                    switch progress {
                    case .event(let event):
                        Terminal.line(json ? JSONOutput.line(event)
                            : "\(event.agent ?? event.fleet ?? "-")  \(event.kind.rawValue)  \(Format.escaped(event.message))")
                    case .finished(let line):
                        Terminal.line(json ? JSONOutput.line(DownOutcome(fleet: fleet, outcome: line)) : line)
                    }
                }
            }
        }
    }

    /// The last line of `down --json`.
    struct DownOutcome: Encodable {
        var fleet: String
        var outcome: String
    }
}

/// What the CLI checks a fleet spec against before sending it: the controller's image catalog and backends,
/// read from the same state directory the controller serves.
enum FleetContextLoader {
    static func load(_ paths: StatePaths) throws -> FleetContext? {
        guard paths.isInitialized else { return nil }
        let config = try ControllerConfigFile.load(paths)
        return FleetContext(images: try ControllerConfigFile.catalog(paths, config).images.map(\.name), backends: config.backends.map(\.name))
    }
}

struct Facts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facts", abstract: "Show what steps learned about VMs (a RustDesk ID and version, say): of one VM, a fleet, or all.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String?
    @Option(help: "Every VM of this fleet.") var fleet: String?
    @Flag(help: "Print JSON: one object per VM with its facts.") var json = false

    func validate() throws {
        if vm != nil, fleet != nil { throw ValidationError("name one VM, or pass --fleet NAME, not both") }
    }

    func run() async throws {
        try await reportingErrors {
            let all = try await AdminClient.with(paths: global.paths) { try await $0.vms() }
            let chosen = all.filter { vm == nil && fleet == nil || $0.name == vm || ($0.fleet != nil && $0.fleet == fleet) }
            if let vm, chosen.isEmpty { throw ControllerError("no VM named '\(vm)'") }
            if let fleet, chosen.isEmpty { throw ControllerError("fleet \(fleet) has no VMs") }
            if json {
                Terminal.line(JSONOutput.line(chosen.map { FactsJSON(vm: $0.name, facts: $0.facts) }))
            } else {
                Terminal.line(FactsTable.render(chosen))
            }
        }
    }
}

/// One VM's facts, as `facts --json` prints them.
struct FactsJSON: Encodable {
    let vm: String
    let facts: [String: String]
}

/// VMs with a column per fact any of them has.
enum FactsTable {
    static func render(_ vms: [VMRecord]) -> String {
        let names = Set(vms.flatMap(\.facts.keys)).sorted()
        return Table.render(["VM"] + names.map { $0.uppercased() }, vms.map { vm in [vm.name] + names.map { vm.facts[$0] ?? "-" } })
    }
}
