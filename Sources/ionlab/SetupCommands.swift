import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabController
import IonLabWire
import Logging

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
            try await controller.run()
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token", abstract: "Enrollment tokens.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Mint a one-time enrollment token for NAME and write a complete agent config.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The agent's name.")
        var name: String

        @Option(help: "An address the agent dials (HOST:PORT); repeat for several. Defaults to the controller's.")
        var endpoint: [String] = []

        @Option(help: "Seconds the token stays valid (default from the controller config).")
        var ttl: Double?

        @Option(name: [.short, .long], help: "Write the agent config here (mode 0600) instead of to stdout.")
        var output: String?

        func run() async throws {
            try await reportingErrors {
                let (name, endpoint, ttl) = (name, endpoint, ttl)
                let grant = try await AdminClient.with(paths: global.paths) {
                    try await $0.createToken(name: name, endpoints: endpoint, ttlSeconds: ttl)
                }
                let config = AgentConfig(name: grant.name, endpoints: try grant.endpoints.map { try Endpoint(parsing: $0) },
                                         caPin: try CAPin(parsing: grant.caPin), token: grant.token)
                if let output {
                    try AgentConfigFile.write(config.yaml(), to: output)
                    Terminal.error("wrote \(output): agent \(grant.name), token valid until \(Format.time(grant.expiresAt))")
                } else {
                    Terminal.line(config.yaml(), terminator: "")
                }
            }
        }
    }
}

enum AgentConfigFile {
    static func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ControllerError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Foundation.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw ControllerError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

struct AgentCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent", abstract: "Manage one agent.", subcommands: [Revoke.self])

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke an agent's certificates; its next connection is refused.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The agent's name.")
        var name: String

        func run() async throws {
            try await reportingErrors {
                let name = name
                Terminal.line(try await AdminClient.with(paths: global.paths) { try await $0.revoke(name) })
            }
        }
    }
}
