import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine

/// `ionlab`: the command line. The daemon and what needs libvirt are `ionlab-controller`'s
/// (``ControllerHandoff``).
@main
struct IonLab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ionlab",
        abstract: "Turn a libvirt host into a lab of VMs driven by agents over mutual TLS.",
        subcommands: [InitHandoff.self, ServeHandoff.self, Token.self, AgentCommands.self, Agents.self, Exec.self, Shell.self, Copy.self, Forward.self,
                      Forwards.self, ScreenshotCommand.self, DisplayCommand.self, Events.self, Jobs.self, BackendsHandoff.self, VMCommands.self,
                      Logs.self, Up.self, Status.self, Down.self, Facts.self, Demo.self, ReportCommand.self, DesktopCommands.self,
                      DashboardCommands.self])

    static func main() async {
        ControllerHandoff.execIfControllerCommand(CommandLine.arguments)
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
