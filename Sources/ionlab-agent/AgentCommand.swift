import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabAgent
import IonLabConfig
import Logging
import NIOPosix

/// `ionlab-agent`: runs inside a VM, enrolls with the controller and serves it over mutual TLS.
@main
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ionlab-agent",
        abstract: "The ionlab agent: connects back to the controller over mutual TLS and does what it asks.",
        version: Agent.version)

    @Option(name: .long, help: "The agent config written by `ionlab token create` (or the cloud-init seed).")
    var config: String = "/etc/ionlab/agent.json"

    @Option(name: .long, help: "Where the agent keeps its key, certificate and unreported job results.")
    var stateDir: String = "/var/lib/ionlab-agent"

    @Option(name: .long, help: "The file naming the cloud-init instance this agent runs in (reported in every heartbeat).")
    var instanceIDFile: String = HealthProbe.cloudInitInstanceID

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ionlab-agent")
        let agentConfig: AgentConfig
        do {
            agentConfig = try AgentConfig.load(path: config)
        } catch let error as ConfigError {
            printError("ionlab-agent: \(error)")
            throw ExitCode(2)
        }
        do {
            let agent = try Agent(config: agentConfig, stateDirectory: stateDir, group: MultiThreadedEventLoopGroup.singleton, logger: logger,
                                  instanceIDFile: instanceIDFile)
            try await agent.run()
        } catch let stop as AgentStop {
            printError("ionlab-agent: stopping: \(stop.message)")
            throw ExitCode(3)
        }
    }
}

func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

