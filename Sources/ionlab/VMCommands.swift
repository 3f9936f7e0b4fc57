import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabWire

/// `ionlab vm …`: VMs provisioned through libvirt, each with its agent injected by cloud-init.
struct VMCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Create, list, clone, stop, start, restart, suspend, resume, snapshot and destroy VMs.",
        subcommands: [VMCreate.self, VMList.self, VMInfoCommand.self, VMClone.self, VMStop.self, VMStart.self, VMRestart.self, VMSuspend.self, VMResume.self,
                      VMSnapshotCommands.self, VMDestroy.self])
}

/// How long `vm create` and `vm clone` wait for ready, and how they show progress.
struct WaitOptions: ParsableArguments {
    @Flag(help: "Return once the domain has started instead of waiting for its agent.")
    var noWait = false

    @Option(help: "Seconds to wait for the agent before giving up waiting (the VM keeps booting).")
    var timeout: Double = 900

    func validate() throws {
        guard timeout > 0, timeout <= 86_400 * 7 else { throw ValidationError("--timeout must be more than 0 and at most a week of seconds") }
    }
}

/// `--json` for the commands that follow a VM's progress: each event as it comes, then the VM's record.
struct ProgressOutput: ParsableArguments {
    @Flag(help: "Print each progress event, then the VM's record, as JSON lines (docs/json.md).") var json = false
}

struct VMCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Provision a VM and wait until its agent has connected back.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM's name (a-z, 0-9, '-', '_', '.').") var name: String
    @Option(help: "An image from the catalog.") var image: String
    @Option(help: "Virtual CPUs.") var cpus = 1
    @Option(help: "Memory in MiB.") var memory = 512
    @Option(help: "Disk size in GiB (at least the image's).") var disk = 4
    @Option(help: "A backend from the controller config (default: the first).") var backend: String?
    @OptionGroup var wait: WaitOptions
    @OptionGroup var output: ProgressOutput

    func run() async throws {
        let request = VMCreateRequest(name: name, image: image, cpus: cpus, memoryMiB: memory, diskGiB: disk, backend: backend,
                                      wait: !wait.noWait)
        try await VMProgress.run(name: name, paths: global.paths, timeout: wait.timeout, json: output.json) { try await $0.createVM(request) }
    }
}

struct VMClone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clone", abstract: "Create a VM with the image, backend and resources of another (fresh disk and identity).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM to copy.") var source: String
    @Argument(help: "The new VM's name.") var name: String
    @OptionGroup var wait: WaitOptions
    @OptionGroup var output: ProgressOutput

    func run() async throws {
        let (source, name, wait) = (source, name, !wait.noWait)
        try await VMProgress.run(name: name, paths: global.paths, timeout: self.wait.timeout, json: output.json) {
            try await $0.cloneVM(source: source, name: name, wait: wait)
        }
    }
}

/// Prints a VM's timeline as it arrives, one line per step with the elapsed time (or each event as JSON).
enum VMProgress {
    static func run(name: String, paths: StatePaths, timeout: Double, json: Bool,
                    _ request: @escaping @Sendable (AdminClient) async throws -> Replies<RequestProgress<VMRecord>>) async throws {
        let started = Date()
        try await reportingErrors {
            let finished: Bool = try await AdminClient.with(paths: paths) { client in
                let replies = try await request(client)
                return try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        for try await progress in replies {
                            switch progress {
                            case .event(let event):
                                Terminal.line(json ? JSONOutput.line(event)
                                    : String(format: "%@  %6.1fs  %@  %@", name, Date().timeIntervalSince(started), event.kind.rawValue,
                                             Format.escaped(event.message)))
                                Terminal.flush()
                            case .finished(let record):
                                Terminal.line(json ? JSONOutput.line(record)
                                    : "\(record.name): \(record.state.rawValue) (instance \(record.instanceID), \(record.domainType) on \(record.backend))")
                                return true
                            }
                        }
                        throw ControllerError("the controller ended the request without the VM's record")
                    }
                    group.addTask {
                        try await Task.sleep(for: .clamped(seconds: timeout))
                        return false
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                }
            }
            if !finished {
                Terminal.error("ionlab: \(name) is not ready after \(Int(timeout)) s; it is still provisioning and watched (ionlab events --follow, ionlab logs \(name) --console)")
                throw ExitCode(3)
            }
        }
    }
}

