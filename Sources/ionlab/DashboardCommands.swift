import ArgumentParser
import IonLabAdminAPI
import IonLabCommandLine

/// `ionlab dashboard`: the controller's HTTP side, which `ionlab serve --http HOST:PORT` turns on.
struct DashboardCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard", abstract: "The controller's HTTP side (ionlab serve --http): its access token.", subcommands: [DashboardTokenCommand.self])
}

struct DashboardTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print the token every HTTP request needs (made on first use, kept in the state directory, 0600).",
        discussion: "Paste it into the dashboard's login form once (the browser then keeps a session cookie), or send it as `Authorization: Bearer TOKEN`; Prometheus reads it with `authorization: {credentials_file: …}`. It never goes in a URL.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let paths = global.paths
        try await reportingErrors { Terminal.line(try DashboardToken.loadOrCreate(paths).value) }
    }
}
