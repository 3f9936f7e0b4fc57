import ArgumentParser
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig

/// `vm snapshot create | list | revert | delete`: libvirt snapshots of a VM's disk, and of its memory when
/// it runs, so that a demo VM goes back to a known state in seconds.
struct VMSnapshotCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Take, list, revert to and delete snapshots of a VM (disk, and memory when it runs).",
        subcommands: [SnapshotCreate.self, SnapshotList.self, SnapshotRevert.self, SnapshotDelete.self])
}

struct SnapshotCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Snapshot a VM: its disk, and its memory and devices when it runs (the guest pauses meanwhile).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @Argument(help: "The snapshot's name.") var name: String
    @Option(help: "A line saying what state the snapshot keeps.") var description: String?

    func validate() throws { try AgentName.validate(name) }

    func run() async throws {
        let (vm, name, description) = (vm, name, description)
        try await reportingErrors {
            Terminal.line(try await AdminClient.with(paths: global.paths) { try await $0.createSnapshot(of: vm, named: name, description: description) })
        }
    }
}

struct SnapshotList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List a VM's snapshots, oldest first.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let vm = vm
        try await reportingErrors {
            let snapshots = try await AdminClient.with(paths: global.paths) { try await $0.snapshots(of: vm) }
            if json {
                Terminal.line(JSONOutput.line(snapshots))
                return
            }
            Terminal.line(Table.render(["NAME", "TAKEN", "STATE THEN", "HOLDS", "DESCRIPTION"], snapshots.map { snapshot in
                [snapshot.name, snapshot.created.map(Format.time) ?? "-", snapshot.domainState ?? "-",
                 snapshot.hasMemory ? "disk and memory" : "disk", snapshot.description ?? ""]
            }))
        }
    }
}

struct SnapshotRevert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert",
        abstract: "Put a VM back as a snapshot has it; from a running snapshot it resumes, and this waits until its agent is back.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @Argument(help: "The snapshot.") var name: String
    @Flag(help: "Return once reverted instead of waiting for the agent.") var noWait = false
    @Option(name: .customLong("timeout"), help: "Seconds to wait for the agent.") var waitSeconds: Double = 300
    @OptionGroup var output: ProgressOutput

    func validate() throws {
        guard waitSeconds > 0, waitSeconds <= 86_400 else { throw ValidationError("--timeout must be more than 0 and at most a day of seconds") }
    }

    func run() async throws {
        let (vm, name, wait) = (vm, name, !noWait)
        try await VMProgress.run(name: vm, paths: global.paths, timeout: waitSeconds, json: output.json) {
            try await $0.revert(vm: vm, to: name, wait: wait)
        }
    }
}

struct SnapshotDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a snapshot of a VM.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @Argument(help: "The snapshot.") var name: String

    func run() async throws {
        let (vm, name) = (vm, name)
        try await reportingErrors {
            Terminal.line(try await AdminClient.with(paths: global.paths) { try await $0.deleteSnapshot(of: vm, named: name) })
        }
    }
}
