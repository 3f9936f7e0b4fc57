import ArgumentParser
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig

/// `ionlab forward VM [ADDR:]PORT:[HOST:]PORT`: a TCP port forward through the agent's channel, ssh -L's
/// way (or -R's, with --reverse). Without --keep it lasts while the command runs.
struct Forward: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Forward a host port to a port in a VM (or, with --reverse, a port in the VM to one on the host).",
        discussion: """
            PORTS is [ADDR:]PORT:[HOST:]PORT, as ssh -L writes it: where to listen, then where each connection \
            goes. Both addresses default to 127.0.0.1. A forward listens on the host and connects from inside \
            the VM; with --reverse, the VM listens and connections reach HOST on the host. Each connection \
            is its own stream of the agent's channel; no port opens in the guest for a forward. Without \
            --keep the forward lasts until the command stops (Ctrl-C); with --keep the controller holds it, \
            across its restarts and the agent's reconnections, until `ionlab forwards remove`.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The VM (or agent).")
    var vm: String

    @Argument(help: ArgumentHelp("Where to listen and where to connect.", valueName: "PORTS"))
    var ports: String

    @Flag(help: "Listen in the VM and connect on the host.")
    var reverse = false

    @Flag(help: "Let the controller keep the forward (listed by `ionlab forwards`).")
    var keep = false

    func validate() throws {
        try AgentName.validate(vm)
        _ = try PortForward(parsing: ports)
    }

    func run() async throws {
        let rule = ForwardRule(agent: vm, reverse: reverse, ports: try PortForward(parsing: ports))
        let keep = keep
        try await reportingErrors {
            try await AdminClient.with(paths: global.paths) { client in
                if keep {
                    Terminal.line(try await client.keepForward(rule))
                    return
                }
                let (opened, notices) = try await client.forward(rule)
                Terminal.error("forwarding \(opened.rule); Ctrl-C stops")
                // A line may quote the guest: one line, escaped.
                for try await line in notices { Terminal.error("ionlab: " + Format.escaped(line)) }
            }
        }
    }
}

/// `ionlab forwards [list] | remove`: the forwards the controller holds.
struct Forwards: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forwards", abstract: "List or remove port forwards.",
        subcommands: [ForwardsList.self, ForwardsRemove.self], defaultSubcommand: ForwardsList.self)
}

struct ForwardsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the open forwards, kept or not.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only this VM's forwards.")
    var vm: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let records = try await AdminClient.with(paths: global.paths) { try await $0.forwards() }.filter { vm == nil || $0.rule.agent == vm }
            if json {
                Terminal.line(JSONOutput.line(records))
                return
            }
            Terminal.line(Table.render(["VM", "DIRECTION", "LISTEN", "TARGET", "HELD BY", "CONNECTIONS", "STATE"], records.map(Self.row)))
        }
    }

    static func row(_ record: ForwardRecord) -> [String] {
        [record.rule.agent, record.rule.reverse ? "reverse (listens in the VM)" : "forward (listens on the host)",
         "\(record.rule.ports.listen)", "\(record.rule.ports.target)", "\(record.owner)",
         "\(record.openConnections) open, \(record.totalConnections) in all", record.stateText]
    }
}

struct ForwardsRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Close a forward and forget it if it was kept.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The VM (or agent).")
    var vm: String

    @Argument(help: ArgumentHelp("Where it listens, [ADDR:]PORT, or the forward as it was opened.", valueName: "LISTEN"))
    var listen: String

    @Flag(help: "A reverse forward (it listens in the VM).")
    var reverse = false

    func validate() throws {
        _ = try listenEndpoint()
    }

    private func listenEndpoint() throws -> Endpoint {
        if let forward = try? PortForward(parsing: listen) { return forward.listen }
        return try PortForward(parsing: "\(listen):1").listen
    }

    func run() async throws {
        let key = ForwardRule.Key(agent: reverse ? vm : nil, listen: try listenEndpoint())
        try await reportingErrors {
            Terminal.line(try await AdminClient.with(paths: global.paths) { try await $0.closeForward(key) })
        }
    }
}