struct VMList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List VMs.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let vms = try await VMList.fetch(global.paths)
            if json {
                Terminal.line(JSONOutput.line(vms))
                return
            }
            let rows = vms.map { vm in
                [vm.name, vm.state.rawValue, vm.backend, vm.image, "\(vm.cpus)", "\(vm.memoryMiB)M", "\(vm.diskGiB)G", vm.domainType,
                 vm.instanceID, Table.ago(vm.createdAt)]
            }
            Terminal.line(Table.render(["NAME", "STATE", "BACKEND", "IMAGE", "CPUS", "MEM", "DISK", "TYPE", "INSTANCE", "CREATED"], rows))
        }
    }

    static func fetch(_ paths: StatePaths) async throws -> [VMRecord] {
        let vms = try await AdminClient.with(paths: paths) { try await $0.vms() }
        return vms
    }
}

struct VMInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show one VM: backend, state, resources, disks, console, snapshots, forwards, its agent and health, and its facts.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let vm = self.vm
            let info = try await AdminClient.with(paths: global.paths) { try await $0.vmInfo(vm) }
            Terminal.line(json ? JSONOutput.line(info) : Self.render(info))
        }
    }

    static func render(_ info: VMInfo) -> String {
        let vm = info.record
        var lines: [(String, String)] = [
            ("name", vm.name), ("fleet", vm.fleet ?? "-"), ("state", vm.state.rawValue), ("domain", info.domainState ?? "unknown (no answer)"),
            ("backend", "\(vm.backend) (\(vm.domainType)), uuid \(vm.domainUUID.isEmpty ? "-" : vm.domainUUID)"),
            ("image", vm.image), ("resources", "\(vm.cpus) CPU(s), \(vm.memoryMiB) MiB, \(vm.diskGiB) GiB"),
            ("disks", vm.volumes.isEmpty ? "-" : vm.volumes.map { "\(vm.pool)/\($0)" }.joined(separator: ", ")),
            ("console", vm.consoleLog), ("instance", vm.instanceID),
            ("created", Format.time(vm.createdAt)), ("ready", vm.readyAt.map(Format.time) ?? "-"),
        ]
        if let agent = info.agent {
            lines.append(("agent", agent.state.rawValue + (agent.lastSeen.map { ", last seen \(Format.time($0))" } ?? "")))
            if let health = agent.health { lines.append(("health", HealthText.summary(health))) }
        } else {
            lines.append(("agent", "none"))
        }
        if let boot = info.boot, !boot.milestones.isEmpty { lines.append(("boot", boot.text)) }
        for snapshot in info.snapshots {
            lines.append(("snapshot", "\(snapshot.name), taken \(snapshot.created.map(Format.time) ?? "?") "
                          + "(\(snapshot.hasMemory ? "disk and memory" : "disk"))" + (snapshot.description.map { ": \($0)" } ?? "")))
        }
        for forward in info.forwards {
            lines.append((forward.rule.reverse ? "reverse forward" : "forward",
                          "\(forward.rule) (\(forward.owner), \(forward.stateText), \(forward.totalConnections) connection(s))"))
        }
        for (name, value) in vm.facts.sorted(by: { $0.key < $1.key }) { lines.append(("fact \(name)", value)) }
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
    }
}

struct VMDestroy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy", abstract: "Remove a VM: domain, volumes, seed and console log; revoke its agent.")

    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() async throws {
        try await reportingErrors {
            let name = name
            Terminal.line(try await AdminClient.with(paths: global.paths) { try await $0.destroyVM(name) })
        }
    }
}

/// `ionlab logs NAME --console`: the VM's serial console log.
struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a VM's serial console log.")

    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Flag(help: "The serial console (the only log so far).") var console = false
    @Flag(name: [.short, .long], help: "Keep printing what the console writes.") var follow = false
    @Flag(help: "The guest's bytes unchanged (by default control characters other than colours are shown escaped).") var raw = false

    func run() async throws {
        try await reportingErrors {
            guard console else { throw ValidationError("say which log: --console") }
            guard let vm = try await VMList.fetch(global.paths).first(where: { $0.name == name }) else {
                throw ControllerError("no VM named '\(name)'")
            }
            guard let handle = FileHandle(forReadingAtPath: vm.consoleLog) else {
                throw ControllerError("\(vm.consoleLog): no console log yet (is the domain running on this host?)")
            }
            // In pieces, filtered: the guest writes this file, and may write anything.
            var filter = ConsoleFilter()
            while true {
                let data = handle.readData(ofLength: 1 << 16)
                if !data.isEmpty {
                    FileHandle.standardOutput.write(raw ? data : Data(filter.filter(data)))
                    continue
                }
                guard follow else { return }
                try await Task.sleep(for: .milliseconds(300))
            }
        }
    }
}
