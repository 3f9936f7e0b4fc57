import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig
import IonLabWire
import Logging

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
                    try AgentConfigFile.write(config.json(), to: output)
                    Terminal.error("wrote \(output): agent \(grant.name), token valid until \(Format.time(grant.expiresAt))")
                } else {
                    Terminal.line(config.json(), terminator: "")
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
