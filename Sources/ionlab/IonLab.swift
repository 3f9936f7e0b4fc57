import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabController

/// `ionlab`: the command line and the controller daemon.
@main
struct IonLab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ionlab",
        abstract: "Turn a libvirt host into a lab of VMs driven by agents over mutual TLS.",
        subcommands: [Init.self, Serve.self, Token.self, AgentCommands.self, Agents.self, Exec.self, Shell.self, Copy.self, Forward.self, Forwards.self, ScreenshotCommand.self, DisplayCommand.self,
                      Events.self, Jobs.self, Backends.self, VMCommands.self, Logs.self, Up.self, Status.self, Down.self, Facts.self, Demo.self])
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The controller's state directory.",
                                            discussion: "Defaults to $IONLAB_STATE_DIR, else /var/lib/ionlab for root, else ~/.local/state/ionlab."))
    var stateDir: String?

    var paths: StatePaths { StatePaths.resolve(stateDir) }
}


/// Runs a CLI body, turning expected errors into one line on stderr and exit code 1.
func reportingErrors<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as CleanExit {
        throw error
    } catch {
        Terminal.error("ionlab: \(AdminDescribe.error(error))")
        throw ExitCode(1)
    }
}

enum AdminDescribe {
    static func error(_ error: Error) -> String {
        Format.error(error)
    }
}
