import ArgumentParser
import IonLabAdminAPI
import IonLabCommandLine

/// `vm stop | start | restart | suspend | resume`: one command type per action, sharing what they say.
protocol PowerCommand: AsyncParsableCommand {
    static var action: PowerAction { get }
    var global: GlobalOptions { get }
    var vm: String { get }
    var power: PowerOptions { get }
    var output: ProgressOutput { get }
}

extension PowerCommand {
    func run() async throws {
        let (action, vm, options) = (Self.action, vm, power)
        let wait = !options.noWait && (action == .start || action == .restart)
        try await VMProgress.run(name: vm, paths: global.paths, timeout: options.waitSeconds, json: output.json) {
            try await $0.power(action, vm: vm, timeoutSeconds: options.stopTimeout, wait: wait)
        }
    }
}

struct PowerOptions: ParsableArguments {
    @Option(name: .customLong("stop-timeout"), help: "Seconds the guest gets to shut down through ACPI before it is forced off (default 60).")
    var stopTimeout: Double?

    @Flag(help: "After a start or restart, return once the domain runs instead of waiting for its agent.")
    var noWait = false

    @Option(name: .customLong("timeout"), help: "Seconds to wait for the agent after a start (the VM keeps booting).")
    var waitSeconds: Double = 900

    func validate() throws {
        if let stopTimeout, !(stopTimeout > 0 && stopTimeout <= 86_400) {
            throw ValidationError("--stop-timeout must be more than 0 and at most a day of seconds")
        }
        guard waitSeconds > 0, waitSeconds <= 86_400 * 7 else { throw ValidationError("--timeout must be more than 0 and at most a week of seconds") }
    }
}

struct VMStop: PowerCommand {
    static let action = PowerAction.stop
    static let configuration = CommandConfiguration(
        commandName: action.rawValue, abstract: "Shut a VM down through ACPI, forced off after --stop-timeout; its disk stays.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var power: PowerOptions
    @OptionGroup var output: ProgressOutput
}

struct VMStart: PowerCommand {
    static let action = PowerAction.start
    static let configuration = CommandConfiguration(
        commandName: action.rawValue, abstract: "Boot a stopped VM and wait until its agent is back.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var power: PowerOptions
    @OptionGroup var output: ProgressOutput
}

struct VMRestart: PowerCommand {
    static let action = PowerAction.restart
    static let configuration = CommandConfiguration(
        commandName: action.rawValue, abstract: "Stop a VM (as vm stop) and start it again; waits until its agent is back.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var power: PowerOptions
    @OptionGroup var output: ProgressOutput
}

struct VMSuspend: PowerCommand {
    static let action = PowerAction.suspend
    static let configuration = CommandConfiguration(
        commandName: action.rawValue, abstract: "Pause a VM's CPUs; its memory stays (its agent goes quiet).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var power: PowerOptions
    @OptionGroup var output: ProgressOutput
}

struct VMResume: PowerCommand {
    static let action = PowerAction.resume
    static let configuration = CommandConfiguration(
        commandName: action.rawValue, abstract: "Let a suspended VM run on.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @OptionGroup var power: PowerOptions
    @OptionGroup var output: ProgressOutput
}
