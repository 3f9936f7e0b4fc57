import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine

/// The commands `ionlab-controller` serves. `ionlab` hands them over with exec, arguments and all, so that
/// the command line never loads libvirt or SQLite and these keep their names (`ionlab serve`).
enum ControllerHandoff {
    static let commands: [any HandedOver.Type] = [InitHandoff.self, ServeHandoff.self, BackendsHandoff.self]

    /// ionlab-controller beside this binary (the real one, however it was reached).
    static var binary: String {
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: own).deletingLastPathComponent().appendingPathComponent("ionlab-controller").path
    }

    /// Execs ionlab-controller when `arguments` (argv) name one of its commands; returns only otherwise.
    static func execIfControllerCommand(_ arguments: [String]) {
        guard arguments.count > 1, commands.contains(where: { $0.configuration.commandName == arguments[1] }) else { return }
        exec(Array(arguments.dropFirst()))
    }

    static func exec(_ arguments: [String]) -> Never {
        let path = binary
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        Terminal.error("ionlab: cannot run \(path): \(String(cString: strerror(errno))) (install it beside ionlab)")
        exit(1)
    }

    /// Runs ionlab-controller as a child, its output on `output`; returns its exit status.
    static func run(_ arguments: [String], output: FileHandle) throws -> Int32 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: binary)
        child.arguments = arguments
        child.standardOutput = output
        try child.run()
        child.waitUntilExit()
        return child.terminationStatus
    }
}

/// `ionlab init`, `serve` and `backends` as `ionlab --help` lists them; `main` hands them over before any
/// parsing, so their own help and options are ionlab-controller's.
protocol HandedOver: ParsableCommand {
    var arguments: [String] { get }
}

extension HandedOver {
    func run() { ControllerHandoff.exec([Self.configuration.commandName ?? ""] + arguments) }

    /// Its entry in `ionlab --help` and ionlab(1), pointing at where its options are described.
    static func handedOver(_ name: String, abstract: String) -> CommandConfiguration {
        CommandConfiguration(commandName: name, abstract: abstract,
                             discussion: "ionlab hands this command to ionlab-controller, beside it: its options are those of "
                                 + "`ionlab-controller \(name)` (see `ionlab-controller \(name) --help`, or ionlab-controller(1)).")
    }
}

struct InitHandoff: HandedOver {
    static let configuration = handedOver("init", abstract: "Create the CA, the controller's certificate, its config and its store.")
    @Argument(parsing: .captureForPassthrough, help: "ionlab-controller's options for it.") var arguments: [String] = []
}

struct ServeHandoff: HandedOver {
    static let configuration = handedOver("serve", abstract: "Run the controller daemon: the agent listener and the admin socket.")
    @Argument(parsing: .captureForPassthrough, help: "ionlab-controller's options for it.") var arguments: [String] = []
}

struct BackendsHandoff: HandedOver {
    static let configuration = handedOver("backends", abstract: "Probe the configured libvirt backends: reachability, domain types that work, resources.")
    @Argument(parsing: .captureForPassthrough, help: "ionlab-controller's options for it.") var arguments: [String] = []
}
