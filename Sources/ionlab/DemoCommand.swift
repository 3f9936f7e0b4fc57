import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig
import IonLabSpec
import IonLabWire

/// `ionlab demo`: the ionChannel demonstration end to end. Discover the backends, bring the demo fleet up in
/// parallel (RustDesk installed and its ID read, the portal built from source and started, all verified on
/// each VM as soon as it is ready), then the summary with every RustDesk ID.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run the ionChannel demonstration: backends, a fleet with RustDesk and the portal, verification, IDs.",
        discussion: """
            The default spec is controller-config/fleets/demo.yaml (found next to this installation): the test image, the
            STAND-IN RustDesk package and the FIXTURE portal, all built locally. Give --spec for real images and packages.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "The demo fleet spec (default: controller-config/fleets/demo.yaml).") var spec: String?
    @Flag(help: "The desktop demonstration: controller-config/fleets/desktop.yaml (scripts/build-desktop-image.sh builds its image).")
    var desktop = false
    @Option(help: "At most this many VMs provisioning at once.") var parallel = 4
    @Flag(help: "Print events and the report as JSON lines.") var json = false

    func run() async throws {
        let report = try await reportingErrors { () -> FleetReport in
            let path = try spec ?? Self.defaultSpec(desktop ? "desktop.yaml" : "demo.yaml")
            let paths = global.paths
            say("1/3 discovering backends")
            let discovery = try ControllerHandoff.run(["backends", "--state-dir", paths.directory],
                                                      output: json ? .standardError : .standardOutput)
            guard discovery == 0 else { throw ControllerError("no backend is reachable") }

            let fleet = try FleetSpec.load(path: path, context: try FleetContextLoader.load(paths))
            say("\n2/3 bringing up fleet \(fleet.name): \(fleet.vmsAndImages) in parallel; on each, as soon as it is ready: "
                + fleet.workflow.map(\.name).joined(separator: " → "))
            let report = try await FleetUpClient.run(fleet, parallel: parallel, json: json, paths: paths)

            say("\n3/3 what each VM reported, and its verification")
            let all = try await AdminClient.with(paths: paths) { try await $0.vms() }
            let verifications = try await Self.verifications(fleet: fleet, paths: paths)
            say(DemoSummary.render(all.filter { $0.fleet == fleet.name }, verifications: verifications))
            return report
        }
        if !report.succeeded { throw ExitCode(1) }
    }

    /// Text for people, kept off stdout when stdout carries JSON lines.
    private func say(_ text: String) {
        if json { Terminal.error(text) } else { Terminal.line(text) }
    }

    /// Each VM's verdicts: the last `verify.complete` of each verify step (``VerificationDetail/latest(_:steps:)``).
    static func verifications(fleet: FleetSpec, paths: StatePaths) async throws -> [String: [Event]] {
        try await AdminClient.with(paths: paths) { client in
            var verifications: [Event] = []
            for try await event in try await client.events(EventQuery(fleet: fleet.name)) where event.kind == .verificationComplete {
                verifications.append(event)
            }
            return VerificationDetail.latest(verifications, steps: fleet.workflow.map(\.name))
        }
    }

    /// controller-config/fleets/NAME beside this installation: up from the binary (a checkout), then
    /// /usr/local/share/ionlab.
    static func defaultSpec(_ name: String = "demo.yaml", executable: String = CommandLine.arguments[0]) throws -> String {
        var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("controller-config/fleets/\(name)").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        let installed = "/usr/local/share/ionlab/controller-config/fleets/\(name)"
        guard FileManager.default.fileExists(atPath: installed) else { throw ControllerError("no demo spec found: give --spec FILE") }
        return installed
    }
}
